"""Records, the fourth adversarial pass (issue: "Records, round four"): one test per serious case,
named by its number (S1 is in tests/tools/test_tune.py: tune sets aside, never overwrites).

Each failed on the code before its fix: a stale post-hoc result was kept, a table was written
outside --out, a set-aside record lost its diff, a resume across a code change was silent, a
record's diff ran unasked (tests/core/test_record_defects.py), a reused buffer changed a metric.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SYN, syn_cfg

from dirlib import records
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.metrics import ShotMetrics, shot_metrics


def _rec(p: Path) -> dict:
    return json.loads(p.read_text())


def test_s2_posthoc_does_not_keep_results_from_a_stale_base(tmp_path):
    """After the base is retrained on other data (--overwrite), the post-hoc arm is rerun: the
    skip compares the base's data hash, run key and test metrics, not only the config hash."""
    from dirlib.paper.posthoc import PosthocConfig, run_posthoc
    base = tmp_path / "base"
    data_a = load_synthetic(**SYN)
    run_experiment(syn_cfg("vanilla"), base, data=data_a)
    pc = PosthocConfig(variant="text-no-norm", sft_epochs=1)
    first = run_posthoc(base, "text-no-norm", tmp_path / "ph", data=data_a, config=pc,
                        log=lambda m: None)
    # changed data under the same config (as an edited CSV behind an unchanged TOML)
    data_b = load_synthetic(**{**SYN, "n_max": 120})
    assert records.data_hash(data_b) != records.data_hash(data_a)
    new_base = run_experiment(syn_cfg("vanilla"), base, data=data_b, overwrite=True)
    said = []
    second = run_posthoc(base, "text-no-norm", tmp_path / "ph", data=data_b, config=pc,
                         log=said.append)
    assert any(m.startswith("stale") for m in said), said
    assert second["base_test"] == new_base["test"] != first["base_test"]
    assert second["base"]["resume_key"] == new_base["resume_key"]
    assert len(list((tmp_path / "ph").glob("run.replaced-*.json"))) == 1     # the old one kept
    # the same base again: skipped, not rerun
    said.clear()
    run_posthoc(base, "text-no-norm", tmp_path / "ph", data=data_b, config=pc, log=said.append)
    assert any(m.startswith("skip") for m in said)


def test_s3_results_tables_stay_inside_out(tmp_path, capsys):
    """A record whose dataset is an absolute path, or crafted to climb out, still writes its table
    inside --out, named after the file stem."""
    from dirlib.paper.record_tables import main as results
    rd = tmp_path / "runs" / "x" / "vanilla" / "seed0"
    run_experiment(syn_cfg("vanilla", epochs=1), rd)
    rec = _rec(rd / "run.json")
    outside = tmp_path / "victim"
    rec["config"]["dataset"] = str(outside / "d.toml")
    rec["config_hash"] = records.stable_hash(rec["config"])      # crafted, so consistent
    (rd / "run.json").write_text(json.dumps(rec))
    out = tmp_path / "tables"
    assert results(["tables", "--results", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert (out / "d.csv").exists() and not outside.exists()
    assert not list(tmp_path.glob("*.csv"))
    rec["config"]["dataset"] = "../../../etc/x"
    rec["config_hash"] = records.stable_hash(rec["config"])
    (rd / "run.json").write_text(json.dumps(rec))
    assert results(["tables", "--results", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert (out / "x.csv").exists()
    # --out that is a file: a clear error, rc 2
    f = tmp_path / "file"
    f.write_text("")
    assert results(["tables", "--results", str(tmp_path / "runs"), "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_s4_overwrite_keeps_the_set_aside_record_with_its_own_diff(tmp_path):
    """--overwrite sets run.json aside; its run.diff goes with it (renamed, its hash still
    matching), so the old record can still be reproduced."""
    rd = tmp_path / "r"
    run_experiment(syn_cfg("vanilla", epochs=1), rd)
    rec = _rec(rd / "run.json")
    patch = "diff --git a/dirlib/x.py b/dirlib/x.py\n+old code\n"
    (rd / "run.diff").write_text(patch)
    import hashlib
    rec["git"] = {"commit": rec["git"]["commit"], "dirty": True, "diff": "run.diff",
                  "diff_sha256": hashlib.sha256(patch.encode()).hexdigest()}
    (rd / "run.json").write_text(json.dumps(rec))
    run_experiment(syn_cfg("vanilla", epochs=1, lr=1e-3), rd, overwrite=True)
    kept = list(rd.glob("run.replaced-*.json"))
    assert len(kept) == 1
    old = _rec(kept[0])
    assert old == rec                                   # the kept record, byte for byte
    assert records.diff_path(kept[0], old) == kept[0].with_suffix(".diff")
    assert kept[0].with_suffix(".diff").read_text() == patch
    assert records.provenance_problem(kept[0], old) is None
    new = _rec(rd / "run.json")
    if not new["git"].get("dirty"):
        assert not (rd / "run.diff").exists()       # no stale diff beside a clean record


def test_s5_each_attempt_names_its_code_and_a_resume_across_code_warns(tmp_path):
    import dirlib.train as train
    rd = tmp_path / "r"
    cfg = syn_cfg("vanilla", epochs=3)
    # the first attempt stops after epoch 1 (as a kill would), under "other code"
    with train.pausing(1):
        with pytest.raises(train.RunPaused):
            run_experiment(cfg, rd)
    rec = _rec(rd / "run.json")
    assert rec["attempts"][0]["git"]["commit"] == rec["git"]["commit"]
    rec["attempts"][0]["git"] = {"commit": "f" * 40, "dirty": False, "diff_sha256": None}
    (rd / "run.json").write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match="resumes 1 attempt.*other code"):
        done = run_experiment(cfg, rd)
    assert done["status"] == "completed" and done["resumed_under_other_code"]
    assert [a["git"]["commit"] for a in done["attempts"]][0] == "f" * 40
    assert done["attempts"][-1]["git"]["commit"] == done["git"]["commit"]


def test_s7_shot_metrics_copies_what_it_is_given():
    train = np.repeat([1.0, 2.0, 3.0], [150, 50, 5])
    m = ShotMetrics(train_target=train)
    buf_p, buf_t = np.array([1.0, 2.5]), np.array([1.0, 2.0])
    m.update(buf_p, buf_t)
    buf_p[:] = [3.0, 3.0]                      # the caller reuses its buffers
    buf_t[:] = [3.0, 3.0]
    m.update(buf_p, buf_t)
    want = shot_metrics(np.array([1.0, 2.5, 3.0, 3.0]), np.array([1.0, 2.0, 3.0, 3.0]), train)
    assert m.compute()["all"]["mae"] == want["all"]["mae"] == pytest.approx(0.125)
    train[:] = 0.0                             # the training labels too
    assert m.compute()["many"]["n"] == want["many"]["n"]


TRAIN = ["train", "--dataset", "synthetic", "--epochs", "1", "--no-progress", "--no-diagnostics",
         "--data-arg", "n_labels=30", "n_max=150", "width=5.0"]


@pytest.mark.parametrize("extra,says", [
    (["--method", "lds+"], "empty part"), (["--method", "+lds"], "empty part"),
    (["--method", "lds++fds"], "empty part"), (["--method", "lds+lds"], "repeated"),
    (["--method", "vanilla", "--device", "mps"], "--device 'mps'"),
    (["--method", "vanilla", "--device", "meta"], "--device 'meta'"),
    (["--method", "lds", "--method-arg", "lds.sigma"], "--method-arg: expected KEY=VALUE"),
    (["--method", "vanilla", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["--method", "vanilla", "--model-arg", "hidden=-1"], "--model mlp with --model-arg"),
])
def test_command_line_defects_give_a_clear_error_and_leave_no_record(tmp_path, capsys, extra,
                                                                      says):
    from dirlib.cli import main as cli
    out = tmp_path / "run"
    assert cli(TRAIN + extra + ["--out", str(out)]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_out_under_a_file_posthoc_out_file_and_fetch_without_a_name(tmp_path, capsys):
    from dirlib.cli import main as cli
    f = tmp_path / "afile"
    f.write_text("")
    assert cli(TRAIN + ["--method", "vanilla", "--out", str(f / "x")]) == 2
    assert "is a file, so no folder can be made under it" in capsys.readouterr().err
    base = tmp_path / "base"
    assert cli(TRAIN + ["--method", "vanilla", "--out", str(base)]) == 0
    capsys.readouterr()
    assert cli(["posthoc", "--from", str(base), "--variant", "text", "--out", str(f)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert cli(["datasets", "fetch-example"]) == 2
    assert "needs a table's name; known: randhie" in capsys.readouterr().err


def test_method_names_are_stored_normalised(tmp_path):
    from dirlib.cli import main as cli
    assert cli(TRAIN + ["--method", " LDS ", "--out", str(tmp_path / "r")]) == 0
    assert _rec(tmp_path / "r" / "run.json")["config"]["method"] == "lds"


def test_table_defects_huge_bins_target_as_feature_duplicates_and_ignored_data_args(tmp_path):
    """Tables as datasets (round four): a bin count that would exhaust memory is refused before
    it allocates; the target among the features and rows repeated across splits warn; a
    --data-arg that a table ignores is refused."""
    import sys
    import warnings
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
    from test_datasets import _table
    from dirlib.data import from_arrays
    from dirlib.datasets import load_dataset
    from dirlib.datasets.table import SpecError
    x = np.zeros((30, 2), dtype=np.float32)
    y = np.linspace(0, 5, 30)
    with pytest.raises(ValueError, match="would make .* bins"):
        from_arrays(x, y, x, y, x, y, bin_width=1e-6)
    toml, _ = _table(tmp_path, n=300, features=["x1", "y"])
    with pytest.warns(UserWarning, match="target 'y' is listed among the features"):
        load_dataset(str(toml))
    # a table of 5 distinct rows repeated: val and test rows repeat training rows
    (tmp_path / "d.csv").write_text("y,x1\n" + "".join(f"{i % 5},{i % 5}\n" for i in range(300)))
    (tmp_path / "d.toml").write_text('path = "d.csv"\ntarget = "y"\nbin_width = 1\n')
    with pytest.warns(UserWarning, match="repeat a training row exactly"):
        load_dataset(str(tmp_path / "d.toml"))
    with pytest.raises(SpecError, match=r"takes no data argument \['n_max'\]"):
        load_dataset(str(toml), n_max=10)


def test_metric_defects_nan_targets_outside_bins_float_labels_and_permuted_items():
    """Metrics (round four): NaN/inf targets are refused like predictions; a test label outside the
    training bins is reported; float labels without a binning warn; evaluate refuses items whose
    targets are not the split's labels (a permuted DIRData gave a silent wrong MAE)."""
    import torch
    from dirlib.data import load_synthetic
    from dirlib.data.base import Binning
    from dirlib.experiment import run_experiment
    train = np.repeat([1.0, 2.0, 3.0], [150, 50, 5])
    with pytest.raises(ValueError, match="non-finite target"):
        shot_metrics(np.zeros(2), np.array([1.0, np.nan]), train)
    with pytest.warns(RuntimeWarning, match="outside the training bins"):
        shot_metrics(np.zeros(2), np.array([1.0, 9.0]), train, binning=Binning.integer(0, 4))
    with pytest.warns(RuntimeWarning, match="float labels without a binning"):
        shot_metrics(np.zeros(2), np.array([1.5, 2.25]), train)
    data = load_synthetic(**SYN)
    perm = np.random.default_rng(0).permutation(len(data.test_labels))
    data.test_labels = data.test_labels[perm]          # items no longer match their labels
    with pytest.raises(ValueError, match="targets that are not its labels"):
        run_experiment(syn_cfg("vanilla", epochs=1), Path(__import__("tempfile").mkdtemp()),
                       data=data)


def test_reproduce_compares_per_label_errors_and_names_a_data_change():
    from dirlib.tools.reproduce import compare
    old = {"test": {"all": {"mae": 1.0}}, "final": "main", "data_hash": "aaa",
           "phases": {"main": {"test_per_label": [{"bin": 3, "n": 5, "mae": 0.5, "mse": 0.3}]}}}
    same = compare(old, old, exact=True)
    assert all(r[-1] for r in same) and any(r[0] == "test_per_label" for r in same)
    new = {**old, "data_hash": "bbb",
           "phases": {"main": {"test_per_label": [{"bin": 3, "n": 5, "mae": 0.6, "mse": 0.3}]}}}
    rows = compare(old, new, exact=True)
    bad = {(r[0], r[2]) for r in rows if not r[-1]}
    assert ("test_per_label", "mae") in bad and ("data", "the data changed") in bad


def test_tune_on_ray_without_ray_tune_says_what_to_install(tmp_path, monkeypatch):
    import builtins
    from dirlib.tools import tune as dtune
    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name.startswith("ray"):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ValueError, match=r"pip install 'ray\[tune\]'"):
        dtune.tune("synthetic", "vanilla", out=tmp_path, trials=1, backend="ray",
                   overrides={"epochs": 1, "data_kwargs": SYN}, log=lambda m: None)
