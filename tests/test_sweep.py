import json

import pytest

from dirlib.sweep import main, run_dir


def test_sweep_writes_layout_skips_done_and_refuses_other_config(tmp_path, capsys):
    args = ["--dataset", "synthetic", "--methods", "vanilla", "lds", "--seeds", "0", "1",
            "--epochs", "1", "--out", str(tmp_path), "--delete-ckpt",
            "--train-arg", "diagnostics=false"]
    assert main(args) == 0
    for m in ("vanilla", "lds"):
        for s in (0, 1):
            rec = json.loads((run_dir(tmp_path, "synthetic", m, s) / "run.json").read_text())
            assert rec["status"] == "completed" and rec["config"]["seed"] == s
            assert not (run_dir(tmp_path, "synthetic", m, s) / "ckpt").exists()
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()].count("skip") == 4
    assert "0 completed, 4 skipped, 0 failed" in out
    before = {m: (run_dir(tmp_path, "synthetic", m, 0) / "run.json").read_text()
              for m in ("vanilla", "lds")}
    # another config into the same folders: every run is refused, the records stay as they were
    assert main(args[:-1] + ["diagnostics=true"]) == 1
    out = capsys.readouterr().out
    assert out.count("another configuration or data") == 4 and "4 failed" in out
    assert before == {m: (run_dir(tmp_path, "synthetic", m, 0) / "run.json").read_text()
                      for m in ("vanilla", "lds")}
