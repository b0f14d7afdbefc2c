"""The fair benchmark (``docs/benchmark-plan.md``): every method tuned on validation data with one
budget, then trained over seeds 0-4 and read once on test.

::

    python -m dirlib benchmark run --dataset sts-b-dir                # resumable; one per core
    python -m dirlib benchmark run --dataset sts-b-dir --methods lds oe
    python -m dirlib benchmark plan                                   # the plan as code, printed

Each method's search space is the learning rate in {1e-3, 2e-3} times the two values of its own
setting (:data:`SETTINGS`): 4 points, all tried, with successive halving at :data:`HALVING` epochs
(:func:`dirlib.tools.tune.tune`). Runs go to ``--work`` (checkpoints stay out of git); every
finished record (trials, ``choice.json``, seeds) is copied to ``--results`` under the same path.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import records

#: the methods in run order (docs/benchmark-plan.md)
METHODS = ("vanilla", "frobenius", "lds", "lds+frobenius", "ranksim", "ranksim+frobenius", "bmc",
           "oe", "focal", "inv", "fds", "lds+fds", "rrt", "conr", "vir", "srl", "der", "vae",
           "denseweight")

#: each method's own tuned setting: (option keys set together, (default value, other value));
#: a key without a dot is a trainer field
SETTINGS = {
    "vanilla": (("weight_decay",), (1e-5, 1e-4)),
    "inv": (("weight_decay",), (1e-5, 1e-4)),
    "lds": (("lds.sigma",), (2.0, 1.0)),
    "fds": (("fds.sigma",), (2.0, 1.0)),
    "lds+fds": (("lds.sigma", "fds.sigma"), (2.0, 1.0)),
    "focal": (("focal.beta",), (20.0, 5.0)),
    "rrt": (("rrt.epochs",), (10, 3)),
    "bmc": (("bmc.init_sigma",), (0.1, 1.0)),
    "ranksim": (("ranksim.gamma",), (3e-4, 1e-2)),
    "conr": (("conr.w",), (0.2, 1.0)),
    "oe": (("oe.weight",), (1.0, 0.1)),
    "frobenius": (("frobenius.beta",), (0.01, 1.0)),
    "lds+frobenius": (("frobenius.beta",), (0.01, 1.0)),
    "ranksim+frobenius": (("frobenius.beta",), (0.01, 1.0)),
    "vir": (("vir.coeff",), (0.01, 0.1)),
    "srl": (("srl.w1",), (1e-4, 1e-2)),
    "der": (("der.coeff",), (0.01, 0.1)),
    "vae": (("vae.kl",), (1e-3, 1e-2)),
    "denseweight": (("denseweight.alpha",), (1.0, 0.5)),
}
LRS = (1e-3, 2e-3)
TRIALS = 4
SEEDS = (0, 1, 2, 3, 4)
TUNE_SEED = 0

#: the recipe and the halving rung per dataset (the STS-B-DIR defaults table's recipe)
RECIPES = {
    "sts-b-dir": {"train": {"epochs": 10, "model_kwargs": {"hidden": 128}}, "halving": 3},
    # the audit's UTKFace-DIR CPU recipe (ResNet-18 at 32 px, 10 epochs, lr x0.1 at 7 and 9)
    "utkface-dir": {"train": {"img_size": 32, "epochs": 10, "lr_milestones": [7, 9]},
                    "halving": 3},
}

#: the method whose eliminated trials are also run to the full budget: the halving's cost check
COST_CHECK = "vanilla"

#: the comparison family: (a, b) pairs read at the median and few shots
SHOTS = ("median", "few")


def space(method: str) -> list:
    """The 4 points of ``method``'s space: lr x its own setting, the default point first.

    >>> space("lds")[0], len(space("lds"))
    ({'lr': 0.001, 'lds.sigma': 2.0}, 4)
    """
    keys, values = SETTINGS[method]
    return [{"lr": lr, **{k: v for k in keys}} for lr in LRS for v in values]


def family() -> list:
    """The planned cells ``(a, b, shot)``: each method against vanilla, and the paper's method
    against its base where that base is not vanilla."""
    pairs = [(m, "vanilla") for m in METHODS if m != "vanilla"]
    pairs += [("lds+frobenius", "lds"), ("ranksim+frobenius", "ranksim")]
    return [(a, b, s) for a, b in pairs for s in SHOTS]


def available(method: str) -> bool:
    from ..methods import catalog, parse_method
    try:
        return all(p in catalog() for p in parse_method(method))
    except ValueError:
        return False


def _mirror_tree(work: Path, results: Path, folder: Path) -> None:
    """Copy every completed ``run.json`` (with its diff) and ``choice.json`` under ``folder`` to
    the same place under ``results``; paused and unfinished records stay in ``work``."""
    for src in sorted(folder.rglob("*.json")):
        if src.name not in ("run.json", "choice.json", "cost-check.json"):
            continue
        if src.name == "run.json" and records.read_json(src).get("status") != "completed":
            continue
        records.copy_record(src, results / src.relative_to(work))


def restore(results: Path, work: Path, folder: Path) -> int:
    """Copy the completed records (trials, seeds) and the choice stored under ``results`` for the
    method folder ``folder`` of ``work`` back into ``work`` where they are missing: a later session,
    whose work folder is gone, then resumes the search instead of starting it again (a completed
    record needs no checkpoint). Returns how many records were restored."""
    src_root = results / folder.relative_to(work)
    n = 0
    for src in sorted(src_root.rglob("*.json")) if src_root.is_dir() else []:
        if src.name not in ("run.json", "choice.json"):
            continue
        dst = work / src.relative_to(results)
        if not dst.exists():
            records.copy_record(src, dst)
            n += 1
    return n


def run(dataset: str, methods=METHODS, *, work="runs/benchmark", results="results/benchmark",
        data_dir=None, data=None, seeds=SEEDS, recipe=None, log=print) -> None:
    """Tune and train every method of ``methods`` on ``dataset`` as the plan says, resumably."""
    from ..experiment import load_for_config
    from ..tools.sweep import make_cfg
    from .tune import tune
    recipe = recipe or RECIPES[dataset]
    work, results = Path(work), Path(results)
    overrides = {**recipe["train"], "progress": False}
    for method in methods:
        if not available(method):
            log(f"skip  {method}: not in this library's catalog (cut; see the plan)")
            continue
        folder = work / dataset / method.replace("+", "_")
        back = restore(results, work, folder)
        if back:
            log(f"restored {back} stored record(s) of {method} from {results}")
        if data is None:
            data = load_for_config(make_cfg(dataset, method, 0, overrides), data_dir, subset=False)
        choice = tune(dataset, method, out=folder, trials=TRIALS, seeds=seeds,
                      tune_seed=TUNE_SEED, overrides=overrides, data=data, backend="local",
                      space=space(method), halving=recipe["halving"], log=log)
        if method == COST_CHECK:
            cost_check(folder, choice, data, log)
        _mirror_tree(work, results, folder)
        log(f"done  {method} on {dataset}")


def cost_check(folder: Path, choice: dict, data, log=print) -> dict:
    """Run the trials that halving eliminated to the full budget (resumed from their rung
    checkpoints) and write ``cost-check.json``: the epochs and the wall time of the halving search
    against the full search, and the full search's choice. The halving's own records and choice
    are not changed."""
    import json
    from ..datasets import main_metric
    from ..experiment import run_experiment
    from .tune import trial_config
    metric = main_metric(choice["dataset"])
    recs = []
    for t in choice["trials"]:
        rd = folder / t["path"]
        rec = records.read_json(rd / "run.json")
        halving_wall = sum(a.get("wall_time_s") or 0 for a in rec.get("attempts", []))
        if not t["kept"]:
            cfg = trial_config(choice["dataset"], choice["method"], choice["tune_seed"], t["point"],
                               choice["overrides"])
            rung_wall = halving_wall
            rec = run_experiment(cfg, rd, data=data)
        else:
            rung_wall = None
        recs.append({"point": t["point"], "kept": t["kept"], "val_full": rec["val"]["all"][metric],
                     "wall_s_full": sum(a.get("wall_time_s") or 0 for a in rec["attempts"]),
                     "wall_s_halving": halving_wall if t["kept"] else rung_wall})
    best = min(range(len(recs)), key=lambda i: (recs[i]["val_full"], i))
    out = {"method": choice["method"], "dataset": choice["dataset"], "trials": recs,
           "epochs_halving": choice["trial_epochs"], "epochs_full": choice["full_search_epochs"],
           "epoch_ratio": choice["trial_epochs"] / choice["full_search_epochs"],
           "wall_s_halving": sum(r["wall_s_halving"] for r in recs),
           "wall_s_full": sum(r["wall_s_full"] for r in recs),
           "full_choice": recs[best]["point"], "halving_choice": choice["chosen"],
           "same_choice": recs[best]["point"] == choice["chosen"], "git": records.git_commit()}
    out["wall_ratio"] = out["wall_s_halving"] / out["wall_s_full"]
    records.write_text_atomic(folder / "cost-check.json", json.dumps(out, indent=1))
    log(f"cost check ({choice['method']}): halving {out['epochs_halving']} of "
        f"{out['epochs_full']} epochs ({out['epoch_ratio']:.2f}), wall {out['wall_ratio']:.2f}; "
        f"same choice: {out['same_choice']}")
    return out


def write_references(dataset: str, results="results/benchmark", data_dir=None, data=None,
                     seeds=SEEDS, log=print) -> Path:
    """The reference rows of ``dataset`` (:func:`dirlib.tools.references.reference_rows`) as
    ``results/<dataset>/references.json``, with the code and versions that made them."""
    import json
    import warnings
    from ..datasets import load_dataset
    from .references import reference_rows
    if data is None:
        data = load_dataset(dataset, data_dir=data_dir)
    with warnings.catch_warnings():     # a constant predictor has no correlation: NaN, as stated
        warnings.filterwarnings("ignore", message="An input array is constant")
        out = reference_rows(data, seeds=seeds, log=log)
    out.update(schema="dirlib.references/1", git=records.git_commit(), versions=records.versions(),
               data_hash=records.data_hash(data), finished=records.now())
    path = Path(results) / dataset / "references.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records.write_text_atomic(path, json.dumps(records.to_jsonable(out), indent=1))
    return path


def plan_text() -> str:
    lines = [f"{m:18s} " + "; ".join(f"lr {p['lr']:g} " + " ".join(
        f"{k}={v:g}" for k, v in p.items() if k != "lr") for p in space(m)) for m in METHODS]
    lines.append(f"{len(family())} planned cells; {TRIALS} trials per method; seeds "
                 f"{SEEDS[0]}-{SEEDS[-1]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="tune and train the plan's methods (resumable)")
    r.add_argument("--dataset", required=True, choices=sorted(RECIPES))
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    r.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    r.add_argument("--work", default="runs/benchmark", help="run folders with checkpoints")
    r.add_argument("--results", default="results/benchmark",
                   help="where finished records are copied")
    r.add_argument("--data-dir", default=None)
    sub.add_parser("plan", help="print the plan's methods, spaces and family")
    rf = sub.add_parser("references", help="the reference rows (training mean, training median, "
                                           "gradient boosting tuned on validation data)")
    rf.add_argument("--dataset", required=True)
    rf.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    rf.add_argument("--results", default="results/benchmark")
    rf.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.cmd == "plan":
        print(plan_text())
        return 0
    if a.cmd == "references":
        path = write_references(a.dataset, a.results, data_dir=a.data_dir, seeds=a.seeds,
                                log=lambda m: print(m, flush=True))
        print(path)
        return 0
    run(a.dataset, a.methods, work=a.work, results=a.results, data_dir=a.data_dir,
        seeds=a.seeds, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
