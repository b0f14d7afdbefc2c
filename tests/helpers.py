"""Small builders shared by several test modules (imported as ``from helpers import ...``: pytest
puts this folder on ``sys.path``, as it has no ``__init__.py``)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch.nn as nn

from dirlib.train import RunConfig

#: the repository root (the command-line tests run ``python -m dirlib`` from there)
ROOT = Path(__file__).resolve().parents[1]

#: the small synthetic set the method tests train on
SYN = {"n_labels": 30, "n_max": 150, "width": 5.0}


def syn_cfg(method, **kw):
    """A 2-epoch synthetic RunConfig for ``method``; ``kw`` overrides any field."""
    base = dict(dataset="synthetic", method=method, epochs=2, batch_size=64, lr=3e-3,
                progress=False, diagnostics=False, data_kwargs=SYN)
    base.update(kw)
    return RunConfig(**base)


def first_rows_per_split(csv_lines, per_split):
    """The first ``per_split`` data rows of each split of an ``age,path,split`` CSV (header
    skipped), in file order."""
    rows, seen = [], {"train": 0, "val": 0, "test": 0}
    for line in csv_lines[1:]:
        sp = line.rsplit(",", 1)[1]
        if seen[sp] < per_split:
            rows.append(line)
            seen[sp] += 1
    return rows


def write_face_tree(folder: Path, csv_name: str, rows, size=(48, 56)) -> Path:
    """A face-age layout in ``folder``: the ``age,path,split`` CSV ``csv_name`` of ``rows`` and a
    random ``size`` JPEG at each row's path (seed: the row's number). Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / csv_name).write_text("age,path,split\n" + "\n".join(rows) + "\n")
    for k, row in enumerate(rows):
        write_jpeg(folder / row.split(",")[1], seed=k, size=size)
    return folder


def write_jpeg(path: Path, seed: int, size=(48, 56)):
    """A random ``size`` (w, h) JPEG at ``path`` (folders made), its pixels fixed by ``seed``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.RandomState(seed).randint(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)


class TwoLayer(nn.Module):
    """A user's encoder: not one of dirlib's."""

    def __init__(self, d_in=3, d=12):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def long_tail_arrays():
    """A user's data through ``from_arrays``: 3 features, float labels with a long tail (gamma,
    0-80), bins of width 4, 400 / 60 / 60 samples, shots at 30 and 8 per bin."""
    from dirlib.data import from_arrays
    rng = np.random.RandomState(0)
    y = np.round(np.clip(rng.gamma(2.0, 8.0, 520), 0, 80), 1)
    x = np.c_[y / 40, np.sin(y / 8), np.cos(y / 15)] + 0.05 * rng.randn(len(y), 3)
    return from_arrays(x[:400], y[:400], x[400:460], y[400:460], x[460:], y[460:], bin_width=4.0,
                       many_thr=30, few_thr=8)


def sigterm_when(cmd, marker: Path, stdout=subprocess.PIPE):
    """Start ``cmd`` from the repository root with one thread, send SIGTERM once ``marker`` exists
    (it must still be running then), and return ``(returncode, stdout, stderr)``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not marker.exists() and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped: make it longer"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err
