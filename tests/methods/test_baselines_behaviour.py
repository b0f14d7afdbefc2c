"""The evidential, contrastive and oversampling baselines (SMOTER, SMOGN, RnC, DER, VAE, VIR,
Dist Loss, SRL) through the one trainer and the CLI: synthetic runs, composition with the
Frobenius method, the behaviour each method promises, and short runs on real STS-B-DIR and
UTKFace-DIR (each loaded once per module; ``--subset-eval 64`` keeps the runs short)."""
import json

import numpy as np
import pytest
import torch

from dirlib.cli import main
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.methods import build_method
from dirlib.train import fit
from helpers import SYN, syn_cfg

SYN_ARGS = ["--data-arg", "n_labels=30", "n_max=150", "width=5.0"]
NEW = ["smoter", "smogn", "rnc", "supcr", "der", "lds+fds+der", "vae", "vir", "distloss", "srl"]
WITH_FROBENIUS = ["smoter", "smogn", "der", "lds+fds+der", "vae", "vir", "distloss", "srl"]


def cli(tmp_path, name, args):
    out = tmp_path / name
    assert main(["train", *args, "--out", str(out), "--no-progress", "--no-diagnostics"]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "completed"
    return rec


cfg = syn_cfg


@pytest.fixture(scope="module")
def syn():
    return load_synthetic(**SYN)


@pytest.mark.parametrize("base", WITH_FROBENIUS)
def test_compose_with_frobenius(base, syn, tmp_path):
    rec = run_experiment(cfg(f"{base}+frobenius", max_batches=6, method_kwargs={
        "frobenius.sft_epochs": 1, "frobenius.norm_epochs": 300}), tmp_path, data=syn)
    assert set(rec["phases"]) == {"main", "norm", "sft"}
    hist = rec["phases"]["main"]["history"][-1]
    assert "log/kl" in hist and np.isfinite(rec["test"]["all"]["mae"])


def test_incompatible_combinations_fail_clearly(syn):
    for method, msg in [("rnc+frobenius", "two multi-phase"), ("supcr+rnc", "same method"),
                        ("vir+fds", "PRM"), ("vir+der", "replaces the regression loss"), ("vir+vae", "vir already"), ("der+bmc", "replaces the regression loss"),
                        ("bmc+der", "replaces the regression loss"), ("der+distloss", "replaces the regression loss"),
                        ("rrt+der", "rrt"), ("rnc+distloss", "linear probe")]:
        with pytest.raises(ValueError, match=msg):
            build_method(cfg(method), syn)
    with pytest.raises(ValueError, match="over"):
        build_method(cfg("smoter", method_kwargs={"smoter.over": "lots"}), syn)
    with pytest.raises(ValueError, match="incomplete"):
        build_method(cfg("distloss", method_kwargs={"distloss.incomplete": "pad"}), syn)


# ------------------------------------------------------------------------------ behaviour
def test_head_callbacks_run_last_and_der_predicts_gamma(syn):
    spec = build_method(cfg("der+fds"), syn)
    assert [cb.name for cb in spec.callbacks][-1] == "der"
    spec = build_method(cfg("vae+der+ranksim"), syn)
    assert [cb.name for cb in spec.callbacks][-2:] == ["vae", "der"]
    spec = build_method(cfg("der"), syn)
    res = fit(cfg("der", epochs=1), syn, spec)
    model = res["model"].eval()
    x = torch.stack([syn.test[i][0] for i in range(8)])
    pred, z = model(x)
    assert torch.allclose(pred, model.head(z).squeeze(-1))       # evaluation: gamma = head(z)
    nu, alpha, beta = spec.callbacks[-1].params(z)
    assert (nu > 0).all() and (alpha > 1).all() and (beta > 0).all()


def test_vir_and_srl_statistics_are_collected(syn):
    spec = build_method(cfg("vir"), syn)
    assert spec.sample_weights is not None                        # LDS weights enter the pseudo-counts
    fit(cfg("vir"), syn, spec)
    vir = spec.callbacks[-1]
    assert vir.prm.num_samples_tracked.sum() > 0 and int(vir.prm.epoch) == 1
    spec = build_method(cfg("srl", epochs=3), syn)
    res = fit(cfg("srl", epochs=3), syn, spec)
    bank = spec.callbacks[-1].bank
    assert int(bank.n_updates) == 3 and bank.surrogate().abs().sum() > 0
    assert {"log/srl_con", "log/srl_uni", "log/srl_smo"} <= set(res["history"][-1])


def test_rnc_linear_probe_keeps_the_pretrained_encoder(syn, tmp_path):
    run_experiment(cfg("rnc", method_kwargs={"rnc.pretrain_epochs": 2, "rnc.linear_epochs": 1}),
                   tmp_path, data=syn)
    pre = torch.load(tmp_path / "ckpt" / "rnc.pt", weights_only=False)["model"]
    lin = torch.load(tmp_path / "ckpt" / "linear.pt", weights_only=False)["model"]
    enc = [k for k in pre if k.startswith("encoder.")]
    assert enc and all(torch.equal(pre[k], lin[k]) for k in enc)  # frozen, last pre-training epoch
    assert not torch.equal(pre["head.weight"], lin["head.weight"])
    # phase 1 never trains the head: it stays at its initialisation
    from dirlib.models import build_model
    from dirlib.train import seed_everything
    seed_everything(0)                                            # as fit() builds the model
    first = build_model(syn.model, **syn.model_kwargs)
    assert torch.equal(pre["head.weight"], first.state_dict()["head.weight"])


def test_distloss_batch_policies(syn):
    for policy, dropped in (("drop", 1), ("resize", 0)):
        c = cfg("distloss", epochs=1, method_kwargs={"distloss.incomplete": policy})
        res = fit(c, syn, build_method(c, syn))
        last = res["history"][-1]
        assert len(syn.train_labels) % 64 != 0 and last["log/dist_dropped"] == dropped
    c = cfg("distloss", epochs=1, max_batches=1)
    last = fit(c, syn, build_method(c, syn))["history"][-1]
    assert last["log/dist_dropped"] == 0 and last["log/dist"] >= 0


def test_smoter_feature_and_input_space(syn):
    for m in ("smoter", "smogn"):
        c = cfg(m, epochs=1, max_batches=1)
        spec = build_method(c, syn)
        assert spec.settings[m]["rare_bumps"] >= 1
        assert fit(c, syn, spec)["history"][-1][f"log/{m}_n"] > 0
    c = cfg("smogn", epochs=1, max_batches=2, method_kwargs={"smogn.space": "input"})
    spec = build_method(c, syn)
    assert spec.settings["smogn"]["pool_size"] > 0
    assert fit(c, syn, spec)["history"][-1]["log/smogn_n"] > 0


@pytest.mark.parametrize("method", ["vir", "srl", "smogn"])
def test_killed_run_resumes_to_the_same_result(method, syn, tmp_path, monkeypatch):
    """The methods' own state (PRM statistics, surrogate bank, head modules, RNG of the
    oversampler) is in the checkpoint: a run killed after epoch 1 and restarted with the same
    command ends where an uninterrupted run does."""
    import dirlib.train as T
    c = cfg(method, epochs=3, max_batches=4)
    full = run_experiment(c, tmp_path / "full", data=syn)["test"]["all"]["mae"]
    orig, calls = T.evaluate, {"n": 0}

    def killed_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return orig(*a, **k)
    monkeypatch.setattr(T, "evaluate", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(c, tmp_path / "resumed", data=syn)
    monkeypatch.setattr(T, "evaluate", orig)
    rec = run_experiment(c, tmp_path / "resumed", data=syn)
    assert rec["phases"]["main"]["resumed_from_epoch"] == 0
    assert rec["test"]["all"]["mae"] == full
