import json
import re

import numpy as np
import pytest
import torch

from dirlib.cli import main
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.train import Callback, DivergenceError, RunConfig, resolve_device


def small_cfg(**kw):
    base = dict(dataset="synthetic", epochs=3, batch_size=64, lr=3e-3, progress=False,
                diagnostics=False, data_kwargs={"n_labels": 30, "n_max": 120, "width": 5.0})
    base.update(kw)
    return RunConfig(**base)


def test_cli_synthetic_writes_record(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--method", "vanilla", "--epochs", "2",
                 "--seed", "1", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "completed"
    assert set(rec["test"]) == {"all", "many", "median", "few"}
    assert rec["test"]["all"]["n"] == 500
    assert rec["config"]["seed"] == 1 and len(rec["config_hash"]) == 16
    assert len(rec["phases"]["main"]["history"]) == 2
    assert rec["phases"]["main"]["best_epoch"] in (1, 2)
    assert rec["versions"]["torch"].startswith("2.14")
    # per-label test errors cover every test label
    assert len(rec["phases"]["main"]["test_per_label"]) == 50


def test_training_learns_and_is_deterministic(tmp_path):
    r1 = run_experiment(small_cfg(epochs=6), tmp_path / "a")
    r2 = run_experiment(small_cfg(epochs=6), tmp_path / "b")
    assert r1["test"]["all"]["mae"] == r2["test"]["all"]["mae"]
    # learns: much better than predicting the mean label
    data = load_synthetic(n_labels=30, n_max=120, width=5.0)
    base = np.mean(np.abs(data.test_labels - data.train_labels.mean()))
    assert r1["test"]["all"]["mae"] < 0.5 * base


class Boom(Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_start(self, st):
        if st.epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated kill")


def test_resume_continues_and_matches_uninterrupted(tmp_path, monkeypatch):
    import dirlib.methods as methods
    full = run_experiment(small_cfg(epochs=4), tmp_path / "full")
    orig = methods.build_method

    def with_boom(cfg, data):
        spec = orig(cfg, data)
        spec.callbacks.append(Boom(2))
        return spec
    monkeypatch.setattr("dirlib.experiment.build_method", with_boom)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(small_cfg(epochs=4), tmp_path / "cut")
    rec = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert rec["status"] == "interrupted" and "simulated kill" in rec["error"]
    monkeypatch.setattr("dirlib.experiment.build_method", orig)
    resumed = run_experiment(small_cfg(epochs=4), tmp_path / "cut")
    assert resumed["phases"]["main"]["resumed_from_epoch"] == 1   # epochs 1-2 done (0-based 1)
    assert resumed["phases"]["main"]["epochs_run"] == 2
    assert resumed["test"]["all"]["mae"] == full["test"]["all"]["mae"]


def test_changed_config_refuses_stale_checkpoint(tmp_path):
    run_experiment(small_cfg(epochs=1), tmp_path / "r")
    before = (tmp_path / "r" / "run.json").read_text()
    with pytest.raises(RuntimeError, match=r"another configuration or data \(lr: 0.003 -> 0.01\)"):
        run_experiment(small_cfg(epochs=1, lr=1e-2), tmp_path / "r")
    assert (tmp_path / "r" / "run.json").read_text() == before   # the refused rerun wrote nothing


class NaNLoss(Callback):
    """NaN at the 4th batch of the second epoch."""

    def on_epoch_start(self, st):
        self.first_step = st.step

    def extra_loss(self, st, batch):
        hit = st.epoch == 1 and st.step == self.first_step + 3
        return (batch.z.sum() * float("nan")) if hit else None, {}


def test_divergence_stops_with_clear_error_and_failed_record(tmp_path, monkeypatch):
    import dirlib.methods as methods
    orig = methods.build_method

    def with_nan(cfg, data):
        spec = orig(cfg, data)
        spec.callbacks.append(NaNLoss())
        return spec
    monkeypatch.setattr("dirlib.experiment.build_method", with_nan)
    with pytest.raises(DivergenceError, match=r"epoch 2, batch 4 \(global step \d+\)"):
        run_experiment(small_cfg(epochs=3), tmp_path / "nan")
    rec = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert rec["status"] == "failed" and "DivergenceError" in rec["error"]
    assert "last good checkpoint is kept" in rec["error"]
    # the last good checkpoint (end of epoch 1) is still there
    ck = torch.load(tmp_path / "nan" / "ckpt" / "main.pt", weights_only=False)
    assert ck["epoch"] == 0 and all(torch.isfinite(v).all() for v in ck["model"].values()
                                    if v.is_floating_point())


def test_unknown_method_lists_valid_names(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--method", "nosuch", "--out",
                 str(tmp_path)]) == 2
    assert re.search("valid names: .*vanilla", capsys.readouterr().err)


def test_absent_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_record_writes_are_atomic(tmp_path, monkeypatch):
    """A crash while writing never leaves a truncated record: the old one stays intact."""
    from dirlib import records
    p = tmp_path / "run.json"
    records.write_json(p, {"status": "running", "x": 1})

    class Unserialisable:
        pass

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        records.write_json(p, {"status": "completed", "x": 2})
    assert json.loads(p.read_text()) == {"status": "running", "x": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["run.json"]   # no temp file left behind
