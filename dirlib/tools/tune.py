"""Fair tuning: choose a method's declared hyper-parameters on the validation split only, then read
the choice once on test, over every seed.

::

    python -m dirlib tune --dataset sts-b-dir --method frobenius --trials 4 --seeds 0 1 2 3 4 \\
        --out results/audit/sts-b-dir/tuned/frobenius

Each method file declares its search space beside its defaults (``SEARCH_SPACE``: a list of points,
or a dict of value lists whose product is the grid). A key that is a :class:`RunConfig` field (``lr``,
``weight_decay``) sets the trainer; any other key is the method's option (``method.key``). A
composite method (``lds+frobenius``) tries the product of its parts' spaces.

``trials`` is the budget: a space with more points is subsampled (seeded), so two methods compared
get the same number of trials. Every trial trains seed ``tune_seed`` and is scored by the validation
split's overall main metric (MSE on STS-B-DIR, MAE elsewhere); the lowest wins, ties to the earlier
point. The chosen setting then trains every seed. Trial records hold test metrics too (every run
evaluates its test split), but nothing here reads them.

Output folder: ``trials/<slug>/seed<k>/run.json`` per trial, ``choice.json`` (the trials, their
validation scores and the choice), ``seed<k>/run.json`` per seed at the chosen setting.

Backends: Ray Tune (``--backend ray``, when ``ray[tune]`` is installed: one trial per Ray worker)
or a local loop (``--backend local``, the default when Ray Tune is not importable).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import random
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import records
from ..experiment import RunExists
from ..train import RunConfig

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def space_points(space) -> list:
    """A search space as its list of points (a dict of lists becomes its product, in order).

    >>> space_points({"beta": [0.1, 1.0], "alpha": [1.0]})
    [{'beta': 0.1, 'alpha': 1.0}, {'beta': 1.0, 'alpha': 1.0}]
    """
    if isinstance(space, dict):
        keys = list(space)
        return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]
    return [dict(p) for p in space]


def method_points(method: str) -> list:
    """The points of ``method``'s declared space (the product over its parts), each key prefixed
    with the part's name unless it is a trainer field. A method that declares none is an error."""
    from ..methods import catalog, parse_method
    per_part = []
    for part in parse_method(method):
        pts = space_points(catalog()[part].search_space)
        if pts:
            per_part.append([{(k if k in _CONFIG_FIELDS else f"{part}.{k}"): v for k, v in p.items()}
                             for p in pts])
    if not per_part:
        raise ValueError(f"dirlib.tools.tune: {method!r} declares no SEARCH_SPACE in its method file(s)")
    return [dict(itertools.chain.from_iterable(d.items() for d in combo))
            for combo in itertools.product(*per_part)]


def choose_points(points: list, trials: int, seed: int = 0) -> list:
    """``trials`` of ``points``: all of them when there are no more, else a seeded sample in the
    space's order."""
    if trials < 1:
        raise ValueError(f"dirlib.tools.tune: trials must be >= 1, got {trials}")
    if len(points) <= trials:
        return list(points)
    keep = sorted(random.Random(seed).sample(range(len(points)), trials))
    return [points[i] for i in keep]


def trial_config(dataset: str, method: str, seed: int, point: dict, overrides: dict) -> RunConfig:
    """The run of one trial: the dataset's recipe, ``overrides``, then the point (trainer fields
    directly, method options into ``method_kwargs``)."""
    d = dict(overrides)
    kw = dict(d.pop("method_kwargs", {}) or {})
    for k, v in point.items():
        if k in _CONFIG_FIELDS:
            d[k] = v
        else:
            kw[k] = v
    return RunConfig.for_dataset(dataset, method=method, seed=seed, method_kwargs=kw, **d)


def point_slug(point: dict) -> str:
    """``{"frobenius.beta": 0.1}`` -> ``frobenius.beta-0.1``."""
    return "__".join(f"{k}-{v:g}" if isinstance(v, float) else f"{k}-{v}"
                     for k, v in sorted(point.items())) or "defaults"


def _score(rec: dict, metric: str) -> float:
    if rec.get("status") != "completed":
        return float("inf")
    return float(rec["val"]["all"][metric])


def _run_local(cfgs: list, folders: list, data, log) -> list:
    from ..experiment import run_experiment
    out = []
    for cfg, folder in zip(cfgs, folders):
        try:
            out.append(run_experiment(cfg, folder, data=data))
        except Exception as e:       # a failed trial loses, the search goes on
            log(f"FAILED {folder}: {type(e).__name__}: {e}")
            out.append({"status": "failed"})
    return out


def _run_ray(cfgs: list, folders: list, data_dir, metric: str, log) -> list:
    import ray
    from ray import tune as rtune

    def trainable(config):
        from ..experiment import run_experiment
        i = config["i"]
        rec = run_experiment(cfgs[i], folders[i], data_dir=data_dir)
        rtune.report({"val": _score(rec, metric)})

    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        tuner = rtune.Tuner(rtune.with_resources(trainable, {"cpu": 1}),
                            param_space={"i": rtune.grid_search(list(range(len(cfgs))))},
                            tune_config=rtune.TuneConfig(metric="val", mode="min"))
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return [records.read_json(Path(f) / "run.json") if (Path(f) / "run.json").exists()
            else {"status": "failed"} for f in folders]


def rung_score(rec: dict, rung: int, metric: str) -> float:
    """The successive-halving score of a trial's record: the best overall validation ``metric`` of
    its first phase within its first ``rung`` epochs (``paused`` records store it; completed ones
    are read from the first phase's history). ``inf`` for a failed or unfinished record."""
    if rec.get("status") == "paused" and (rec.get("paused") or {}).get("epoch") == rung:
        return float(rec["paused"]["best_val"])
    if rec.get("status") != "completed":
        return float("inf")
    first = next(iter(rec["phases"].values()))
    hist = first.get("history") or []
    vals = [h["val"]["all"][metric] for h in hist[:rung] if "val" in h]
    return float(min(vals)) if vals else float(_score(rec, metric))


def _settings(method, points, trials, tune_seed, overrides, halving) -> dict:
    return {"method": method, "points": points, "budget": trials, "tune_seed": tune_seed,
            "overrides": overrides, "halving": halving}


def _check_out(out: Path, settings: dict, overwrite: bool, log) -> bool:
    """A folder that holds a tuning of other settings is refused, or (``overwrite``) its choice is
    set aside as ``choice.replaced-<time>.json``: never overwritten. True when it was set aside."""
    path = out / "choice.json"
    if not path.exists():
        return False
    old = dict(records.read_json(path))
    old.setdefault("points", [t.get("point") for t in old.get("trials", [])])
    # a choice written before these keys were stored is compared on what it has
    same = all(json.dumps(old[k], sort_keys=True, default=str)
               == json.dumps(v, sort_keys=True, default=str)
               for k, v in settings.items() if k in old)
    if same:
        return False
    if not overwrite:
        raise RunExists(f"{out} holds a tuning of other settings ({path}); it was left as it is. "
                        f"Use another --out, or --overwrite to set the old choice and seed records "
                        f"aside and tune anew")
    stamp = records.now().replace(":", "").replace("+0000", "Z")
    kept = path.with_name(f"choice.replaced-{stamp}.json")
    path.rename(kept)
    log(f"kept the old choice as {kept}")
    return True


def _place_seed_record(src: Path, folder: Path, log) -> None:
    """Copy the chosen trial's record (and diff) as ``folder``'s run. A record of another run there
    is set aside (``run.replaced-<time>.json``) with its checkpoints removed, never overwritten."""
    from ..experiment import _set_aside
    new = records.read_json(src / "run.json")
    dst = folder / "run.json"
    if dst.exists():
        old = records.read_json(dst)
        if old.get("resume_key") == new.get("resume_key") and old.get("status") == "completed":
            return
        kept = _set_aside(dst)
        shutil.rmtree(folder / "ckpt", ignore_errors=True)
        log(f"kept the record of another run in {folder} as {kept}")
    records.copy_record(src / "run.json", dst)     # the code it was made with travels with it


def _other_run(folder: Path, cfg, data) -> bool:
    """``folder`` holds a record of a run other than ``cfg`` on ``data``."""
    from ..experiment import resume_key
    p = folder / "run.json"
    return p.exists() and records.read_json(p).get("resume_key") != resume_key(
        cfg.to_dict(), records.data_hash(data))


def _halving(cfgs, folders, rung: int, data, metric: str, log) -> tuple:
    """Successive halving with two rungs: every trial trains ``rung`` epochs (paused there with its
    checkpoint), the better half (rounded up) by :func:`rung_score` resumes to the full budget.
    Returns ``(final records, rung scores, kept indices, epochs trained)``."""
    from ..experiment import run_experiment
    from ..train import RunPaused, pausing

    def run(i, pause):
        try:
            if pause:
                with pausing(rung):
                    return run_experiment(cfgs[i], folders[i], data=data)
            return run_experiment(cfgs[i], folders[i], data=data)
        except RunPaused:
            return records.read_json(Path(folders[i]) / "run.json")
        except Exception as e:       # a failed trial loses, the search goes on
            log(f"FAILED {folders[i]}: {type(e).__name__}: {e}")
            return {"status": "failed"}

    rung_recs = []
    for i in range(len(cfgs)):
        p = Path(folders[i]) / "run.json"
        old = records.read_json(p) if p.exists() else None
        if old is not None and old.get("resume_key") and (
                old.get("status") == "completed" or (old.get("paused") or {}).get("epoch") == rung):
            rung_recs.append(old)       # resumed search: this trial's rung is already known
        else:
            rung_recs.append(run(i, pause=True))
    scores = [rung_score(r, rung, metric) for r in rung_recs]
    keep = sorted(sorted(range(len(cfgs)), key=lambda i: (scores[i], i))[:math.ceil(len(cfgs) / 2)])
    log("rung at epoch %d: " % rung + ", ".join(
        f"{Path(folders[i]).parent.name} {scores[i]:.4f}{' (kept)' if i in keep else ''}"
        for i in range(len(cfgs))))
    finals = [run(i, pause=False) if i in keep else {"status": "eliminated"}
              for i in range(len(cfgs))]
    epochs = sum(min(rung, c.epochs) for c in cfgs) + sum(max(cfgs[i].epochs - rung, 0)
                                                           for i in keep)
    return finals, scores, keep, epochs


def tune(dataset: str, method: str, *, out, trials: int, seeds: Sequence[int] = (0,),
         tune_seed: int = 0, overrides: Optional[dict] = None, data=None, data_dir=None,
         backend: str = "auto", space: Optional[list] = None, halving: Optional[int] = None,
         overwrite: bool = False, log=print) -> dict:
    """Choose ``method``'s setting on the validation split of ``tune_seed``'s runs (``trials``
    points of its declared space, or of ``space``: a list of points), then train it for every seed
    of ``seeds``. ``halving``: successive halving with a rung at that epoch (:func:`_halving`;
    local backend). Resumable: finished and paused runs are kept. A folder holding a tuning of other
    settings is refused (``overwrite``: set aside). Returns the choice (also ``out/choice.json``)."""
    from ..datasets import main_metric
    from ..experiment import load_for_config, run_experiment
    out = Path(out)
    overrides = dict(overrides or {})
    all_points = [dict(p) for p in space] if space is not None else method_points(method)
    points = choose_points(all_points, trials, seed=tune_seed)
    cfgs = [trial_config(dataset, method, tune_seed, p, overrides) for p in points]
    folders = [out / "trials" / point_slug(p) / f"seed{tune_seed}" for p in points]
    metric = main_metric(dataset)
    settings = _settings(method, points, trials, tune_seed, overrides, halving)
    replaced = _check_out(out, settings, overwrite, log)
    if backend == "auto":
        try:
            import ray.tune  # noqa: F401
            backend = "ray" if halving is None else "local"
        except ImportError:
            backend = "local"
    rung_scores, kept, epochs = None, None, sum(c.epochs for c in cfgs)
    if backend == "ray":
        if halving is not None:
            raise ValueError("dirlib.tools.tune: --halving runs with the local backend")
        try:
            import ray.tune  # noqa: F401
        except ImportError as e:
            raise ValueError(f"dirlib.tools.tune: --backend ray needs Ray Tune, which does not "
                             f"import here ({e}): pip install 'ray[tune]', or use --backend "
                             f"local") from None
        recs = _run_ray(cfgs, folders, data_dir, metric, log)
    elif backend == "local":
        if data is None:
            data = load_for_config(cfgs[0], data_dir, subset=False)
        if halving is not None:
            recs, rung_scores, kept, epochs = _halving(cfgs, folders, halving, data, metric, log)
        else:
            recs = _run_local(cfgs, folders, data, log)
    else:
        raise ValueError(f"dirlib.tools.tune: backend must be auto, local or ray, got {backend!r}")
    scores = [_score(r, metric) for r in recs]
    best = min(range(len(points)), key=lambda i: (scores[i], i))
    if scores[best] == float("inf"):
        raise RuntimeError(f"dirlib.tools.tune: every trial of {method} on {dataset} failed")
    trial_rows = []
    for i, (p, sc, f) in enumerate(zip(points, scores, folders)):
        row = {"point": p, "val": None if recs[i].get("status") == "eliminated" else sc,
               "path": str(f.relative_to(out))}
        if rung_scores is not None:
            row.update(rung_val=rung_scores[i], kept=i in kept)
        trial_rows.append(row)
    choice = {**settings, "dataset": dataset, "metric": f"validation {metric} (all shots)",
              "backend": backend, "trials": trial_rows, "chosen": points[best],
              "trial_epochs": epochs, "full_search_epochs": sum(c.epochs for c in cfgs),
              "git": records.git_commit()}
    out.mkdir(parents=True, exist_ok=True)
    records.write_text_atomic(out / "choice.json", json.dumps(choice, indent=1, default=str))
    log(f"{method} on {dataset}: chose {point_slug(points[best])} "
        f"(validation {metric} {scores[best]:.4f}; trials: "
        + ", ".join(f"{point_slug(p)} {s:.4f}" for p, s in zip(points, scores)) + ")")
    for seed in seeds:
        folder = out / f"seed{seed}"
        if seed == tune_seed:
            # the trial at the chosen point is this seed's run: the same config, trained once
            _place_seed_record(folders[best], folder, log)
            continue
        cfg = trial_config(dataset, method, seed, points[best], overrides)
        if data is None:
            data = load_for_config(cfg, data_dir, subset=False)
        # the seeds of a choice set aside are set aside too (a run of the same config is kept)
        run_experiment(cfg, folder, data=data, overwrite=replaced and _other_run(folder, cfg, data),
                       log=log)
        log(f"done  {folder}")
    return choice


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--trials", type=int, required=True, help="the budget: points tried")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--tune-seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--train-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a RunConfig field for every run (JSON values), e.g. epochs=10")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--backend", default="auto", choices=("auto", "local", "ray"))
    p.add_argument("--halving", type=int, default=None, metavar="EPOCH",
                   help="successive halving: every trial trains EPOCH epochs, the better half "
                        "resumes to the full budget (local backend)")
    p.add_argument("--overwrite", action="store_true",
                   help="set aside (never overwrite) a tuning of other settings in --out")
    a = p.parse_args(argv)
    from ..cli_args import parse_kv
    try:
        overrides = parse_kv(a.train_arg)
    except argparse.ArgumentTypeError as e:
        p.error(f"--train-arg: {e}")
    try:
        tune(a.dataset, a.method, out=a.out, trials=a.trials, seeds=a.seeds, tune_seed=a.tune_seed,
             overrides=overrides, data_dir=a.data_dir, backend=a.backend, halving=a.halving,
             overwrite=a.overwrite, log=lambda m: print(m, flush=True))
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
