"""Post-hoc phases 2-3 (dirlib.paper.posthoc), the audit's tables (dirlib.paper.audit) and paired intervals
(dirlib.stats): each variant's defining property, on small synthetic runs."""
import json
import math
import shutil

import numpy as np
import pytest
import torch
from helpers import SYN, syn_cfg

from dirlib import records
from dirlib.paper import audit
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.models import Regressor
from dirlib.paper.posthoc import (PosthocConfig, code_finetune, code_norm_loss, fit_softplus_norm_net,
                            load_base, run_posthoc, select_rules, stratified_halves)
from dirlib.stats import paired_difference

SMALL = dict(regression_epochs=3, linear_epochs=(1, 2))


@pytest.fixture(scope="module")
def data():
    return load_synthetic(**SYN)


@pytest.fixture(scope="module")
def base(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("base") / "vanilla" / "seed0"
    run_experiment(syn_cfg("vanilla"), d, data=data)
    return d


def _rows(ds):
    return {tuple(np.round(ds[i][0][:3].numpy(), 5)) for i in range(len(ds))}


class TrainModeInputs:
    """Records the input rows of every forward pass of a Regressor in train mode (what reaches
    the optimiser)."""

    def __enter__(self):
        self.rows = set()

        def hook(module, args):
            if isinstance(module, Regressor) and module.training:
                x = args[0]
                self.rows |= {tuple(r) for r in np.round(x[:, :3].detach().numpy(), 5)}

        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# ------------------------------------------------------------------------------------ variants
def test_code_phase3_trains_on_validation_items_only(base, data, tmp_path):
    with TrainModeInputs() as seen:
        rec = run_posthoc(base, "code", tmp_path / "code", data=data,
                          config=PosthocConfig(variant="code", **SMALL))
    assert rec["status"] == "completed"
    assert seen.rows, "no training step was observed"
    assert seen.rows <= _rows(data.val)
    assert not seen.rows & _rows(data.train)
    assert not seen.rows & _rows(data.test)


def test_text_phase3_trains_on_training_items_only(base, data, tmp_path):
    with TrainModeInputs() as seen:
        rec = run_posthoc(base, "text", tmp_path / "text", data=data,
                          config=PosthocConfig(variant="text", sft_epochs=1))
    assert rec["status"] == "completed"
    assert seen.rows and seen.rows <= _rows(data.train)
    assert not seen.rows & _rows(data.val)


def test_heldout_half_never_reaches_the_optimiser(base, data):
    _, cfg, _, model, device = load_base(base, data)
    fit_idx, held_idx = stratified_halves(data.val_labels, data.binning, seed=3)
    val_items = [tuple(np.round(data.val[i][0][:3].numpy(), 5)) for i in range(len(data.val))]
    with TrainModeInputs() as seen:
        code_finetune(model, data, fit_idx, cfg, PosthocConfig(variant="code-no-norm",
                                                               regression_epochs=2),
                      device, heldout_idx=held_idx)
    assert seen.rows == {val_items[i] for i in fit_idx}
    assert not seen.rows & {val_items[i] for i in held_idx}


def test_stratified_halves_are_disjoint_cover_and_balanced(data):
    a, b = stratified_halves(data.val_labels, data.binning, seed=0)
    assert not set(a) & set(b)
    assert sorted(np.concatenate([a, b])) == list(range(len(data.val_labels)))
    ca = np.bincount(data.binning.index(data.val_labels[a]), minlength=data.binning.n_bins)
    cb = np.bincount(data.binning.index(data.val_labels[b]), minlength=data.binning.n_bins)
    assert np.all(np.abs(ca - cb) <= 1)
    a2, _ = stratified_halves(data.val_labels, data.binning, seed=1)
    assert not np.array_equal(a, a2)   # the split depends on its seed


def test_no_norm_variants_have_zero_norm_term(base, data, tmp_path):
    rec = run_posthoc(base, "code-no-norm", tmp_path / "cnn", data=data,
                      config=PosthocConfig(variant="code-no-norm", **SMALL))
    assert all(e["norm_term"] == 0.0 for g in rec["grid"] for e in g["epochs"])
    rec_code = run_posthoc(base, "code", tmp_path / "code", data=data,
                           config=PosthocConfig(variant="code", **SMALL))
    assert any(e["norm_term"] > 0 for g in rec_code["grid"] for e in g["epochs"])
    tn = run_posthoc(base, "text-no-norm", tmp_path / "tnn", data=data,
                     config=PosthocConfig(variant="text-no-norm", sft_epochs=1, gamma=5.0))
    assert tn["posthoc"]["gamma"] == 0.0        # forced, whatever was asked
    t = run_posthoc(base, "text", tmp_path / "t", data=data,
                    config=PosthocConfig(variant="text", sft_epochs=1, gamma=0.0))
    # gamma 0 under "text" trains exactly as text-no-norm does: the term contributes nothing
    assert t["test"]["all"]["mae"] == tn["test"]["all"]["mae"]
    t5 = run_posthoc(base, "text", tmp_path / "t5", data=data,
                     config=PosthocConfig(variant="text", sft_epochs=1, gamma=5.0))
    assert t5["test"]["all"]["mae"] != tn["test"]["all"]["mae"]


def test_code_and_code_no_norm_pair_up(base, data, tmp_path):
    """Both start from the same state and draw the same batches: with an all-zero norm target set
    to each batch's own norms the code loss would be MSE; here we check the starting point only."""
    c = run_posthoc(base, "code", tmp_path / "c", data=data, config=PosthocConfig(variant="code",
                                                                                   **SMALL))
    n = run_posthoc(base, "code-no-norm", tmp_path / "n", data=data,
                    config=PosthocConfig(variant="code-no-norm", **SMALL))
    assert c["base"]["config_hash"] == n["base"]["config_hash"]
    assert c["split"] == n["split"]
    assert set(c["selected"]) == set(n["selected"]) == {"best_test", "heldout"}  # no (10, 10) here


# ------------------------------------------------------------------------------------ pieces
def test_softplus_norm_net_recovers_a_known_line():
    labels = np.linspace(1, 5, 12)
    norms = 2.0 * labels + 1.0          # softplus(w y + b) ~ w y + b where w y + b >> 0
    net, snaps = fit_softplus_norm_net(labels, norms, epochs=1500, snapshots=(1, 1500), lr=0.02,
                                       weight_decay=0.0, seed=0)
    w, b = float(net.linear.weight), float(net.linear.bias)
    assert w == pytest.approx(2.0, abs=0.05) and b == pytest.approx(1.0, abs=0.2)
    assert float(snaps[1500].linear.weight) == w
    assert float(snaps[1].linear.weight) != w


def test_softplus_norm_net_snapshots_equal_separate_fits():
    labels, norms = np.arange(6.0), np.arange(6.0) * 0.5 + 3
    _, snaps = fit_softplus_norm_net(labels, norms, epochs=7, snapshots=(3, 7), seed=4)
    net3, _ = fit_softplus_norm_net(labels, norms, epochs=3, seed=4)
    assert torch.equal(snaps[3].linear.weight, net3.linear.weight)


def _code_norm_loss_loop(z, bins, target):
    total = 0.0
    for u in sorted(set(bins.tolist())):
        norms = [math.sqrt(sum(float(v) ** 2 for v in z[i])) for i in range(len(bins))
                 if int(bins[i]) == u]
        total += (sum(norms) / len(norms) - float(target[u])) ** 2
    return total


def test_code_norm_loss_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(9, 4, generator=g)
    bins = torch.tensor([0, 2, 2, 5, 0, 5, 5, 1, 2])
    target = torch.rand(6, generator=g) * 3
    assert float(code_norm_loss(z, bins, target)) == pytest.approx(
        _code_norm_loss_loop(z, bins, target), rel=1e-6)
    target[3] = float("nan")              # a bin outside the batch may lack a target
    code_norm_loss(z, bins, target)
    target[2] = float("nan")
    with pytest.raises(ValueError, match="no target norm"):
        code_norm_loss(z, bins, target)


def _grid_entry(lin, fit_on, test_vals, held_vals=None):
    eps = []
    for i, v in enumerate(test_vals):
        e = {"epoch": i + 1, "test": {s: {"mae": v} for s in ("all", "many", "median", "few")}}
        if held_vals is not None:
            e["heldout"] = {s: {"mae": held_vals[i]} for s in ("all", "many", "median", "few")}
        eps.append(e)
    return {"linear_epochs": lin, "fit_on": fit_on, "epochs": eps}


def test_selection_rules_read_the_right_fine_tunes():
    grid = [
        # whole validation: test error lowest at (L=1, e=3)
        _grid_entry(1, "val", [5, 5, 1, 5, 5, 5, 5, 5, 5, 4]),
        _grid_entry(10, "val", [6, 6, 6, 6, 6, 6, 6, 6, 6, 3]),
        # half fine-tunes: their own test numbers would point at (1, 3), the held-out half at (10, 5)
        _grid_entry(1, "val_half", [0] * 10, [9, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
        _grid_entry(10, "val_half", [9] * 10, [9, 9, 9, 9, 2, 9, 9, 9, 9, 9]),
    ]
    sel = select_rules(grid, "mae")
    assert (sel["best_test"]["linear_epochs"], sel["best_test"]["regression_epochs"]) == (1, 3)
    assert sel["best_test"]["test"]["all"]["mae"] == 1
    assert (sel["heldout"]["linear_epochs"], sel["heldout"]["regression_epochs"]) == (10, 5)
    assert sel["heldout"]["test"]["all"]["mae"] == 6     # the whole-validation fine-tune there
    assert sel["heldout"]["heldout_value"] == 2
    assert (sel["default"]["linear_epochs"], sel["default"]["regression_epochs"]) == (10, 10)
    assert sel["default"]["test"]["all"]["mae"] == 3


def test_paired_difference_matches_hand_computed_values():
    a = [2.0, 3.5, 1.0, 4.0, 2.5]
    b = [1.0, 3.0, 1.5, 2.0, 2.0]
    d = paired_difference(a, b)
    diffs = [1.0, 0.5, -0.5, 2.0, 0.5]
    mean = sum(diffs) / 5                                            # 0.7
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 4)          # 0.9083
    half = 2.7764451051977987 * sd / math.sqrt(5)                    # t(0.975, 4)
    assert d.mean == pytest.approx(mean) and d.sd == pytest.approx(sd)
    assert (d.lo, d.hi) == pytest.approx((mean - half, mean + half))
    assert not d.detectable and d.direction == 0
    big = paired_difference([3.0, 3.1, 2.9], [1.0, 1.0, 1.0])
    assert big.detectable and big.direction == 1
    one = paired_difference([1.0], [0.0])
    assert math.isnan(one.lo) and not one.detectable
    with pytest.raises(ValueError, match="pair up"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])


# ------------------------------------------------------------------------------------ records
def test_posthoc_record_links_its_base_and_resumes(base, data, tmp_path):
    out = tmp_path / "code"
    rec = run_posthoc(base, "code-no-norm", out, data=data,
                      config=PosthocConfig(variant="code-no-norm", **SMALL))
    base_rec = records.read_json(base / "run.json")
    assert rec["base"]["config_hash"] == base_rec["config_hash"]
    assert (out / rec["base"]["path"] / "run.json").resolve() == (base / "run.json").resolve()
    assert rec["config_hash"] != base_rec["config_hash"]
    assert len(rec["grid"][0]["epochs"]) == 3 and "test" in rec["grid"][0]["epochs"][0]
    # an interrupted run keeps its finished fine-tunes: drop one and mark the record running
    partial = json.loads((out / "run.json").read_text())
    partial["status"] = "running"
    partial["grid"] = partial["grid"][:1]
    (out / "run.json").write_text(json.dumps(partial))
    logs = []
    again = run_posthoc(base, "code-no-norm", out, data=data, log=logs.append,
                        config=PosthocConfig(variant="code-no-norm", **SMALL))
    assert len(again["grid"]) == 2 and again["grid"][0] == rec["grid"][0]
    assert again["selected"] == rec["selected"]
    assert sum("on val" in m for m in logs) == 1          # only the missing fine-tune ran
    with pytest.raises(RuntimeError, match="another configuration"):
        run_posthoc(base, "code-no-norm", out, data=data,
                    config=PosthocConfig(variant="code-no-norm", regression_epochs=2))


def test_load_base_refuses_a_foreign_checkpoint(base, data, tmp_path):
    other = tmp_path / "other"
    run_experiment(syn_cfg("vanilla", seed=1), other, data=data)
    import shutil
    forged = tmp_path / "forged"
    shutil.copytree(base, forged)
    for name in ("main.pt", "main.pt.sha256"):   # a consistent checkpoint of another run
        shutil.copyfile(other / "ckpt" / name, forged / "ckpt" / name)
    with pytest.raises(ValueError, match="belongs to another run"):   # its run key says so
        load_base(forged, data)
    (forged / "ckpt" / "main.pt").unlink()
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_base(forged, data)


def test_audit_runs_collects_and_decomposes(tmp_path, data):
    plan = {"train": {"epochs": 2, "data_kwargs": SYN, "diagnostics": False},
            "bases": ("vanilla",), "phase1": ("vanilla",), "posthoc": dict(SMALL, sft_epochs=1)}
    work, res = tmp_path / "work", tmp_path / "results"
    audit.run_audit("synthetic", [0, 1], work=work, results=res, plan=plan, data=data,
                    log=lambda m: None)
    df = audit.collect(res)
    assert set(df["arm"]) == {"base", "phase1", "phase1>text", "text", "text-no-norm",
                              "code@best_test", "code@heldout", "code-no-norm@best_test",
                              "code-no-norm@heldout", "code-fitted@best_test",
                              "code-fitted@heldout", "code-from-scratch@best_test",
                              "code-from-scratch@heldout"}
    t = audit.decomposition(df, "synthetic", "vanilla", "heldout")
    row = t[(t["effect"] == audit.EFFECTS[4][0]) & (t["shot"] == "few")].iloc[0]
    want = paired_difference(
        df[(df.arm == "text-no-norm") & (df.shot == "few")].sort_values("seed")["value"],
        df[(df.arm == "base") & (df.shot == "few")].sort_values("seed")["value"])
    assert row["mean"] == pytest.approx(want.mean) and row["n"] == 2
    text = audit.conclusion({("synthetic", "vanilla"): t})
    assert "synthetic, base Vanilla" in text and "2 paired seeds" in text
    para = audit.dataset_answer(df, "synthetic")
    # two seeds: no primary cell has the four a verdict needs, and the answer says so
    assert "no primary cell has 4 paired seeds yet" in para
    # the exploratory part says how many uncorrected intervals it read
    assert "uncorrected 95% intervals; about" in para
    sel = t[(t["effect"] == audit.SELECTION_EFFECT) & (t["shot"] == "all")].iloc[0]
    from dirlib.paper.naming import signed
    assert f"Vanilla {signed(sel['mean'])} [{signed(sel['lo'])}, {signed(sel['hi'])}]" in para
    # checkpoints stay in the work folder; results hold records only
    assert not list(res.rglob("*.pt")) and list(work.rglob("main.pt"))
    # a second call trains nothing
    logs = []
    audit.run_audit("synthetic", [0, 1], work=work, results=res, plan=plan, data=data,
                    log=logs.append)
    assert not any(m.startswith("done") for m in logs)
    # a fresh checkout (no work folder): every arm stored in results is skipped, no base retrained
    shutil.rmtree(work)
    logs = []
    audit.run_audit("synthetic", [0, 1], work=work, results=res, plan=plan, data=data,
                    log=logs.append)
    assert not any(m.startswith(("done", "retrain")) for m in logs), logs
    # one stored arm lost: its base is retrained, must reproduce the stored record, and the arm runs
    (res / "synthetic" / "vanilla" / "seed1" / "posthoc" / "code" / "run.json").unlink()
    logs = []
    audit.run_audit("synthetic", [0, 1], work=work, results=res, plan=plan, data=data,
                    log=logs.append)
    done = [m for m in logs if m.startswith(("done", "retrain"))]
    assert [m.split()[0] for m in done] == ["retrain", "done", "done"], logs
    assert "seed1" in done[0] and done[2].rstrip().split()[1].endswith("posthoc/code")
    assert not any("WARNING" in m for m in logs), logs
    assert (res / "synthetic" / "vanilla" / "seed1" / "posthoc" / "code" / "run.json").exists()


def test_method_tables_do_not_read_audit_records(tmp_path, base):
    from dirlib.paper.record_tables import load_records
    import shutil
    shutil.copytree(base, tmp_path / "runs" / "synthetic" / "vanilla" / "seed0")
    shutil.copytree(base, tmp_path / "audit" / "synthetic" / "vanilla" / "seed0")
    got = load_records(tmp_path)
    assert [r["_path"] for r in got] == [str(tmp_path / "runs" / "synthetic" / "vanilla" / "seed0"
                                             / "run.json")]
    assert len(load_records(tmp_path / "audit")) == 1


# ------------------------------------------------------------------------------------ new arms
def test_fitted_norm_net_fits_better_than_the_codes_and_is_recorded(base, data, tmp_path):
    from dirlib.paper.posthoc import fit_softplus_norm_net_converged, norm_fit_error
    labels = np.arange(20.0, 80.0)
    norms = 19.0 + 0.9 * (labels - 20.0)          # the UTKFace-DIR range of the issue: 19-73
    code_net, _ = fit_softplus_norm_net(labels, norms, epochs=19, seed=0)
    fitted, info = fit_softplus_norm_net_converged(labels, norms)
    assert norm_fit_error(code_net, labels, norms)["rmse"] > 10     # the code's under-fit
    assert norm_fit_error(fitted, labels, norms)["rmse"] < 1e-3 and info["grad_norm"] < 1e-4
    rec = run_posthoc(base, "code-fitted", tmp_path / "cf", data=data,
                      config=PosthocConfig(variant="code-fitted", **SMALL))
    assert [g["linear_epochs"] for g in rec["grid"]] == [None, None]      # one fitted net
    fit = rec["norm"]["by_linear_epochs"]["fitted"]["fit"]
    code = run_posthoc(base, "code", tmp_path / "c", data=data,
                       config=PosthocConfig(variant="code", **SMALL))
    assert all(fit["rmse"] <= v["fit"]["rmse"] + 1e-9
               for v in code["norm"]["by_linear_epochs"].values())
    assert set(rec["selected"]) == {"best_test", "heldout"}


def test_from_scratch_arm_needs_no_checkpoint_and_starts_at_the_runs_init(base, data, tmp_path):
    from dirlib.models import build_model
    from dirlib.train import seed_everything
    copy = tmp_path / "base"
    shutil.copytree(base, copy)
    shutil.rmtree(copy / "ckpt")
    rec = run_posthoc(copy, "code-from-scratch", tmp_path / "s", data=data,
                      config=PosthocConfig(variant="code-from-scratch", **SMALL))
    assert rec["status"] == "completed"
    assert rec["start"]["test"]["all"]["mae"] != rec["base_test"]["all"]["mae"]
    _, cfg, _, model, _ = load_base(copy, data, from_scratch=True)
    seed_everything(cfg.seed)
    fresh = build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 fresh.state_dict().values()))


def test_code_records_store_their_start_loss_ratio_and_health(base, data, tmp_path):
    from dirlib.paper.posthoc import fine_tune_health
    rec = run_posthoc(base, "code", tmp_path / "c", data=data,
                      config=PosthocConfig(variant="code", **SMALL))
    base_rec = json.loads((base / "run.json").read_text())
    assert rec["start"]["test"]["all"]["mae"] == pytest.approx(base_rec["test"]["all"]["mae"],
                                                                rel=1e-6)
    for g in rec["grid"]:
        for e in g["epochs"]:
            assert e["train_loss"] == pytest.approx(e["task_loss"] + e["norm_term"], rel=1e-5)
            assert e["norm_to_task"] == pytest.approx(e["norm_term"] / e["task_loss"])
    rows = fine_tune_health(rec, "mae")
    assert len(rows) == len(SMALL["linear_epochs"]) and all(r["start_stored"] for r in rows)
    for r, g in zip(rows, [g for g in rec["grid"] if g["fit_on"] == "val_half"]):
        end = g["epochs"][-1]["heldout"]["all"]["mae"]
        assert r["end"] == end and r["worse"] == (end > rec["start"]["heldout"]["all"]["mae"])
    # an older record without a stored start: the caller's start is used, and says so
    old = {k: v for k, v in rec.items() if k != "start"}
    rows = fine_tune_health(old, "mae", start_heldout=-1.0)
    assert all(r["worse"] and not r["start_stored"] for r in rows)


def test_audit_replaces_dirty_records_when_asked(tmp_path, data):
    plan = {"train": {"epochs": 2, "data_kwargs": SYN, "diagnostics": False},
            "bases": ("vanilla",), "phase1": (), "posthoc": dict(SMALL, sft_epochs=1)}
    work, res = tmp_path / "work", tmp_path / "results"
    kw = dict(work=work, results=res, plan=plan, data=data, variants=("code-no-norm",),
              log=lambda m: None)
    audit.run_audit("synthetic", [0], **kw)
    shutil.rmtree(work)
    stored = res / "synthetic" / "vanilla" / "seed0"
    for p in (stored / "run.json", stored / "posthoc" / "code-no-norm" / "run.json"):
        rec = json.loads(p.read_text())
        rec["git"] = {"commit": "0" * 40, "dirty": True}
        p.write_text(json.dumps(rec))
    logs = []
    audit.run_audit("synthetic", [0], **{**kw, "log": logs.append})   # not asked: kept
    assert not any(m.startswith(("done", "retrain")) for m in logs), logs
    logs = []
    audit.run_audit("synthetic", [0], **{**kw, "log": logs.append}, replace_dirty=True)
    assert [m.split()[0] for m in logs if m.startswith(("done", "retrain"))] == \
        ["retrain", "done", "done"], logs
    assert not any("WARNING" in m for m in logs), logs
    for p in (stored / "run.json", stored / "posthoc" / "code-no-norm" / "run.json"):
        assert json.loads(p.read_text())["git"]["commit"] != "0" * 40


def test_audit_reruns_arms_of_a_base_that_did_not_reproduce(tmp_path, data):
    plan = {"train": {"epochs": 2, "data_kwargs": SYN, "diagnostics": False},
            "bases": ("vanilla",), "phase1": (), "posthoc": dict(SMALL, sft_epochs=1)}
    work, res = tmp_path / "work", tmp_path / "results"
    kw = dict(work=work, results=res, plan=plan, data=data, variants=("code-no-norm", "text"))
    audit.run_audit("synthetic", [0], **kw, log=lambda m: None)
    stored = res / "synthetic" / "vanilla" / "seed0"
    arm = stored / "posthoc" / "code-no-norm" / "run.json"
    # an arm that saw another checkpoint of its base does not pair with it: the tables refuse it
    rec = json.loads(arm.read_text())
    rec["base_test"]["all"]["mae"] += 1.0
    arm.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="another checkpoint"):
        audit.collect(res)
    # a stored base that the code no longer reproduces (an older commit's numbers), and a new arm
    # to run on it: the base is retrained, and the arm made from another checkpoint is rerun
    shutil.rmtree(work)
    rec = json.loads((stored / "run.json").read_text())
    rec["test"]["all"]["mse"] += 0.5
    (stored / "run.json").write_text(json.dumps(rec))
    logs = []
    audit.run_audit("synthetic", [0], **{**kw, "variants": ("code-no-norm", "text", "code")},
                    log=logs.append)
    assert any(m.startswith("WARNING") and "differs" in m for m in logs), logs
    # text was made from the checkpoint the retrain reproduces; code-no-norm saw another one
    assert [m.split()[1].rstrip(":").rsplit("/", 1)[-1] for m in logs if m.startswith("stale")] == \
        ["code-no-norm"], logs
    df = audit.collect(res)          # pairs again
    assert {"base", "text", "code-no-norm@heldout", "code@heldout"} <= set(df["arm"])
