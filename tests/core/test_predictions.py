"""Predictions out (--save-predictions): one row per validation and test sample; the record's test
metrics recomputed from the file; on a table each row names its own table row; the record holds
the model, the shots' thresholds and counts, and the split draw."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dirlib.cli import main as cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_datasets import _table  # noqa: E402


def test_a_table_run_saves_predictions_that_reproduce_its_metrics(tmp_path, capsys):
    toml, y = _table(tmp_path, n=600)
    out = tmp_path / "run"
    assert cli(["train", "--dataset", str(toml), "--method", "vanilla", "--epochs", "2",
                "--no-progress", "--no-diagnostics", "--out", str(out),
                "--save-predictions", "csv"]) == 0
    printed = capsys.readouterr().out
    import re
    assert re.search(r"  shots    training samples per (label|bin): many > 100, few < 20", printed)
    assert "  optim    adam lr" in printed and "  encoder  mlp" in printed
    rec = json.loads((out / "run.json").read_text())
    pred = pd.read_csv(out / rec["predictions"]["file"])
    assert rec["predictions"]["rows"] == len(pred) == rec["data"]["n_val"] + rec["data"]["n_test"]
    test = pred[pred["split"] == "test"]
    err = (test["prediction"] - test["label"]).abs()
    assert err.mean() == pytest.approx(rec["test"]["all"]["mae"], rel=1e-6)
    for shot in ("many", "median", "few"):
        sub = err[test["shot"] == shot]
        if len(sub):
            assert sub.mean() == pytest.approx(rec["test"][shot]["mae"], rel=1e-6)
            assert len(sub) == rec["test"][shot]["n"]
    # each row is the table's own row: its label is the table's target there
    assert np.array_equal(test["label"].to_numpy(), y[test["row"].to_numpy()].astype(float))
    # the record says what ran
    assert rec["model_used"]["name"] == "mlp" and rec["model_used"]["parameters"] > 0
    assert rec["shots"]["many_thr"] == 100 and sum(rec["shots"]["train_per_bin"]) == rec["data"]["n_train"]
    assert rec["data_provenance"]["split"] == {"drawn": "balanced per bin", "per_bin": 10, "seed": 0}


def test_predictions_of_a_completed_run_ask_for_a_rerun(tmp_path, capsys):
    toml, _ = _table(tmp_path, n=300)
    args = ["train", "--dataset", str(toml), "--method", "vanilla", "--epochs", "1",
            "--no-progress", "--no-diagnostics", "--out", str(tmp_path / "r")]
    assert cli(args) == 0
    assert cli(args + ["--save-predictions", "parquet"]) == 2
    assert "predictions are written while a run trains" in capsys.readouterr().err
    assert cli(args + ["--save-predictions", "parquet", "--overwrite"]) == 0
    assert len(pd.read_parquet(tmp_path / "r" / "predictions.parquet")) > 0


def test_a_bare_method_arg_suggests_its_component(tmp_path, capsys):
    assert cli(["train", "--dataset", "synthetic", "--method", "lds", "--epochs", "1",
                "--method-arg", "sigma=1", "--out", str(tmp_path / "r")]) == 2
    assert "did you mean lds.sigma=1?" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_datasets_without_a_data_root_says_so(monkeypatch, capsys):
    monkeypatch.delenv("DIRLIB_DATA", raising=False)
    assert cli(["datasets"]) == 0
    out = capsys.readouterr()
    assert "no data root given" in out.err
    assert "sts-b-dir" in out.out and "not looked for (no data root)" in out.out
    assert "synthetic" in out.out and "data found" in out.out


def test_the_methods_list_counts_distinct_names_and_aliases(capsys):
    from dirlib.methods import catalog
    assert cli(["methods"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"{len(catalog())} names: {len(catalog()) - 2} distinct methods and 2 aliases" in last
    assert "bmse = bmc" in last and "supcr = rnc" in last


def test_the_table_schema_page_names_every_key_and_typos_are_refused(tmp_path):
    import re
    from dirlib.datasets.table import KNOWN_KEYS, SpecError, read_spec
    doc = (Path(__file__).resolve().parents[2] / "docs" / "table-datasets.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)`", doc, re.M)) | set(re.findall(r"^\| `\[\w+\]` `(\w+)`", doc, re.M))
    assert KNOWN_KEYS - {"draw"} <= rows | {"recipe"} and {"per_bin", "seed"} <= rows
    assert "`[recipe]`" in doc
    toml, _ = _table(tmp_path, n=300, draw={"sed": 3})
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['sed'\] in \[draw\]"):
        read_spec(toml)
    toml, _ = _table(tmp_path, n=300, recipe={"epoch": 3})
    with pytest.raises(SpecError, match=r"\['epoch'\] in \[recipe\]"):
        read_spec(toml)


def test_a_stated_loss_is_the_runs_default(tmp_path):
    from dirlib.datasets import load_dataset
    from dirlib.methods import default_loss
    toml, _ = _table(tmp_path, n=300, loss="mse")
    data = load_dataset(str(toml))
    assert default_loss(data) == "mse" and data.main_metric == "mae"
    rec_dir = tmp_path / "r"
    assert cli(["train", "--dataset", str(toml), "--method", "vanilla", "--epochs", "1",
                "--no-progress", "--no-diagnostics", "--out", str(rec_dir)]) == 0
    assert json.loads((rec_dir / "run.json").read_text())["loss_used"] == "mse"
    from dirlib.datasets.table import SpecError, read_spec
    toml, _ = _table(tmp_path, n=300, loss="l2")
    with pytest.raises(SpecError, match="loss must be one of"):
        read_spec(toml)


def test_nearly_constant_predictions_warn_and_are_noted(tmp_path):
    import warnings
    from dirlib.data import from_arrays
    from dirlib.experiment import run_experiment
    from dirlib.train import RunConfig
    rng = np.random.default_rng(0)
    y = np.minimum(rng.geometric(0.3, 900) - 1, 20).astype(float)
    x = np.zeros((900, 3), dtype=np.float32)             # inputs that carry nothing
    data = from_arrays(x[:700], y[:700], x[700:800], y[700:800], x[800:], y[800:], bin_width=1)
    cfg = RunConfig(dataset="custom", method="vanilla", epochs=1, progress=False,
                    diagnostics=False, data_kwargs={})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = run_experiment(cfg, tmp_path / "r", data=data)
    notes = rec["phases"]["main"]["notes"]
    assert any("nearly constant" in n and "labels' median is" in n for n in notes)
    assert any("nearly constant" in str(w.message) for w in caught)


def test_diagnostics_warnings_become_record_notes(tmp_path, monkeypatch):
    import warnings
    import dirlib.train as T
    from dirlib.data import load_synthetic
    from dirlib.experiment import run_experiment
    from helpers import SYN, syn_cfg
    real = T.train_diagnostics

    def noisy(*a, **k):
        warnings.warn("An input array is constant", RuntimeWarning)
        return real(*a, **k)
    monkeypatch.setattr(T, "train_diagnostics", noisy)
    rec = run_experiment(syn_cfg("vanilla", epochs=1, diagnostics=True), tmp_path / "r",
                         data=load_synthetic(**SYN))
    assert "diagnostics: RuntimeWarning: An input array is constant" in rec["phases"]["main"]["notes"]


def test_smogn_says_it_resamples_features_wherever_it_is_named(capsys):
    root = Path(__file__).resolve().parents[2]
    assert cli(["methods"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("smogn "))
    assert "smogn.space=feature" in line
    row = next(ln for ln in (root / "docs" / "methods.md").read_text().splitlines()
               if ln.startswith("| SMOGN"))
    assert "smogn.space=feature" in row
    assert "smogn.space=feature" in (root / "notebooks" / "tables.md").read_text()


def test_results_tables_print_markdown_with_test_counts_and_reference_rows(tmp_path, capsys):
    toml, _ = _table(tmp_path, n=600)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        assert cli(["train", "--dataset", str(toml), "--method", "vanilla", "--epochs", "1",
                    "--seed", str(seed), "--no-progress", "--no-diagnostics",
                    "--out", str(runs / f"vanilla{seed}")]) == 0
    capsys.readouterr()
    out = tmp_path / "tables"
    assert cli(["results", "tables", "--results", str(runs), "--out", str(out),
                "--references"]) == 0
    printed = capsys.readouterr().out
    assert (out / "t.csv").exists() and (out / "t-references.csv").exists()
    assert "| method | all | many | median | few | seeds |" in printed
    assert "| vanilla |" in printed and "(n=" in printed
    refs = pd.read_csv(out / "t-references.csv")
    assert set(refs["reference"]) == {"training mean", "training median", "gradient boosting"}
    assert (refs["n_seeds"] == 2).all()
    assert "| gradient boosting |" in printed


def test_run_returns_the_model_that_made_its_numbers(tmp_path):
    import torch
    import dirlib
    from dirlib.data import from_arrays
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 3)).astype(np.float32)
    y = np.round(np.clip(np.exp(x[:, 0]) * 3, 0, 30))
    data = from_arrays(x[:500], y[:500], x[500:600], y[500:600], x[600:], y[600:], bin_width=1)
    rec, model = dirlib.run("vanilla", data, epochs=2, out=tmp_path / "r", return_model=True)
    with torch.no_grad():
        pred, _ = model(torch.as_tensor(x[600:]))
    mae = float(np.mean(np.abs(pred.reshape(-1).numpy() * data.target_scale - y[600:])))
    assert mae == pytest.approx(rec["test"]["all"]["mae"], rel=1e-5)
    with pytest.raises(Exception, match="model is not in memory"):
        dirlib.run("vanilla", data, epochs=2, out=tmp_path / "r", return_model=True)


def test_results_tables_compare_pairs_seeds_and_bootstraps_thin_shots(tmp_path, capsys,
                                                                     monkeypatch):
    import dirlib.paper.record_tables as R
    monkeypatch.setattr(R, "FEW_TEST_ROWS", 100)             # this small table's shots are thin
    toml, _ = _table(tmp_path, n=600)
    runs = tmp_path / "runs"
    for m in ("vanilla", "lds"):
        for seed in (0, 1):
            assert cli(["train", "--dataset", str(toml), "--method", m, "--epochs", "1",
                        "--seed", str(seed), "--no-progress", "--no-diagnostics",
                        "--save-predictions", "csv", "--out", str(runs / f"{m}{seed}")]) == 0
    capsys.readouterr()
    assert cli(["results", "tables", "--results", str(runs), "--out", str(tmp_path / "t"),
                "--compare", "vanilla"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| lds |")]
    assert len(rows) == 4                                      # all, many, median, few
    few = next(r for r in rows if r.startswith("| lds | few |")).split("|")
    assert few[3].strip() == "2" and int(few[4]) < 100         # seeds, test rows
    assert few[7].strip().startswith("[")                      # a bootstrap over the rows
    from dirlib.paper.record_tables import load_records, row_bootstrap
    recs = load_records(runs)
    lds = [r for r in recs if r["config"]["method"] == "lds"]
    van = [r for r in recs if r["config"]["method"] == "vanilla"]
    mean, lo, hi, n = row_bootstrap(lds, van, "few")
    want = np.mean([r["test"]["few"]["mae"] for r in lds]) - np.mean([r["test"]["few"]["mae"] for r in van])
    assert mean == pytest.approx(want, abs=1e-6) and lo <= mean <= hi


def test_posthoc_text_variant_saves_predictions(tmp_path, capsys):
    toml, _ = _table(tmp_path, n=3000)          # enough rows for majority labels (> 100 each)
    base = tmp_path / "base"
    assert cli(["train", "--dataset", str(toml), "--method", "vanilla", "--epochs", "2",
                "--no-progress", "--no-diagnostics", "--out", str(base)]) == 0
    out = tmp_path / "text"
    assert cli(["posthoc", "--from", str(base), "--variant", "text", "--out", str(out),
                "--option", "sft_epochs=1", "--save-predictions", "csv"]) == 0
    rec = json.loads((out / "run.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    t = pred[pred["split"] == "test"]
    assert (t["prediction"] - t["label"]).abs().mean() == pytest.approx(rec["test"]["all"]["mae"],
                                                                          rel=1e-6)
    assert cli(["posthoc", "--from", str(base), "--variant", "code", "--out", str(tmp_path / "c"),
                "--save-predictions", "csv"]) == 2
    assert "predictions are saved for the text variants" in capsys.readouterr().err
