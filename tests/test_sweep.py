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
    assert capsys.readouterr().out.count("skip") == 4
    with pytest.raises(RuntimeError, match="another configuration"):
        main(args[:-1] + ["diagnostics=true"])
