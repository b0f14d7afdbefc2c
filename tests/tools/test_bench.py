"""The benchmark machinery (``python -m dirlib bench``) and the GPU-path switches of the trainer.

Everything runs on the CPU with tiny inputs; nothing here asserts a timing.
"""
import csv
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dirlib.tools import bench
from dirlib.cli import main
from dirlib.data.base import Binning, DIRData, ShotSpec
from dirlib.data.synthetic import TensorItems, load_synthetic
from dirlib.methods import MethodInfo, build_method, catalog
from dirlib.methods.common import Part
from dirlib.models import build_model
from dirlib.train import (Callback, DivergenceError, RunConfig, fit, make_loader, model_forward,
                          seed_everything)

LINE = re.compile(r"^(\S+) (\S+) ratio=(\S+)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster (and far steadier on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------------- the CLI
def test_cli_bench_mlp_prints_one_line_per_method_and_writes_results(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(["bench", "--cases", "mlp", "--repeats", "1", "--warmup", "1", "--threads", "1",
               "--out", str(out)])
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    parsed = [LINE.match(ln) for ln in lines]
    assert lines and all(parsed), f"lines not in 'CASE METHOD ratio=R' form:\n{text}"
    got = {m.group(2): float(m.group(3)) for m in parsed}
    assert {m.group(1) for m in parsed} == {"mlp"}
    errors = [ln for ln in lines if "error=" in ln]
    assert rc == 0 and not errors, errors
    # every default method appears once, with the phase labels and the per-epoch rows
    expected = {"vanilla", "frobenius:phase1", "frobenius:phase3", "frobenius:phase2",
                "fds:epoch_pass", "ranksim", "conr", "oe", "fds", "bmse",
                "ranksim+frobenius:phase1"}
    assert expected <= set(got), expected - set(got)
    assert len(lines) == len(got)
    for skipped in bench.skipped_methods():
        assert skipped not in got
    assert got["vanilla"] == 1.0
    assert all(np.isfinite(v) and v > 0 for v in got.values())
    # results: JSON with provenance, CSV with the same rows, table and plot
    res = json.loads((out / "bench.json").read_text())
    prov = res["provenance"]
    for k in ("date", "cpu_model", "logical_cpus", "torch_threads", "torch", "git_commit",
              "loadavg_start", "loadavg_end", "wall_s"):
        assert k in prov
    assert prov["torch"] == torch.__version__
    assert len(res["rows"]) == len(lines)
    with open(out / "bench.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["case"], r["method"]) for r in rows] == [(d["case"], d["method"]) for d in res["rows"]]
    n = {r["method"]: int(r["n"]) for r in rows}
    assert n["vanilla"] == 1 * bench.CASES["mlp"]().repeat_factor
    assert prov["torch_threads"] == 1
    assert (out / "bench.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert table.count("\n") == len(lines) + 2 and "| mlp | frobenius:phase1 | step |" in table
    # the raw per-round times are kept for every step row
    raw = res["cases"]["mlp"]["raw_ms"]
    assert len(raw["vanilla"]) == n["vanilla"] and len(raw["frobenius:phase1"]) == n["vanilla"]


def test_cli_rejects_unknown_case_and_method():
    with pytest.raises(SystemExit, match="unknown case"):
        main(["bench", "--cases", "nosuch"])
    with pytest.raises(ValueError, match="valid names"):
        main(["bench", "--cases", "mlp", "--methods", "nosuch"])


# ----------------------------------------------------------------------------------- the step
def _tiny_data(n=32, seed=0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, 20, n).astype(np.float64)
    x = torch.tensor(rng.randn(n, 8), dtype=torch.float32)
    items = TensorItems(x, torch.tensor(labels, dtype=torch.float32))
    return DIRData(name="synthetic", train=items, val=items, test=items, train_labels=labels,
                   val_labels=labels, test_labels=labels, binning=Binning.integer(0, 19),
                   shot_spec=ShotSpec(), model="mlp", model_kwargs={"in_dim": 8})


@pytest.mark.parametrize("method", ["vanilla", "frobenius", "lds", "oe"])
def test_bench_step_is_the_trainers_step(method):
    """One bench step == one epoch of fit() on a single batch (same init, same batch order)."""
    data = _tiny_data()
    cfg = RunConfig(dataset="synthetic", method=method, epochs=1, batch_size=32, lr=1e-2,
                    progress=False, diagnostics=False)
    spec_fit = build_method(cfg, data)
    trained = fit(cfg, data, spec_fit)["model"]

    seed_everything(cfg.seed)
    model = build_model("mlp", in_dim=8)
    loader = make_loader(data.train, 32, True, cfg, seed_offset=1)
    loader.generator.manual_seed(cfg.seed * 1000 + 1)        # fit's epoch-0 reseed
    x, y, idx = next(iter(loader))
    spec = build_method(cfg, data)
    label, spec = bench.bench_spec(method, spec)
    r = bench.MethodBench(label, cfg, data, spec, model, "cpu", x, y, idx)
    r.step()
    for (name, a), b in zip(r.st.model.state_dict().items(), trained.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-7, rtol=0), name
    # and the step did something: the weights left their initial values
    seed_everything(cfg.seed)
    init = build_model("mlp", in_dim=8)
    assert not torch.allclose(r.st.model.head.weight, init.head.weight)


class _Boom(Callback):
    name = "boom"

    def extra_loss(self, st, b):
        raise RuntimeError("boom at extra_loss")


def test_a_failing_method_is_reported_not_hidden(monkeypatch):
    boom = types.SimpleNamespace(NAMES={"boom": ""}, DEFAULTS={},
                                 build=lambda name, opts, cfg, data: Part(callbacks=[_Boom()]))
    monkeypatch.setitem(catalog(), "boom", MethodInfo("boom", "", boom))
    lines = []
    res = bench.bench_case(bench.case_mlp(), ["vanilla", "boom"], repeats=1, warmup=1,
                           phases=False, log=lines.append)
    err = [d for d in res["rows"] if d["kind"] == "error"]
    assert [d["method"] for d in err] == ["boom"] and "boom at extra_loss" in err[0]["error"]
    assert any(ln.startswith("mlp boom ratio=nan error=RuntimeError: boom") for ln in lines)
    assert [d["method"] for d in res["rows"] if d["kind"] == "step"] == ["vanilla"]


def test_vanilla_must_come_first():
    with pytest.raises(ValueError, match="vanilla"):
        bench.bench_case(bench.case_mlp(), ["oe", "vanilla"], repeats=1)


def test_git_commit_reads_refs_and_packed_refs(tmp_path):
    g = tmp_path / ".git"
    (g / "refs" / "heads").mkdir(parents=True)
    (g / "HEAD").write_text("ref: refs/heads/main\n")
    (g / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    assert bench.git_commit(tmp_path) == "a" * 40
    (g / "refs" / "heads" / "main").unlink()
    (g / "packed-refs").write_text("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
    assert bench.git_commit(tmp_path) == "b" * 40
    (g / "HEAD").write_text("c" * 40 + "\n")                   # detached HEAD
    assert bench.git_commit(tmp_path) == "c" * 40
    assert bench.git_commit(tmp_path / "nowhere") is None


# ----------------------------------------------------------------------------------- GPU path
SYN = {"n_labels": 20, "n_max": 60, "width": 4.0}


def _cfg(**kw):
    base = dict(dataset="synthetic", method="vanilla", epochs=2, batch_size=32, lr=3e-3,
                progress=False, diagnostics=False, data_kwargs=SYN)
    base.update(kw)
    return RunConfig(**base)


def _fit(cfg, extra_callbacks=()):
    data = load_synthetic(**SYN)
    spec = build_method(cfg, data)
    spec.callbacks += list(extra_callbacks)
    return fit(cfg, data, spec)


def test_checking_the_loss_every_n_steps_changes_nothing(monkeypatch):
    """The CUDA path (loss checked and logged every N steps) gives the CPU path's numbers."""
    a = _fit(_cfg())
    monkeypatch.setattr("dirlib.train.check_interval", lambda device: 4)
    b = _fit(_cfg())
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert [h["train_mae_running"] for h in a["history"]] == [h["train_mae_running"] for h in b["history"]]
    assert a["test"]["all"]["mae"] == b["test"]["all"]["mae"]
    assert isinstance(b["history"][-1]["log/base"], float)


class _NaNAt(Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def extra_loss(self, st, batch):
        return (batch.z.sum() * float("nan")) if st.step == self.step else None, {}


def test_deferred_check_still_names_the_step_that_diverged(monkeypatch):
    monkeypatch.setattr("dirlib.train.check_interval", lambda device: 4)
    with pytest.raises(DivergenceError, match=r"epoch 1, batch 6 \(global step 6\) \(detected 2 "
                                              r"steps later"):
        _fit(_cfg(), [_NaNAt(5)])
    # on the CPU (every step) it stops at once, before the update
    monkeypatch.undo()
    with pytest.raises(DivergenceError, match=r"batch 6 \(global step 6\); terms"):
        _fit(_cfg(), [_NaNAt(5)])


def test_amp_is_ignored_with_a_warning_on_cpu():
    a = _fit(_cfg(epochs=1))
    with pytest.warns(UserWarning, match="ignored on the CPU"):
        b = _fit(_cfg(epochs=1, amp=True))
    assert a["test"]["all"]["mae"] == b["test"]["all"]["mae"]


def test_amp_forward_keeps_head_and_features_float32():
    """The autocast path (run here with CPU bf16 autocast): encoder in bf16, z cast back, head fp32."""
    torch.manual_seed(0)
    model = build_model("mlp", in_dim=8, hidden=(32, 16))
    x = torch.randn(5, 8)
    seen = {}
    p32, z32 = model_forward(model, x)
    pa, za = model_forward(model, x, lambda z: seen.setdefault("ft", z), torch.bfloat16)
    assert pa.dtype == torch.float32 and za.dtype == torch.float32 and seen["ft"].dtype == torch.float32
    assert torch.allclose(za, z32, atol=0.05, rtol=0.05) and not torch.equal(za, z32)
    assert torch.allclose(pa, model.head(za).squeeze(-1))      # the head saw float32 features
    with pytest.raises(TypeError, match="encoder"):
        model_forward(torch.nn.Linear(8, 1), x, None, torch.bfloat16)


def test_channels_last_runs_and_matches_nchw():
    case = bench.case_utkface_resnet18(batch_size=8, img_size=32, pass_batches=1)
    out = []
    for cl in (False, True):
        cfg = RunConfig(dataset="utkface-dir", method="vanilla", epochs=1, batch_size=8, lr=1e-3,
                        progress=False, diagnostics=False, channels_last=cl)
        spec = build_method(cfg, case.data)
        res = fit(cfg, case.data, spec)
        w = res["model"].encoder.net.conv1.weight
        assert w.is_contiguous(memory_format=torch.channels_last) == cl
        out.append(res["history"][0]["train_loss"])
    assert out[0] == pytest.approx(out[1], rel=1e-4)


# ----------------------------------------------------------------------------------- the GPU script
def test_gpu_throughput_script_runs_on_cpu(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_throughput
    finally:
        sys.path.pop(0)
    assert gpu_throughput.main(["--device", "cpu", "--files", "8", "--src-size", "40",
                                "--img-size", "32", "--batch-size", "4", "--batches", "1",
                                "--steps", "1", "--workers", "0", "--eval-images", "8",
                                "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^loader .* images/s$", text, re.M)
    assert re.search(r"^compute amp\+channels_last/frobenius_ratio\s+\d", text, re.M)
    assert re.search(r"^train   fit\(\) vanilla .* images/s", text, re.M)
    res = json.loads((tmp_path / "gpu_throughput.json").read_text())
    assert res["data"]["train_rows"] == 12208 and res["fit"]["images_per_s_epoch2"] > 0


def test_throughput_bench_measures_every_route_against_its_ceiling(tmp_path, monkeypatch, capsys):
    """A smoke run of ``python -m dirlib bench --throughput`` (tiny model and size): every route is
    measured, the ceiling's ratio is 1 by construction, the files are written and the performance
    page's reader loads them. No timing is asserted (the committed run in results/bench says the
    numbers)."""
    from dirlib.tools import throughput
    monkeypatch.setattr(throughput, "QUICK_CONFIGS", (("resnet18", 32, 8),))
    res = throughput.run("cpu", quick=True, files=24, workers=0, warmup=1, steps=1, repeats=2, log=lambda m: None)
    routes = {r["route"] for r in res["rows"]}
    assert routes == {"ceiling", "cache-cpu", "jpeg"}                 # no cache-gpu without CUDA
    assert {(r["channels_last"], r["amp"]) for r in res["rows"]} == {(False, False), (True, False)}
    assert all(r["img_per_s"] > 0 for r in res["rows"])
    assert all(r["ratio"] == 1.0 for r in res["rows"] if r["route"] == "ceiling")
    assert {e["route"] for e in res["data_epoch"]} == {"cache-cpu", "jpeg"}
    throughput.write(tmp_path, res)
    assert throughput.load(tmp_path)["rows"] == json.loads(json.dumps(res["rows"]))
    md = (tmp_path / "throughput.md").read_text()
    assert "ceiling img/s (ratio)" in md and "| resnet18 | 32 | 8 | off | on |" in md


@pytest.mark.artefacts
def test_committed_throughput_run_shows_the_cache_at_least_twice_as_fast_per_epoch():
    """The committed CPU run (results/bench/throughput.json): one epoch of data at 64 px through
    the cache takes at most half the JPEG path's time (the issue's bar), read from the record."""
    from dirlib.tools import throughput
    path = Path(__file__).resolve().parents[2] / "results" / "bench" / "throughput.json"
    if not path.is_file():
        pytest.skip("no committed throughput run yet")
    res = throughput.load(path)
    ep = {e["route"]: e["seconds"] for e in res["data_epoch"]}
    assert ep["jpeg"] / ep["cache-cpu"] >= 2.0, ep
    assert {r["model"] for r in res["rows"]} >= {"resnet18", "resnet50"}
