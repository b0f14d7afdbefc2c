"""Reliability: a real SIGKILL and resume, bad labels, empty label bins."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dirlib.data.base import Binning, DIRData
from dirlib.data.synthetic import TensorItems, load_synthetic
from dirlib.experiment import run_experiment
from dirlib.train import RunConfig

ROOT = Path(__file__).resolve().parents[2]
CMD = [sys.executable, "-m", "dirlib", "train", "--dataset", "synthetic", "--method", "lds+frobenius",
       "--epochs", "12", "--seed", "3", "--no-progress", "--no-diagnostics",
       "--data-arg", "n_max=700", "dim=32", "--method-arg", "frobenius.sft_epochs=3"]


def _ckpt_epoch(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["epoch"]
    except Exception:  # not written yet / being replaced
        return -1


def test_sigkill_then_same_command_resumes_and_matches(tmp_path):
    # one thread: bitwise-equal float reductions across processes whatever the machine's load
    # (MKL/OpenMP may otherwise split work differently from run to run)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MKL_DYNAMIC": "FALSE"}
    full = tmp_path / "full"        # the uninterrupted run, meanwhile on the other core
    reference = subprocess.Popen(CMD + ["--out", str(full)], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(CMD + ["--out", str(cut)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = cut / "ckpt" / "main.pt"
    t0 = time.time()
    while _ckpt_epoch(ck) < 3 and time.time() - t0 < 300 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: make it longer"
    killed_at = _ckpt_epoch(ck)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rec = json.loads((cut / "run.json").read_text())
    assert rec["status"] == "running"          # the record survived the kill, not truncated
    subprocess.run(CMD + ["--out", str(cut)], check=True, env=env, cwd=ROOT,
                   capture_output=True, timeout=600)
    assert reference.wait(timeout=600) == 0
    a = json.loads((full / "run.json").read_text())
    b = json.loads((cut / "run.json").read_text())
    assert b["status"] == "completed"
    main = b["phases"]["main"]
    assert main["resumed_from_epoch"] >= killed_at     # lost at most the epoch in progress
    assert main["epochs_run"] == 12 - (main["resumed_from_epoch"] + 1)
    for phase in ("main", "sft"):
        assert a["phases"][phase]["test"] == b["phases"][phase]["test"], phase
    assert a["phases"]["norm"]["norm_net"] == b["phases"]["norm"]["norm_net"]
    assert len(b["phases"]["main"]["history"]) == 12


def _data_with_labels(train_labels, name="bad"):
    x = torch.randn(len(train_labels), 4)
    return DIRData(name=name, train=TensorItems(x, torch.zeros(len(x))), val=None, test=None,
                   train_labels=train_labels, val_labels=np.array([1.0]), test_labels=np.array([1.0]),
                   binning=Binning.integer(0, 10))


def test_nan_and_infinite_labels_are_rejected_with_position():
    with pytest.raises(ValueError, match=r"bad train labels: 1 non-finite label\(s\), first at row 2"):
        _data_with_labels(np.array([1.0, 2.0, np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        _data_with_labels(np.array([1.0, np.inf]))


def test_empty_label_bins_are_counted_and_every_method_family_copes(tmp_path):
    data = load_synthetic(n_labels=30, n_max=150, width=5.0)
    keep = (data.train_labels < 12) | (data.train_labels > 14)   # labels 12..14: no training sample
    idx = np.flatnonzero(keep)
    from dirlib.data.base import SubsetItems
    import copy
    gap = copy.copy(data)
    gap.train = gap.train_eval = SubsetItems(data.train, idx)
    gap.train_labels = data.train_labels[idx]
    gap.info = {}
    gap.__post_init__()
    assert gap.info["empty_train_bins"] == 3
    for method in ("lds+fds", "bni", "frobenius"):
        rec = run_experiment(RunConfig(dataset="synthetic", method=method, epochs=2, progress=False,
                                       method_kwargs={"frobenius.sft_epochs": 1} if method == "frobenius" else {}),
                             tmp_path / method, data=gap)
        assert rec["status"] == "completed" and np.isfinite(rec["test"]["all"]["mae"])
        # test labels with no training sample are few-shot
        assert rec["test"]["few"]["n"] >= 30
    norm = rec["phases"]["norm"]["per_label"]
    observed = np.array(norm["observed_norm"], dtype=float)   # NaN (JSON null) for empty bins
    assert np.isnan(observed[12:15]).all() and np.isfinite(np.array(norm["predicted_norm"])).all()


def test_wait_unlocked_returns_when_the_holder_lets_go(tmp_path):
    import threading
    import time

    from dirlib.records import RunLock, wait_unlocked
    t0 = time.time()
    wait_unlocked(tmp_path / "never-locked")                 # no lock file: at once
    assert time.time() - t0 < 0.5
    lock = RunLock(tmp_path).__enter__()
    threading.Timer(0.4, lambda: lock.__exit__(None, None, None)).start()
    t0 = time.time()
    wait_unlocked(tmp_path)
    assert time.time() - t0 >= 0.3
