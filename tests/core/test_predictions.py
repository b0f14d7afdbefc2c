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
