import json

import pytest

from dirlib.tools.sweep import main, run_dir


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


# ----------------------------------------------------------------------------------- backends
from dirlib import records as _records  # noqa: E402
from dirlib.tools import sweep as S  # noqa: E402

GRID = dict(dataset="synthetic", methods=["vanilla", "lds"], seeds=[0, 1],
            overrides={"epochs": 1, "diagnostics": False, "progress": False}, threads=1)
#: fields that say when and where a run ran, not what it computed
HOST_FIELDS = {"started", "finished", "wall_time_s", "versions", "seconds", "time_s", "epoch_time_s",
               "elapsed_s", "git"}


def _what(rec):
    """A record without its timing and host fields, for comparing backends."""
    if isinstance(rec, dict):
        return {k: _what(v) for k, v in rec.items() if k not in HOST_FIELDS and not k.endswith(("_time", "_time_s"))}
    if isinstance(rec, list):
        return [_what(v) for v in rec]
    return rec


def _diff(a, b, path=""):
    """The paths where two records differ (for a readable assertion)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:200]]


def _same(got, want):
    diffs = [d for k in want for d in _diff(got.get(k), want[k], str(k))]
    assert not diffs, "\n".join(diffs[:20])


def _records_of(out):
    return {(m, s): _what(_records.read_json(S.run_dir(out, "synthetic", m, s) / "run.json"))
            for m in GRID["methods"] for s in GRID["seeds"]}


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    jobs = S.grid(out=out, **GRID)
    res = S.run_grid(jobs, "local", log=lambda m: None, progress=False)
    assert [r["status"] for r in res] == ["completed"] * 4
    return _records_of(out)


def test_ray_backend_runs_the_grid_skips_it_on_rerun_and_writes_the_same_records(tmp_path, local_records,
                                                                                 one_ray_node):
    pytest.importorskip("ray", reason="ray (test extra) missing")
    import ray
    jobs = S.grid(out=tmp_path, **GRID)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as e:   # a container that cannot host a Ray node (shared memory, ports)
        pytest.skip(f"Ray cannot start a local cluster here: {type(e).__name__}: {e}")
    try:
        lines = []
        res = S.run_grid(jobs, "ray", log=lines.append, progress=False, cpus_per_run=1)
        assert [r["status"] for r in res] == ["completed"] * 4, lines
        again = S.run_grid(jobs, "ray", log=lines.append, progress=False, cpus_per_run=1)
        assert [r["status"] for r in again] == ["skipped"] * 4
        assert lines[-1].startswith("sweep: 0 completed, 4 skipped, 0 failed")
    finally:
        ray.shutdown()
    _same(_records_of(tmp_path), local_records)


def test_slurm_backend_runs_the_grid_as_one_job_array_with_submitit_local(tmp_path, local_records):
    pytest.importorskip("submitit", reason="submitit (test extra) missing")
    jobs = S.grid(out=tmp_path / "runs", **GRID)
    res = S.run_grid(jobs, "slurm", log=lambda m: None, progress=False, folder=tmp_path / "submitit",
                     executor="local", cpus_per_run=1)
    assert [r["status"] for r in res] == ["completed"] * 4, [r["message"] for r in res]
    _same(_records_of(tmp_path / "runs"), local_records)
    again = S.run_grid(jobs, "slurm", log=lambda m: None, progress=False, folder=tmp_path / "submitit",
                       executor="debug", cpus_per_run=1)
    assert [r["status"] for r in again] == ["skipped"] * 4


def test_a_failing_run_is_recorded_and_the_grid_goes_on(tmp_path):
    jobs = S.grid("synthetic", ["vanilla", "no-such-method"], [0], tmp_path,
                  {"epochs": 1, "diagnostics": False, "progress": False}, threads=1)
    lines = []
    res = S.run_grid(jobs, "local", log=lines.append, progress=False)
    assert [r["status"] for r in res] == ["completed", "failed"]
    assert "no-such-method" in res[1]["message"] or "unknown" in res[1]["message"].lower()
    assert lines[-1].startswith("sweep: 1 completed, 0 skipped, 1 failed\n  failed: ")
    assert lines[-1].endswith(str(tmp_path / "synthetic" / "no-such-method" / "seed0"))
    with pytest.raises(ValueError, match="unknown backend 'spark'"):
        S.run_grid(jobs, "spark")


def test_sweep_takes_method_args_per_component_and_saves_predictions(tmp_path, capsys):
    import json
    from dirlib.tools.sweep import main as sweep
    args = ["--dataset", "synthetic", "--methods", "vanilla", "lds", "--seeds", "0", "--epochs",
            "1", "--train-arg", 'data_kwargs={"n_labels": 30, "n_max": 150, "width": 5.0}',
            "--out", str(tmp_path)]
    assert sweep(args + ["--method-arg", "lds.sigma=1", "--save-predictions", "csv"]) == 0
    lds = json.loads((tmp_path / "synthetic" / "lds" / "seed0" / "run.json").read_text())
    van = json.loads((tmp_path / "synthetic" / "vanilla" / "seed0" / "run.json").read_text())
    assert lds["config"]["method_kwargs"] == {"lds.sigma": 1} and van["config"]["method_kwargs"] == {}
    assert (tmp_path / "synthetic" / "lds" / "seed0" / "predictions.csv").exists()
    out = capsys.readouterr().out
    assert "sweep: synthetic, 2 method(s) (vanilla, lds) x seeds 0" in out
    assert "  optim    adam lr" in out and "  loss     l1" in out
    with pytest.raises(SystemExit):
        sweep(args + ["--method-arg", "ranksim.gamma=1"])
    assert "no method of this sweep" in capsys.readouterr().err
