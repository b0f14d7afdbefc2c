"""Your own data and model: ``from_arrays`` and ``dirlib.run`` with a user encoder, for every
registered method (the multi-phase ones included); and the README's example runs as written."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch.nn as nn

import dirlib
from dirlib.data import from_arrays
from helpers import TwoLayer, long_tail_arrays

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def data():
    return long_tail_arrays()


def test_from_arrays_states_bins_shots_and_family(data):
    e, labels = data.binning.edges, np.concatenate([data.train_labels, data.val_labels, data.test_labels])
    assert np.allclose(np.diff(e), 4.0) and e[0] <= labels.min() and e[-1] > labels.max()
    assert e[0] > labels.min() - 4 and e[-1] <= labels.max() + 4 and data.shot_spec.by == "bin"
    assert data.info["task_family"].startswith("age (unstated")
    assert set(data.bin_shots()) <= {"many", "median", "few"}
    with pytest.raises(ValueError, match="bin_width=.*edges="):
        from_arrays(np.zeros((3, 2)), [0.5, 1.5, 2.5], np.zeros((1, 2)), [1.0], np.zeros((1, 2)), [2.0])
    with pytest.raises(ValueError, match="3 train inputs but 2 train labels"):
        from_arrays(np.zeros((3, 2)), [1, 2], np.zeros((1, 2)), [1], np.zeros((1, 2)), [2])
    ints = from_arrays(np.zeros((4, 2)), [1, 2, 2, 5], np.zeros((1, 2)), [3], np.zeros((1, 2)), [4],
                       task_family="sts")
    assert ints.binning.n_bins == 5 and ints.shot_spec.by == "label" and ints.info["task_family"] == "sts"


def test_run_leaves_nothing_on_disk_without_out(data, tmp_path, monkeypatch):
    import tempfile
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))   # where dirlib.run's scratch folder goes
    monkeypatch.chdir(tmp_path)
    dirlib.run("vanilla", data, encoder=TwoLayer(), epochs=1, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert not list(scratch.glob("dirlib-run-*"))            # its scratch folder was removed
    rec = dirlib.run("vanilla", data, encoder=TwoLayer(), epochs=1, seed=0, out=tmp_path / "r")
    assert (tmp_path / "r" / "run.json").is_file() and rec["status"] == "completed"
    with pytest.raises(ValueError, match=r"\(B, d\) features"):
        dirlib.run("vanilla", data, encoder=nn.Flatten(0), epochs=1)    # (B*d,): not a feature batch


def test_readme_example_runs_as_written():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Use your own data.*?```python\n(.*?)```", text, re.S)
    assert block, "README has no 'Use your own data' example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), {})


@pytest.mark.artefacts
def test_readme_layout_lists_every_module():
    text = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    pkg = ROOT / "dirlib"
    missing = []
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg).as_posix()
        stem = f.stem
        if f"`{rel}`" not in text and not (f.parent.name in ("losses", "methods", "datasets", "rebalancing") and f"`{stem}`" in text):
            missing.append(rel)
    assert not missing, f"README Layout does not list: {missing}"
