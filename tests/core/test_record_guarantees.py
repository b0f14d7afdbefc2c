"""Records are never lost, faked or trusted blindly: one test per case a careful user found.

Each test names its case (1-11). Together they pin down the guarantees:

* a completed record changes only when the same run (config without cosmetic fields, data) completes
  again; a refused or failed attempt never touches it; ``--overwrite`` keeps the old one beside;
* checkpoints are verified (sha256) and loaded without running code;
* a run that would train nothing is refused before anything is written;
* SIGTERM is an interruption, like SIGINT; one process per run folder;
* inputs are validated at the boundary, and tables refuse records edited after the run.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SYN, syn_cfg, sigterm_when

from dirlib import records
from dirlib.checkpoint import CheckpointError
from dirlib.checkpoint import load as load_checkpoint
from dirlib.cli import main as cli
from dirlib.data.base import Binning, DIRData
from dirlib.data.synthetic import TensorItems, load_synthetic
from dirlib.experiment import RunExists, run_experiment

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ["train", "--dataset", "synthetic", "--method", "vanilla", "--epochs", "1",
         "--no-diagnostics", "--data-arg", "n_labels=30", "n_max=150", "width=5.0"]


def _text(p):
    return Path(p).read_text()


# ------------------------------------------------------------------------ 1. refused reruns
def test_1_refused_rerun_leaves_the_completed_record_and_overwrite_keeps_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(TRAIN + ["--out", str(out), "--no-progress"]) == 0
    before = _text(out / "run.json")
    # cosmetic differences are the same run: skipped, the record is not rewritten
    assert cli(TRAIN + ["--out", str(out)]) == 0
    assert cli(TRAIN + ["--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert _text(out / "run.json") == before
    capsys.readouterr()
    # another config: refused with exit 2, the completed record untouched
    assert cli(TRAIN + ["--out", str(out), "--lr", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out / 'run.json'} holds a completed run of another "
                          "configuration or data (lr: 0.001 -> 0.01)")
    assert _text(out / "run.json") == before
    # --overwrite: the new run completes, the old record is kept beside it
    assert cli(TRAIN + ["--out", str(out), "--lr", "0.01", "--overwrite"]) == 0
    kept = list(out.glob("run.replaced-*.json"))
    assert len(kept) == 1 and _text(kept[0]) == before
    assert json.loads(_text(out / "run.json"))["config"]["lr"] == 0.01


def test_1_after_delete_ckpt_another_config_is_still_refused(tmp_path):
    from dirlib.tools.sweep import main as sweep, run_dir
    args = ["--dataset", "synthetic", "--methods", "vanilla", "--seeds", "0", "--epochs", "1",
            "--out", str(tmp_path), "--delete-ckpt", "--train-arg", "diagnostics=false",
            f"data_kwargs={json.dumps(SYN)}"]
    assert sweep(args) == 0
    rec = run_dir(tmp_path, "synthetic", "vanilla", 0) / "run.json"
    before = _text(rec)
    assert sweep(args[:-2] + ["diagnostics=true", f"data_kwargs={json.dumps(SYN)}"]) == 1
    assert _text(rec) == before


# ------------------------------------------------------------------------ 2. data in the key
def _custom(reverse=False):
    """Arrays data; ``reverse``: the same inputs and label counts, the labels in reverse order."""
    rng = np.random.RandomState(0)
    ytr = np.repeat(np.arange(10.0), 12)
    yev = np.repeat(np.arange(10.0), 3)
    ytr_used = ytr[::-1].copy() if reverse else ytr
    x = lambda n: torch.tensor(rng.randn(n, 4), dtype=torch.float32)  # noqa: E731
    return DIRData(name="custom", train=TensorItems(x(len(ytr)), torch.tensor(ytr_used).float()),
                   val=TensorItems(x(len(yev)), torch.tensor(yev).float()),
                   test=TensorItems(x(len(yev)), torch.tensor(yev).float()),
                   train_labels=ytr_used, val_labels=yev, test_labels=yev,
                   binning=Binning.integer(0, 9), model="mlp", model_kwargs={"in_dim": 4})


def test_2_other_data_never_resumes_an_old_checkpoint(tmp_path):
    a, b = _custom(), _custom(reverse=True)
    assert a.summary() == b.summary()            # the old key (the summary) could not tell them apart
    assert records.data_hash(a) != records.data_hash(b)
    cfg = syn_cfg("vanilla", epochs=1)
    rec = run_experiment(cfg, tmp_path / "r", data=a)
    before = _text(tmp_path / "r" / "run.json")
    with pytest.raises(RunExists, match="another configuration or data"):
        run_experiment(cfg, tmp_path / "r", data=b)
    assert _text(tmp_path / "r" / "run.json") == before
    assert rec["data_hash"] == records.data_hash(a)
    # the same arrays again are the same run
    assert run_experiment(cfg, tmp_path / "r", data=_custom())["finished"] == rec["finished"]


# ------------------------------------------------------------------------ 3. corrupted checkpoints
def _unfinished_run(out):
    """A run stopped after its first epoch (its record says interrupted; main.pt holds epoch 1)."""
    cfg = syn_cfg("vanilla", epochs=1)
    run_experiment(cfg, out)
    rec = json.loads(_text(out / "run.json"))
    rec["status"] = "interrupted"
    records.write_json(out / "run.json", rec)
    return syn_cfg("vanilla", epochs=1)


def test_3_zeroed_checkpoint_is_refused_naming_the_file(tmp_path):
    out = tmp_path / "r"
    cfg = _unfinished_run(out)
    ck = out / "ckpt" / "main.pt"
    raw = bytearray(ck.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 4096] = bytes(min(4096, len(raw) - len(raw) // 2))
    ck.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=rf"checkpoint {ck} is corrupted: .*--overwrite"):
        run_experiment(cfg, out)
    # the way out the message names: start anew, the old record kept beside
    assert run_experiment(cfg, out, overwrite=True)["status"] == "completed"
    assert len(list(out.glob("run.replaced-*.json"))) == 1


def test_3_truncated_checkpoint_never_touches_a_completed_record(tmp_path):
    out = tmp_path / "r"
    cfg = syn_cfg("vanilla", epochs=1)
    run_experiment(cfg, out)
    before = _text(out / "run.json")
    ck = out / "ckpt" / "main.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    assert run_experiment(cfg, out)["status"] == "completed"   # completed: skipped, not reloaded
    assert _text(out / "run.json") == before
    with pytest.raises(CheckpointError, match=rf"checkpoint {ck} is corrupted"):
        load_checkpoint(ck)


# ------------------------------------------------------------------------ 4. no code in checkpoints
class _Planted:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_4_a_planted_pickle_is_not_executed(tmp_path):
    out = tmp_path / "r"
    cfg = _unfinished_run(out)
    ck = out / "ckpt" / "main.pt"
    canary = tmp_path / "pwned"
    with open(ck, "wb") as f:
        pickle.dump({"phase": "main", "payload": _Planted(canary)}, f)
    # even with a matching checksum beside it, the load refuses to run the pickle's code
    (out / "ckpt" / "main.pt.sha256").write_text(
        __import__("dirlib.checkpoint", fromlist=["x"]).sha256_file(ck) + "\n")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        run_experiment(cfg, out)
    assert not canary.exists()


# ------------------------------------------------------------------------ 5. runs that train nothing
@pytest.mark.parametrize("args, option", [
    (["--epochs", "0"], "epochs"), (["--epochs", "-3"], "epochs"),
    (["--max-batches", "0"], "max_batches"),
    (["--method", "frobenius", "--method-arg", "frobenius.main_epochs=0"], "frobenius.main_epochs"),
])
def test_5_a_run_that_trains_nothing_is_refused_before_anything_is_written(tmp_path, capsys, args,
                                                                           option):
    out = tmp_path / "r"
    assert cli(TRAIN + args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and option in err
    assert not (out / "run.json").exists()


# ------------------------------------------------------------------------ 6. SIGTERM
def test_6_sigterm_records_interrupted_and_the_same_command_resumes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "dirlib", "train", "--dataset", "synthetic", "--epochs", "6",
           "--no-progress", "--no-diagnostics", "--data-arg", "n_max=3000", "dim=32",
           "--out", str(out)]
    rc, _, err = sigterm_when(cmd, out / "ckpt" / "main.pt.sha256", stdout=subprocess.DEVNULL)
    assert rc == 130, err
    rec = json.loads(_text(out / "run.json"))
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"] and rec["finished"]
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    rec = json.loads(_text(out / "run.json"))
    assert rec["status"] == "completed" and rec["phases"]["main"]["resumed_from_epoch"] is not None


# ------------------------------------------------------------------------ 7. one process per folder
def test_7_a_second_process_on_one_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "r"
    run_experiment(syn_cfg("vanilla", epochs=1), out)
    before = _text(out / "run.json")
    with records.RunLock(out):      # another open file description: flock conflicts like a process
        with pytest.raises(records.RunLocked, match=rf"in use by process {os.getpid()}"):
            run_experiment(syn_cfg("vanilla", epochs=1, seed=1), out)
    assert _text(out / "run.json") == before


# ------------------------------------------------------------------------ 8. split files
def _age_csv(tmp_path, rows):
    p = tmp_path / "agedb.csv"
    p.write_text("age,path,split\n" + "\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "AgeDB/../../x.jpg"])
def test_8_image_paths_stay_inside_the_image_root(tmp_path, bad):
    from dirlib.data.faces import read_age_csv
    p = _age_csv(tmp_path, ["30,AgeDB/a.jpg,train", f"31,{bad},val"])
    with pytest.raises(ValueError, match=rf"{p}:3: image path .* must be relative"):
        read_age_csv(p)


def test_8_ages_above_the_last_bin_are_counted_and_warned(tmp_path):
    from dirlib.data.faces import read_age_csv
    p = _age_csv(tmp_path, ["30,AgeDB/a.jpg,train", "250,AgeDB/b.jpg,train", "130,AgeDB/c.jpg,val"])
    with pytest.warns(UserWarning, match=r"2 age\(s\) above 120 .* first is 250 at line 3"):
        ages, _, _ = read_age_csv(p)
    assert ages.max() == 250


def test_8_non_utf8_bytes_name_file_and_line(tmp_path):
    from dirlib.data.faces import read_age_csv
    from dirlib.data.stsb import read_stsb_tsv
    tsv = tmp_path / "train_new.tsv"
    head = "\t".join(["c0", "c1", "c2", "c3", "c4", "c5", "c6", "sentence1", "sentence2", "score"])
    row = "\t".join(["x"] * 7 + ["a cat", "a dog", "3.0"])
    tsv.write_bytes((head + "\n" + row + "\n").encode() + b"\t".join([b"x"] * 7 + [b"caf\xe9",
                                                                                  b"b", b"1.0"]))
    with pytest.raises(ValueError, match=rf"{tsv}:3: not valid UTF-8"):
        read_stsb_tsv(tsv)
    csv_path = tmp_path / "agedb.csv"
    csv_path.write_bytes(b"age,path,split\n30,AgeDB/\xff.jpg,train\n")
    with pytest.raises(ValueError, match=rf"{csv_path}:2: not valid UTF-8"):
        read_age_csv(csv_path)


# ------------------------------------------------------------------------ 9. tables and sweeps
def _results_with_one_run(tmp_path):
    res = tmp_path / "results"
    run_experiment(syn_cfg("vanilla", epochs=1), res / "runs" / "synthetic" / "vanilla" / "seed0")
    return res, res / "runs" / "synthetic" / "vanilla" / "seed0" / "run.json"


def test_9_tables_refuse_a_hand_edited_config(tmp_path):
    from dirlib.paper.record_tables import RecordError, load_records, regenerate_tables
    res, path = _results_with_one_run(tmp_path)
    rec = json.loads(_text(path))
    rec["config"]["epochs"] = 90               # edited without its config_hash
    path.write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match=rf"{path}: its config_hash .* was edited"):
        assert load_records(res) == []
    with pytest.raises(RecordError, match=str(path)):
        regenerate_tables(res, tmp_path / "tables")


def test_9_a_non_numeric_metric_names_the_file(tmp_path):
    from dirlib.paper.record_tables import load_records, summary_table
    res, path = _results_with_one_run(tmp_path)
    rec = json.loads(_text(path))
    rec["test"]["few"]["mae"] = "n/a"
    path.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=rf"run record {path}: test\['few'\]\['mae'\] is 'n/a'"):
        summary_table(load_records(res))


def test_9_a_truncated_record_does_not_abort_the_sweep(tmp_path):
    from dirlib.tools.sweep import run_dir, sweep
    logs = []
    rd = run_dir(tmp_path, "synthetic", "vanilla", 0)
    rd.mkdir(parents=True)
    (rd / "run.json").write_text('{"status": "compl')
    done = sweep("synthetic", ["vanilla"], [0, 1], tmp_path,
                 {"epochs": 1, "diagnostics": False, "progress": False, "data_kwargs": SYN},
                 log=logs.append)
    assert done == [run_dir(tmp_path, "synthetic", "vanilla", 1) / "run.json"]
    failed = [m for m in logs if m.startswith("FAILED")]
    assert len(failed) == 1 and str(rd / "run.json") in failed[0] and "cannot be read" in failed[0]
    assert logs[-1].startswith("sweep: 1 completed, 0 skipped, 1 failed")
    assert _text(rd / "run.json") == '{"status": "compl'       # left as it was


# ------------------------------------------------------------------------ 10. the book's records
def test_10_tuple_and_list_of_one_setting_aggregate(tmp_path):
    from dirlib.paper.record_tables import check_comparable
    a = {"config": {**syn_cfg("vanilla").to_dict(), "lr_milestones": []}, "data_hash": "h",
         "_path": "a"}
    b = {"config": {**syn_cfg("vanilla", seed=1).to_dict(), "lr_milestones": ()}, "data_hash": "h",
         "_path": "b"}
    check_comparable([a, b])


def test_10_unknown_notebook_in_a_parameter_file_is_an_error(tmp_path):
    from dirlib.paper.book import BookError, load_params
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"QUICK": True, "notebooks": {"fig9_nosuch": {"EPOCHS": 2}}}))
    with pytest.raises(BookError, match="'fig9_nosuch', which book/_toc.yml does not list"):
        load_params(str(p))


def test_10_book_list_without_yaml_names_the_extra(monkeypatch, capsys):
    import dirlib.paper.book as B
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert B.main(["list"]) == 1
    assert "pip install -e '.[book]'" in capsys.readouterr().err


# ------------------------------------------------------------------------ 11. misleading errors
def test_11_one_label_synthetic_data_is_refused_by_name():
    with pytest.raises(ValueError, match=r"n_labels .* must be an integer >= 2"):
        load_synthetic(n_labels=1)


@pytest.mark.parametrize("arg, message", [
    ("frobenius.beta=-5", r"frobenius.beta must be >= 0, got -5"),
    ("frobenius.norm_epochs=0", r"frobenius.norm_epochs must be an integer >= 1"),
    ("frobenius.label_tau=0", r"frobenius.label_tau must be > 0"),
])
def test_11_out_of_range_method_arguments_are_refused_by_name(tmp_path, capsys, arg, message):
    import re
    out = tmp_path / "r"
    assert cli(TRAIN + ["--method", "frobenius", "--method-arg", arg, "--out", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() or not (out / "run.json").exists()


def test_11_negative_weight_decay_is_refused_by_name(tmp_path, capsys):
    assert cli(TRAIN + ["--weight-decay", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "weight_decay (--weight-decay) must be a number >= 0" in capsys.readouterr().err
