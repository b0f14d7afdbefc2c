"""dirlib.tools.tune: hyper-parameters chosen on the validation split only, every seed trained at
the choice; Ray Tune's choice equals the local loop's."""
import json

import pytest

from dirlib.data import load_synthetic
from dirlib.paper import audit
from helpers import SYN


@pytest.fixture(scope="module")
def data():
    return load_synthetic(**SYN)


def test_tune_chooses_on_validation_and_trains_every_seed(tmp_path, data):
    from dirlib.tools import tune as dtune
    plan = {"train": {"epochs": 2, "data_kwargs": SYN, "diagnostics": False},
            "bases": ("vanilla",), "phase1": (), "posthoc": {}}
    choices = audit.run_tuned("synthetic", [0, 1], trials=2, results=tmp_path, data=data,
                              plan=plan, log=lambda m: None)
    for method, choice in choices.items():
        assert len(choice["trials"]) == 2          # the same budget for the base and the method
        vals = [t["val"] for t in choice["trials"]]
        assert choice["chosen"] == choice["trials"][vals.index(min(vals))]["point"]
        folder = tmp_path / "synthetic" / "tuned" / method
        # the winning trial's validation score is what its record says, and seed 1 ran at it
        win = json.loads((folder / choice["trials"][vals.index(min(vals))]["path"] / "run.json")
                         .read_text())
        assert win["val"]["all"]["mae"] == min(vals)
        s1 = json.loads((folder / "seed1" / "run.json").read_text())
        pt = choice["chosen"]
        for k, v in pt.items():
            got = s1["config"][k] if "." not in k else s1["config"]["method_kwargs"][k]
            assert got == v
    df = audit.collect(tmp_path)
    assert set(df["arm"]) == {"tuned:base", "tuned:frobenius"}
    assert sorted(df["seed"].unique()) == [0, 1] and set(df["base"]) == {"vanilla"}
    # a method without a declared space is refused by name; the budget subsamples larger spaces
    with pytest.raises(ValueError, match="SEARCH_SPACE"):
        dtune.method_points("lds")
    pts = dtune.method_points("ranksim+frobenius")
    assert len(pts) == 16 and len(dtune.choose_points(pts, 4, seed=1)) == 4
    assert dtune.choose_points(pts, 4, seed=1) == dtune.choose_points(pts, 4, seed=1)


def test_tune_on_ray_tune_chooses_as_the_local_loop(tmp_path, data, one_ray_node):
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install 'ray[tune]')",
                        exc_type=ImportError)
    from dirlib.tools import tune as dtune
    kw = dict(trials=2, seeds=[0], overrides={"epochs": 2, "data_kwargs": SYN,
                                               "diagnostics": False, "progress": False})
    local = dtune.tune("synthetic", "frobenius", out=tmp_path / "local", data=data,
                       backend="local", log=lambda m: None, **kw)
    try:
        ray_ = dtune.tune("synthetic", "frobenius", out=tmp_path / "ray", backend="ray",
                          log=lambda m: None, **kw)
    except Exception as e:     # a machine where a local Ray node cannot start
        pytest.skip(f"Ray could not run here: {type(e).__name__}: {e}")
    assert ray_["chosen"] == local["chosen"]
    assert [t["val"] for t in ray_["trials"]] == [t["val"] for t in local["trials"]]
