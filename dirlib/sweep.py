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
import traceback
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


def sweep(dataset, methods, seeds, out, overrides=None, data_dir=None, delete_ckpt=False,
          log=print) -> list:
    overrides = dict(overrides or {})
    done = []
    data = None
    for seed in seeds:
        for method in methods:
            cfg = make_cfg(dataset, method, seed, overrides)
            rd = run_dir(out, dataset, method, seed)
            rec_path = rd / "run.json"
            h = records.stable_hash(cfg.to_dict())
            if rec_path.exists():
                old = records.read_json(rec_path)
                if old.get("status") == "completed" and old.get("config_hash") == h:
                    log(f"skip  {dataset} {method} seed{seed}: completed")
                    done.append(rec_path)
                    continue
                if old.get("config_hash") != h:
                    raise RuntimeError(f"{rec_path} holds a run of another configuration; "
                                       f"choose another --out or remove it")
            if data is None:   # the full dataset; run_experiment applies a per-seed subset
                data = load_for_config(cfg, data_dir, subset=False)
            t0 = time.time()
            log(f"start {dataset} {method} seed{seed}")
            try:
                rec = run_experiment(cfg, rd, data=data)
                t = rec["test"]["all"]
                log(f"done  {dataset} {method} seed{seed} in {time.time() - t0:.0f}s: "
                    + " ".join(f"{k}={t[k]:.4f}" for k in ("mae", "mse") if k in t))
                done.append(rec_path)
                if delete_ckpt:
                    shutil.rmtree(rd / "ckpt", ignore_errors=True)
            except Exception:  # recorded as failed by run_experiment; go on with the grid
                log(f"FAILED {dataset} {method} seed{seed}:\n{traceback.format_exc(limit=3)}")
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
    a = p.parse_args(argv)
    overrides = _kv(a.train_arg)
    if a.epochs is not None:
        overrides["epochs"] = a.epochs
    overrides.setdefault("progress", False)
    sweep(a.dataset, a.methods, a.seeds, a.out, overrides, a.data_dir, a.delete_ckpt,
          log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
