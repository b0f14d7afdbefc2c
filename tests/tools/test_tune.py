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


HALVING_SPACE = [{"lr": 1e-3}, {"lr": 3e-3}, {"lr": 1e-2}, {"lr": 3e-4}]
HALVING_KW = dict(trials=4, seeds=[0], space=HALVING_SPACE, halving=2, backend="local",
                  overrides={"epochs": 4, "data_kwargs": SYN, "diagnostics": False,
                             "progress": False})


@pytest.mark.parametrize("method", ["vanilla", "frobenius"])
def test_halving_keeps_the_better_half_and_resumes_it_bit_identically(tmp_path, data, method):
    """Successive halving: every trial trains to the rung, the better half resumes from its
    checkpoint to the full budget and ends exactly where an unpaused run of it ends; the others
    stay paused, resumable. A phased method (frobenius) pauses in its first phase."""
    from dirlib.experiment import run_experiment
    from dirlib.tools import tune as dtune
    log = []
    choice = dtune.tune("synthetic", method, out=tmp_path / "t", data=data, log=log.append,
                        **HALVING_KW)
    rows = choice["trials"]
    assert [r["kept"] for r in rows].count(True) == 2
    rung = [r["rung_val"] for r in rows]
    kept_scores = sorted(r["rung_val"] for r in rows if r["kept"])
    assert kept_scores == sorted(rung)[:2]
    assert choice["trial_epochs"] == 4 * 2 + 2 * 2 and choice["full_search_epochs"] == 16
    for r in rows:
        rec = json.loads((tmp_path / "t" / r["path"] / "run.json").read_text())
        if not r["kept"]:
            assert rec["status"] == "paused" and rec["paused"]["epoch"] == 2 and r["val"] is None
            assert rec["paused"]["best_val"] == r["rung_val"]
            continue
        assert rec["status"] == "completed" and r["val"] == rec["val"]["all"]["mae"]
        # the rung score read back from the completed record's history is the one it paused at
        assert dtune.rung_score(rec, 2, "mae") == r["rung_val"]
        cfg = dtune.trial_config("synthetic", method, 0, r["point"], HALVING_KW["overrides"])
        ref = run_experiment(cfg, tmp_path / "unpaused" / r["path"], data=data)
        assert ref["test"] == rec["test"] and ref["val"] == rec["val"]
    # a rerun resumes: nothing trains again, the same choice
    again = dtune.tune("synthetic", method, out=tmp_path / "t", data=data, log=log.append,
                       **HALVING_KW)
    assert again["chosen"] == choice["chosen"] and again["trials"] == choice["trials"]


def test_s1_tune_sets_aside_never_overwrites(tmp_path, data):
    """S1 (records round four): a completed record in the output folder is set aside, not
    replaced by a trial's; a rerun with other trials is refused, and --overwrite sets the old
    choice aside instead of mixing two settings."""
    from dirlib.experiment import RunExists, run_experiment
    from dirlib.tools import tune as dtune
    from dirlib.train import RunConfig
    out = tmp_path / "T"
    own = run_experiment(RunConfig.for_dataset("synthetic", method="vanilla", seed=0, epochs=1,
                                               lr=0.005, data_kwargs=SYN, diagnostics=False,
                                               progress=False), out / "seed0", data=data)
    kw = dict(seeds=[0, 1], backend="local", log=lambda m: None,
              overrides={"epochs": 1, "data_kwargs": SYN, "diagnostics": False, "progress": False})
    dtune.tune("synthetic", "vanilla", out=out, trials=1, data=data, **kw)
    kept = list((out / "seed0").glob("run.replaced-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["test"] == own["test"]
    assert not (out / "seed0" / "ckpt" / "resume_key").exists() or (
        (out / "seed0" / "ckpt" / "resume_key").read_text().strip()
        == json.loads((out / "seed0" / "run.json").read_text())["resume_key"])
    first = (out / "choice.json").read_text()
    with pytest.raises(RunExists, match="other settings"):
        dtune.tune("synthetic", "vanilla", out=out, trials=2, data=data, **kw)
    assert (out / "choice.json").read_text() == first          # nothing was touched
    dtune.tune("synthetic", "vanilla", out=out, trials=2, data=data, overwrite=True, **kw)
    assert len(list(out.glob("choice.replaced-*.json"))) == 1
    s1 = json.loads((out / "seed1" / "run.json").read_text())
    choice = json.loads((out / "choice.json").read_text())
    assert s1["config"]["lr"] == choice["chosen"].get("lr", s1["config"]["lr"])
