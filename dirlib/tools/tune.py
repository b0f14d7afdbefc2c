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
import random
import shutil
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import records
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


def tune(dataset: str, method: str, *, out, trials: int, seeds: Sequence[int] = (0,),
         tune_seed: int = 0, overrides: Optional[dict] = None, data=None, data_dir=None,
         backend: str = "auto", log=print) -> dict:
    """Choose ``method``'s setting on the validation split of ``tune_seed``'s runs (``trials``
    points of its declared space), then train it for every seed of ``seeds``. Resumable: finished
    runs are kept. Returns the choice (also written to ``out/choice.json``)."""
    from ..datasets import main_metric
    from ..experiment import load_for_config, run_experiment
    out = Path(out)
    overrides = dict(overrides or {})
    points = choose_points(method_points(method), trials, seed=tune_seed)
    cfgs = [trial_config(dataset, method, tune_seed, p, overrides) for p in points]
    folders = [out / "trials" / point_slug(p) / f"seed{tune_seed}" for p in points]
    metric = main_metric(dataset)
    if backend == "auto":
        try:
            import ray.tune  # noqa: F401
            backend = "ray"
        except ImportError:
            backend = "local"
    if backend == "ray":
        recs = _run_ray(cfgs, folders, data_dir, metric, log)
    elif backend == "local":
        if data is None:
            data = load_for_config(cfgs[0], data_dir, subset=False)
        recs = _run_local(cfgs, folders, data, log)
    else:
        raise ValueError(f"dirlib.tools.tune: backend must be auto, local or ray, got {backend!r}")
    scores = [_score(r, metric) for r in recs]
    best = min(range(len(points)), key=lambda i: (scores[i], i))
    if scores[best] == float("inf"):
        raise RuntimeError(f"dirlib.tools.tune: every trial of {method} on {dataset} failed")
    choice = {"dataset": dataset, "method": method, "metric": f"validation {metric} (all shots)",
              "tune_seed": tune_seed, "budget": trials, "backend": backend,
              "trials": [{"point": p, "val": s, "path": str(f.relative_to(out))}
                         for p, s, f in zip(points, scores, folders)],
              "chosen": points[best], "git": records.git_commit()}
    out.mkdir(parents=True, exist_ok=True)
    records.write_text_atomic(out / "choice.json", json.dumps(choice, indent=1, default=str))
    log(f"{method} on {dataset}: chose {point_slug(points[best])} "
        f"(validation {metric} {scores[best]:.4f}; trials: "
        + ", ".join(f"{point_slug(p)} {s:.4f}" for p, s in zip(points, scores)) + ")")
    for seed in seeds:
        folder = out / f"seed{seed}"
        if seed == tune_seed:
            # the trial at the chosen point is this seed's run: the same config, trained once
            folder.mkdir(parents=True, exist_ok=True)
            diff = folders[best] / records.DIFF_NAME
            if diff.exists():      # the code it was made with travels with it
                shutil.copyfile(diff, folder / records.DIFF_NAME)
            shutil.copyfile(folders[best] / "run.json", folder / "run.json")
            continue
        cfg = trial_config(dataset, method, seed, points[best], overrides)
        if data is None:
            data = load_for_config(cfg, data_dir, subset=False)
        run_experiment(cfg, folder, data=data)
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
    a = p.parse_args(argv)
    from ..cli_args import parse_kv
    try:
        overrides = parse_kv(a.train_arg)
    except argparse.ArgumentTypeError as e:
        p.error(f"--train-arg: {e}")
    try:
        tune(a.dataset, a.method, out=a.out, trials=a.trials, seeds=a.seeds, tune_seed=a.tune_seed,
             overrides=overrides, data_dir=a.data_dir, backend=a.backend,
             log=lambda m: print(m, flush=True))
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
