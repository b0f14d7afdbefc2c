"""The shape of ``dirlib.methods``: one file per method with its options' defaults and sources, a
new method is one new file, callbacks own their state as ``nn.Module`` children, and a multi-phase
method keeps its finished phases in the record when a later phase is killed."""
import json
import sys

import pytest
import torch

import dirlib.methods as M
from dirlib.cli import main
from dirlib.data import load_synthetic
from dirlib.experiment import run_experiment
from dirlib.methods import build_method, catalog
from dirlib.methods.options import Default
from dirlib.train import Callback
from helpers import SYN, syn_cfg


@pytest.fixture(scope="module")
def data():
    return load_synthetic(**SYN)


def test_every_method_file_declares_its_names_defaults_and_sources():
    for name, info in catalog().items():
        mod = info.module
        assert callable(mod.build) and info.doc, name
        assert mod.__doc__ and len(mod.__doc__) > 40, f"{mod.__name__} has no module docstring"
        for key, d in info.defaults.items():
            assert isinstance(d, Default) and d.source.strip(), f"{name}.{key} has no source"
    # aliases share their file; every other file holds one method
    files = {}
    for name, info in catalog().items():
        files.setdefault(info.module.__name__, []).append(name)
    assert {tuple(v) for v in files.values() if len(v) > 1} == {
        ("bmc", "bmse", "bni", "gai"), ("rnc", "supcr"), ("smogn", "smoter")}


def test_defaults_table_lists_every_option(capsys):
    assert main(["methods", "--defaults"]) == 0
    out = capsys.readouterr().out
    for name, info in catalog().items():
        for key in info.defaults:
            assert f"`{name}.{key}`" in out
    assert "| `ranksim.gamma` | 100.0 (STS-B: 0.0003) |" in out


def readme_method() -> str:
    """The README's "Add a method" example."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return re.search(r"## Add a method.*?```python\n(.*?)```", text, re.S).group(1)


def test_a_new_method_is_one_new_file(tmp_path, monkeypatch, data):
    (tmp_path / "feature_decay.py").write_text(readme_method())
    monkeypatch.setattr(M, "__path__", list(M.__path__) + [str(tmp_path)])
    sys.modules.pop("dirlib.methods.feature_decay", None)
    catalog.cache_clear()
    try:
        assert "feature_decay" in M.method_names()
        rec = run_experiment(syn_cfg("lds+feature_decay", method_kwargs={"feature_decay.lam": 0.1}),
                             tmp_path / "run", data=data)
        assert rec["status"] == "completed" and rec["method_info"]["feature_decay"] == {"lam": 0.1}
        assert "log/feature_decay" in rec["phases"]["main"]["history"][-1]
        spec = build_method(syn_cfg("feature_decay"), data)   # synthetic data: the age family
        assert spec.settings["feature_decay"] == {"lam": 0.01}
        with pytest.raises(ValueError, match=r"feature_decay.lam"):
            build_method(syn_cfg("feature_decay", method_kwargs={"feature_decay.lambda": 1}), data)
    finally:
        sys.modules.pop("dirlib.methods.feature_decay", None)
        catalog.cache_clear()


def test_callbacks_own_their_state(data):
    spec = build_method(syn_cfg("fds+ranksim+bmc"), data)
    by = {cb.name: cb for cb in spec.callbacks}
    assert all(isinstance(cb, Callback) and isinstance(cb, torch.nn.Module) for cb in spec.callbacks)
    assert any(k.startswith("fds.running_mean") for k in by["fds"].state_dict())
    assert "module.noise_sigma" in by["bmse"].state_dict()
    assert by["bmse"].param_groups()[0]["name"] == "noise_sigma"
    # the RankSim sampler's generator is checkpointed and restored
    rs = by["ranksim"]
    saved = rs.state_dict()
    torch.rand(3, generator=rs.gen)
    after = torch.rand(3, generator=rs.gen)
    rs.load_state_dict(saved)
    torch.rand(3, generator=rs.gen)
    assert torch.equal(torch.rand(3, generator=rs.gen), after)


def test_declared_conflicts_are_refused(data):
    for method, msg in [("rrt+vae", "rrt"), ("vir+fds", "PRM"), ("bmc+bmse", "same method"),
                        ("frobenius+rnc", "two multi-phase")]:
        with pytest.raises(ValueError, match=msg):
            build_method(syn_cfg(method), data)


class _KillAtFineTuning(Callback):
    def on_epoch_start(self, st):
        raise KeyboardInterrupt("killed in phase 3")


def test_a_killed_phase_keeps_the_finished_ones_in_the_record(data, tmp_path, monkeypatch):
    import dirlib.methods.frobenius as F
    c = syn_cfg("frobenius", method_kwargs={"frobenius.sft_epochs": 1, "frobenius.norm_epochs": 200})
    full = run_experiment(c, tmp_path / "full", data=data)
    orig = F.alignment_spec

    def killing(*a, **kw):
        spec = orig(*a, **kw)
        spec.callbacks = spec.callbacks + [_KillAtFineTuning()]
        return spec
    monkeypatch.setattr(F, "alignment_spec", killing)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(c, tmp_path / "cut", data=data)
    rec = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert rec["status"] == "interrupted" and set(rec["phases"]) == {"main", "norm"}
    monkeypatch.setattr(F, "alignment_spec", orig)
    resumed = run_experiment(c, tmp_path / "cut", data=data)
    assert resumed["status"] == "completed" and resumed["phases"]["main"]["epochs_run"] == 0
    assert resumed["test"]["all"]["mae"] == full["test"]["all"]["mae"]
