"""Small builders shared by several test modules (imported as ``from helpers import ...``: pytest
puts this folder on ``sys.path``, as it has no ``__init__.py``)."""
from pathlib import Path

import numpy as np

from dirlib.train import RunConfig

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


def write_jpeg(path: Path, seed: int, size=(48, 56)):
    """A random ``size`` (w, h) JPEG at ``path`` (folders made), its pixels fixed by ``seed``."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.RandomState(seed).randint(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)
