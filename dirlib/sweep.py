"""Run a grid of (method x seed) on one dataset into a results folder, resumably.

::

    python -m dirlib.sweep --dataset utkface-dir --methods vanilla lds frobenius --seeds 0 1 2 \\
        --epochs 10 --out results/runs [--train-arg KEY=VALUE ...]

Each run writes ``OUT/<dataset>/<method>/seed<k>/run.json`` (+ ``ckpt/``). A run whose record is
``completed`` with the same config hash is skipped; an interrupted one resumes from its last
epoch checkpoint (the same command after a kill continues). ``--delete-ckpt`` removes the
checkpoints of completed runs (they are large; the records are what ``results/`` keeps).
A failed run is recorded (status ``failed`` + error) and the sweep goes on.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from . import records
from .cli import DATASET_DEFAULTS, _kv
from .experiment import load_for_config, run_experiment
from .train import RunConfig


def run_dir(out, dataset, method, seed) -> Path:
    return Path(out) / dataset / method.replace("+", "_") / f"seed{seed}"


def make_cfg(dataset, method, seed, overrides: dict) -> RunConfig:
    d = dict(DATASET_DEFAULTS.get(dataset, {}))
    d.update(overrides)
    if "lr_milestones" in d:
        d["lr_milestones"] = tuple(d["lr_milestones"])
    return RunConfig(dataset=dataset, method=method, seed=seed, **d)


def _finished_stamp(rec_path: Path):
    """``finished`` of a completed record at ``rec_path``, else None (also when unreadable)."""
    try:
        rec = records.read_json(rec_path)
    except (OSError, ValueError):
        return None
    return rec.get("finished") if isinstance(rec, dict) and rec.get("status") == "completed" else None


def sweep(dataset, methods, seeds, out, overrides=None, data_dir=None, delete_ckpt=False,
          overwrite=False, log=print) -> list:
    """Run every (method, seed) into ``out``; return the paths of the completed records.

    Each run goes through :func:`dirlib.experiment.run_experiment`: completed runs of the same
    config and data are skipped, unfinished ones resume, a folder holding another run is refused
    (``overwrite`` keeps the old record beside the new one). A run that fails or is refused is
    logged with its folder and the grid goes on; a summary of completed / skipped / failed runs
    ends the sweep."""
    overrides = dict(overrides or {})
    done, skipped, failed = [], [], []
    data = None
    for seed in seeds:
        for method in methods:
            rd = run_dir(out, dataset, method, seed)
            rec_path = rd / "run.json"
            t0 = time.time()
            try:
                cfg = make_cfg(dataset, method, seed, overrides)
                if data is None:   # the full dataset; run_experiment applies a per-seed subset
                    data = load_for_config(cfg, data_dir, subset=False)
                before = _finished_stamp(rec_path)
                rec = run_experiment(cfg, rd, data=data, overwrite=overwrite)
            except Exception as e:  # recorded (or refused untouched) by run_experiment; go on
                msg = str(e).splitlines()[0] if str(e) else ""
                log(f"FAILED {dataset} {method} seed{seed} ({rd}): {type(e).__name__}: {msg}")
                failed.append(rd)
                continue
            done.append(rec_path)
            if before is not None and rec.get("finished") == before:
                log(f"skip  {dataset} {method} seed{seed}: completed")
                skipped.append(rd)
            else:
                t = rec["test"]["all"]
                log(f"done  {dataset} {method} seed{seed} in {time.time() - t0:.0f}s: "
                    + " ".join(f"{k}={t[k]:.4f}" for k in ("mae", "mse") if t.get(k) is not None))
            if delete_ckpt:
                shutil.rmtree(rd / "ckpt", ignore_errors=True)
    log(f"sweep: {len(done) - len(skipped)} completed, {len(skipped)} skipped, {len(failed)} failed"
        + ("".join(f"\n  failed: {p}" for p in failed)))
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--methods", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int)
    p.add_argument("--out", default="results/runs")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--train-arg", nargs="*", metavar="KEY=VALUE",
                   help="RunConfig fields, e.g. img_size=32 batch_size=128 model_kwargs={\"hidden\":128}")
    p.add_argument("--delete-ckpt", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="replace records of another configuration (the old ones are kept as "
                        "run.replaced-<time>.json)")
    a = p.parse_args(argv)
    overrides = _kv(a.train_arg)
    if a.epochs is not None:
        overrides["epochs"] = a.epochs
    overrides.setdefault("progress", False)
    done = sweep(a.dataset, a.methods, a.seeds, a.out, overrides, a.data_dir, a.delete_ckpt,
                 overwrite=a.overwrite, log=lambda m: print(m, flush=True))
    return 0 if len(done) == len(a.methods) * len(a.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
