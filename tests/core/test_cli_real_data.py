"""Short CPU training runs through the CLI on the real data (and on generated AgeDB images)."""
import json

import numpy as np
import pytest

from dirlib.cli import main
from helpers import first_rows_per_split, write_face_tree

QUICK = ["--epochs", "1", "--max-batches", "2", "--no-progress", "--seed", "0"]


def run(tmp_path, name, args):
    out = tmp_path / name
    assert main(["train", *args, "--out", str(out), *QUICK]) == 0
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "completed"
    return rec


def test_stsb_vanilla_cli(tmp_path, data_dir):
    rec = run(tmp_path, "sts", ["--dataset", "sts-b-dir", "--data-dir", str(data_dir),
                                "--model-arg", "hidden=32"])
    t = rec["test"]
    assert t["all"]["n"] == 1000
    assert (t["many"]["n"], t["median"]["n"], t["few"]["n"]) == (756, 170, 74)
    assert "pearson" in t["all"] and rec["config"]["loss"] is None
    assert rec["data_checksums"]["train_new.tsv"].startswith("4da3322a")
    assert rec["phases"]["main"]["select_on"] == "mse"
    diag = rec["phases"]["main"]["train_per_label"]
    assert len(diag["per_label"]["proto_norm"]) == 50   # every 0.1 bin has training pairs


def test_utkface_vanilla_and_frobenius_cli(tmp_path, data_dir):
    common = ["--dataset", "utkface-dir", "--data-dir", str(data_dir), "--img-size", "32"]
    rec = run(tmp_path, "utk", common + ["--no-diagnostics"])   # the STS-B test checks the diagnostics
    t = rec["test"]
    assert t["all"]["n"] == 847 and t["many"]["n"] + t["median"]["n"] + t["few"]["n"] == 847
    assert rec["phases"]["main"]["select_on"] == "mae"
    rec = run(tmp_path, "utk-frob", common + ["--method", "frobenius", "--subset-train", "2500",
                                              "--subset-eval", "200", "--method-arg", "frobenius.sft_epochs=1"])
    ph = rec["phases"]
    assert set(ph) == {"main", "norm", "sft"}
    per = ph["norm"]["per_label"]
    maj = np.array(per["majority"], dtype=bool)
    assert maj.sum() == ph["norm"]["norm_net"]["n_majority"] > 5
    assert np.all(np.isfinite(np.array(per["predicted_norm"], dtype=float)))


def test_stsb_frobenius_cli(tmp_path, data_dir):
    rec = run(tmp_path, "sts-frob", ["--dataset", "sts-b-dir", "--data-dir", str(data_dir),
                                     "--model-arg", "hidden=32", "--method", "frobenius",
                                     "--method-arg", "frobenius.sft_epochs=1"])
    # STS-B majority = the benchmark's 22 many-shot bins
    assert rec["phases"]["norm"]["norm_net"]["n_majority"] == 22


@pytest.mark.filterwarnings("ignore:.*differs from the DIR benchmark:UserWarning")
def test_agedb_layout_cli_on_generated_images(tmp_path, data_dir):
    rows = first_rows_per_split((data_dir / "agedb-dir" / "agedb.csv").read_text().splitlines(), 12)
    root = tmp_path / "data"
    write_face_tree(root / "agedb-dir", "agedb.csv", rows, size=(40, 40))
    rec = run(tmp_path, "agedb", ["--dataset", "agedb-dir", "--data-dir", str(root),
                                  "--img-size", "32"])
    assert rec["test"]["all"]["n"] == 12
