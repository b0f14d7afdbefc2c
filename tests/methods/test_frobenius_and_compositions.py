"""Every registered method through the one trainer, alone and with the Frobenius regulariser."""
import json

import numpy as np
import pytest

from dirlib.cli import main
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.methods import build_method
from helpers import SYN, syn_cfg



cfg = syn_cfg


@pytest.fixture(scope="module")
def data():
    return load_synthetic(**SYN)


@pytest.mark.parametrize("base", ["lds", "fds", "focal", "bmc", "ranksim", "oe", "conr", "sqinv+lds"])
def test_methods_compose_with_frobenius(base, data, tmp_path):
    rec = run_experiment(cfg(f"{base}+frobenius", method_kwargs={"frobenius.sft_epochs": 1}),
                         tmp_path, data=data)
    assert rec["status"] == "completed"
    assert set(rec["phases"]) == {"main", "norm", "sft"} and rec["final"] == "sft"
    # the base method's pieces are present in phase 1 (the regulariser's terms are logged)
    hist = rec["phases"]["main"]["history"][-1]
    assert "log/kl" in hist and "log/oe" in hist


def test_frobenius_record_has_every_phase(data, tmp_path):
    rec = run_experiment(cfg("frobenius", epochs=3, diagnostics=True), tmp_path, data=data)
    ph = rec["phases"]
    assert ph["main"]["epochs_run"] == 3 and ph["sft"]["epochs_run"] == 1   # default: epochs // 5, >= 1
    nn_info = ph["norm"]["norm_net"]
    assert {"weight", "bias", "final_loss", "n_majority"} <= set(nn_info)
    per = ph["norm"]["per_label"]
    assert len(per["predicted_norm"]) == data.binning.n_bins
    maj = np.array(per["majority"])
    assert maj.sum() == nn_info["n_majority"] == (data.bin_shots() == "many").sum()
    assert np.all(np.array(per["predicted_norm"]) > 0)
    assert set(rec["phase_times_s"]) == {"main", "norm", "sft"}
    # diagnostics of the final model: per-label norms / MAE and an ordinality score
    diag = ph["sft"]["train_per_label"]
    assert -1 <= diag["ordinality"]["spearman"] <= 1
    assert len(diag["per_label"]["proto_norm"]) == int((data.binning.counts(data.train_labels) > 0).sum())
    # the phase-3 alignment term was active
    assert "log/align" in ph["sft"]["history"][-1]


def test_phase3_pulls_norms_towards_prediction(data, tmp_path):
    """With a large gamma and enough fine-tuning, per-sample norms end closer to NormNet's targets."""
    rec = run_experiment(cfg("frobenius", epochs=3, method_kwargs={
        "frobenius.gamma": 5.0, "frobenius.sft_epochs": 4, "frobenius.sft_lr": 3e-3}),
        tmp_path, data=data)
    hist = rec["phases"]["sft"]["history"]
    assert hist[-1]["log/align"] < hist[0]["log/align"]


def test_multi_phase_methods_do_not_combine(data):
    with pytest.raises(ValueError, match="two multi-phase"):
        build_method(cfg("rrt+frobenius"), data)


def test_method_args_are_checked(data):
    with pytest.raises(ValueError, match="COMPONENT.KEY"):
        build_method(cfg("ranksim", method_kwargs={"gamma": 1}), data)
    with pytest.raises(ValueError, match="does not belong"):
        build_method(cfg("ranksim", method_kwargs={"conr.beta": 1}), data)
    with pytest.raises(TypeError, match="must be a number"):
        build_method(cfg("ranksim", method_kwargs={"ranksim.gamma": "big"}), data)
    with pytest.raises(ValueError, match=r"unknown method argument\(s\) \['ranksim.nope'\].*ranksim.gamma"):
        build_method(cfg("ranksim", method_kwargs={"ranksim.nope": 1}), data)
    spec = build_method(cfg("ranksim", method_kwargs={"ranksim.gamma": 7}), data)
    assert spec.settings["ranksim"]["gamma"] == 7


def test_weighting_components(data):
    spec = build_method(cfg("lds"), data)
    w = spec.sample_weights
    assert w.shape == (len(data.train_labels),) and abs(w.mean() - 1) < 1e-9
    # rarer labels weigh more
    counts = data.binning.counts(data.train_labels)[data.train_bins]
    assert w[np.argmin(counts)] > w[np.argmax(counts)]
    assert spec.settings["weighting"]["reweight"] == "sqrt_inv"
    spec_inv = build_method(cfg("inv+lds"), data)
    assert spec_inv.settings["weighting"]["reweight"] == "inverse"


def test_rrt_freezes_encoder_in_second_stage(data, tmp_path):
    rec = run_experiment(cfg("rrt"), tmp_path, data=data)
    assert set(rec["phases"]) == {"main", "rrt"} and rec["final"] == "rrt"
    assert rec["phases"]["rrt"]["weighting"]["reweight"] == "sqrt_inv"


def test_cli_base_loss_flag(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "synthetic", "--method", "frobenius", "--base-loss", "lds",
                 "--epochs", "2", "--out", str(out), "--no-progress", "--no-diagnostics",
                 "--method-arg", "frobenius.sft_epochs=1"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["config"]["method"] == "lds+frobenius" and "weighting" in rec["method_info"]
