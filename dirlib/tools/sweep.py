"""Run a grid of (method x seed) on one dataset into a results folder, resumably, on one of three
engines.

::

    python -m dirlib sweep --dataset utkface-dir --methods vanilla lds frobenius --seeds 0 1 2 \\
        --epochs 10 --out results/runs [--train-arg KEY=VALUE ...] \\
        [--backend local|ray|slurm] [--gpus-per-run 0.25] [--cpus-per-run 4]

Each run writes ``OUT/<dataset>/<method>/seed<k>/run.json`` (+ ``ckpt/``). A run is a pure
function of its configuration and the data (:func:`run_job`): a run whose record is ``completed``
with the same config and data hash is skipped; an interrupted one resumes from its last epoch
checkpoint (the same command after a kill continues). ``--delete-ckpt`` removes the checkpoints
of completed runs. A failed run is recorded (status ``failed`` + error) and the grid goes on.

Backends (the records they write are the same, apart from timing and host fields):

* ``local`` (default): in this process, one run after another; no extra dependency.
* ``ray`` (``pip install 'dirlib[ray]'``): each run is a Ray task with ``num_gpus=--gpus-per-run``
  (0.25 packs four runs on a GPU) and ``num_cpus=--cpus-per-run``. Without ``--address`` it starts
  Ray on this machine and uses every GPU and CPU; with ``--address`` it joins a running cluster.
* ``slurm`` (``pip install 'dirlib[slurm]'``): one submitit job array (``map_array``), with
  ``--partition``, ``--time-min``, ``--gpus-per-run`` and ``--array-parallelism``. submitit's
  ``local`` and ``debug`` executors (``--slurm-executor``) run the same array without a cluster.

Each worker sets its torch threads to its CPU slots and its device from what the engine gave it
(Ray and SLURM set ``CUDA_VISIBLE_DEVICES``; ``device=auto`` then picks that GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .. import records
from ..cli_args import parse_kv
from ..datasets import is_spec
from ..train import RunConfig

BACKENDS = ("local", "ray", "slurm")


def run_dir(out, dataset, method, seed, slug: Optional[str] = None) -> Path:
    """``OUT/<dataset>/<slug>/seed<k>``; the slug defaults to the method (``+`` -> ``_``). A dataset
    file's folder is its file name without the suffix (``examples/randhie.toml`` -> ``randhie``)."""
    folder = Path(dataset).stem if is_spec(dataset) else dataset
    return Path(out) / folder / (slug or method.replace("+", "_")) / f"seed{seed}"


def make_cfg(dataset, method, seed, overrides: dict) -> RunConfig:
    return RunConfig.for_dataset(dataset, method=method, seed=seed, **overrides)


def own_options(method: str, method_kwargs: dict) -> dict:
    """The options of ``method_kwargs`` (a sweep's ``--method-arg``, for several methods) that
    belong to ``method``'s components."""
    from ..methods import parse_method
    parts = set(parse_method(method))
    return {k: v for k, v in method_kwargs.items() if k.split(".", 1)[0] in parts}


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the grid: everything :func:`run_job` needs, picklable for any engine."""
    dataset: str
    method: str
    seed: int
    out: str
    overrides: tuple = ()            # sorted (key, value) pairs of RunConfig fields
    data_dir: Optional[str] = None
    delete_ckpt: bool = False
    overwrite: bool = False
    threads: Optional[int] = None    # torch threads (None: leave torch's default)
    slug: Optional[str] = None       # the run's folder name (None: the method's)
    save_predictions: Optional[str] = None   # csv | parquet: predictions.<fmt> beside run.json

    @property
    def folder(self) -> Path:
        return run_dir(self.out, self.dataset, self.method, self.seed, self.slug)

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.method} seed{self.seed}"


def grid(dataset: str, methods: Sequence[str], seeds: Sequence[int], out, overrides=None, *,
         data_dir=None, delete_ckpt=False, overwrite=False, threads=None,
         save_predictions=None, method_args: Optional[dict] = None) -> List[Job]:
    """The (seed x method) jobs of a sweep, seeds outermost (each seed's runs share a start).
    ``method_args``: options of the grid's methods; each job gets those of its own components."""
    def ov(m):
        o = dict(overrides or {})
        if method_args:
            o["method_kwargs"] = {**dict(o.get("method_kwargs") or {}),
                                  **own_options(m, method_args)}
        return tuple(sorted(o.items()))
    return [Job(dataset, m, int(s), str(out), ov(m), None if data_dir is None else str(data_dir),
                delete_ckpt, overwrite, threads, save_predictions=save_predictions)
            for s in seeds for m in methods]


def grid_header(jobs: List[Job]) -> str:
    """The settings a sweep starts with: data, methods, seeds, encoder, loss and optimiser (each
    run's record holds its own, with the shots' thresholds and counts)."""
    from ..datasets import get as dataset_info
    j = jobs[0]
    cfg = make_cfg(j.dataset, j.method, j.seed, dict(j.overrides))
    try:
        loss = cfg.loss or f"{dataset_info(j.dataset).default_loss} (the data's default)"
    except ValueError:
        loss = cfg.loss or "the data's default"
    return "\n".join([
        f"sweep: {j.dataset}, {len({x.method for x in jobs})} method(s) "
        f"({', '.join(dict.fromkeys(x.method for x in jobs))}) x seeds "
        f"{', '.join(map(str, dict.fromkeys(x.seed for x in jobs)))} -> {j.out}",
        f"  encoder  {cfg.model or 'the data default'} {cfg.model_kwargs or ''}".rstrip(),
        f"  loss     {loss}",
        f"  optim    {cfg.optimizer} lr {cfg.lr:g} weight decay {cfg.weight_decay:g}, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs",
        "  shots    the thresholds and training counts are in each run's record (shots)"])


def _finished_stamp(rec_path: Path):
    """``finished`` of a completed record at ``rec_path``, else None (also when unreadable)."""
    try:
        rec = records.read_json(rec_path)
    except (OSError, ValueError):
        return None
    return rec.get("finished") if isinstance(rec, dict) and rec.get("status") == "completed" else None


def run_job(job: Job, data=None) -> Dict[str, object]:
    """Run one job into its folder (:func:`dirlib.experiment.run_experiment`) and say what
    happened: ``{"job", "status": completed | skipped | failed, "path", "seconds", "message"}``.
    Never raises for a failed run: the failure is in the record and in the result."""
    from ..experiment import load_for_config, run_experiment
    if job.threads:
        import torch
        torch.set_num_threads(int(job.threads))
    rd = job.folder
    rec_path = rd / "run.json"
    t0 = time.time()
    try:
        cfg = make_cfg(job.dataset, job.method, job.seed, dict(job.overrides))
        if data is None:   # the full dataset; run_experiment applies a per-seed subset
            data = load_for_config(cfg, job.data_dir, subset=False)
        before = _finished_stamp(rec_path)
        rec = run_experiment(cfg, rd, data=data, overwrite=job.overwrite,
                             save_predictions=job.save_predictions)
    except Exception as e:  # recorded (or refused untouched) by run_experiment
        msg = str(e).splitlines()[0] if str(e) else ""
        return {"job": job, "status": "failed", "path": str(rd), "seconds": time.time() - t0,
                "message": f"{type(e).__name__}: {msg}"}
    if job.delete_ckpt:
        shutil.rmtree(rd / "ckpt", ignore_errors=True)
    if before is not None and rec.get("finished") == before:
        return {"job": job, "status": "skipped", "path": str(rec_path), "seconds": time.time() - t0,
                "message": "completed"}
    t = rec["test"]["all"]
    return {"job": job, "status": "completed", "path": str(rec_path), "seconds": time.time() - t0,
            "message": " ".join(f"{k}={t[k]:.4f}" for k in ("mae", "mse") if t.get(k) is not None)}


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="sweep", unit="run", disable=not enabled, file=sys.stderr)


# ----------------------------------------------------------------------------------- backends
def run_local(jobs: Sequence[Job], *, progress: bool = True, log=print) -> List[dict]:
    """In this process, one job after another; the dataset is loaded once per dataset."""
    from ..experiment import load_for_config
    out, data = [], {}
    with _progress(len(jobs), progress) as bar:
        for j in jobs:
            key = (j.dataset, j.data_dir, repr(j.overrides))   # overrides may change the data (img_size)
            if key not in data:
                try:
                    data[key] = load_for_config(make_cfg(j.dataset, j.method, j.seed, dict(j.overrides)),
                                                j.data_dir, subset=False)
                except Exception:   # run_job reports it against this job
                    data[key] = None
            try:
                r = run_job(j, data=data[key])
            except KeyboardInterrupt as e:    # SIGINT, or SIGTERM under sigterm_as_interrupt
                r = {"job": j, "status": "interrupted", "path": str(j.folder),
                     "seconds": float("nan"), "message": str(e) or "SIGINT"}
                out.append(r)
                _log_result(r, log)
                break                          # the rest of the grid is not started
            out.append(r)
            _log_result(r, log)
            bar.update(1)
    return out


def _ray_worker(job: Job) -> dict:
    return run_job(job)


def run_ray(jobs: Sequence[Job], *, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0,
            address: Optional[str] = None, num_cpus: Optional[int] = None, progress: bool = True,
            log=print) -> List[dict]:
    """One Ray task per job (``num_gpus=gpus_per_run``, ``num_cpus=cpus_per_run``). Starts Ray on
    this machine unless ``address`` names a cluster (``"auto"``: the one this node belongs to)."""
    try:
        import ray
    except ImportError:
        raise SystemExit("--backend ray needs Ray: pip install 'dirlib[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    threads = max(1, int(cpus_per_run))
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_ray_worker)
    pending = {task.remote(dataclasses.replace(j, threads=j.threads or threads)): i
               for i, j in enumerate(jobs)}
    results: List[Optional[dict]] = [None] * len(jobs)
    try:
        with _progress(len(jobs), progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(ready[0])
                try:
                    results[i] = ray.get(ready[0])
                except Exception as e:   # a worker that died (out of memory, killed node)
                    results[i] = {"job": jobs[i], "status": "failed", "path": str(jobs[i].folder),
                                  "seconds": float("nan"), "message": f"{type(e).__name__}: {e}".splitlines()[0]}
                _log_result(results[i], log)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
    return results


def run_slurm(jobs: Sequence[Job], *, folder, partition: Optional[str] = None, time_min: int = 60,
              gpus_per_run: int = 0, cpus_per_run: int = 1, array_parallelism: int = 64,
              executor: str = "slurm", progress: bool = True, log=print) -> List[dict]:
    """One submitit job array over ``jobs`` (``map_array``). ``executor``: ``slurm`` (a cluster),
    ``local`` (subprocesses on this machine) or ``debug`` (in this process), for tests."""
    try:
        import submitit
    except ImportError:
        raise SystemExit("--backend slurm needs submitit: pip install 'dirlib[slurm]'") from None
    ex = submitit.AutoExecutor(folder=str(folder), cluster=None if executor == "slurm" else executor)
    params = dict(timeout_min=int(time_min), cpus_per_task=int(cpus_per_run),
                  slurm_array_parallelism=int(array_parallelism))
    if executor == "slurm":
        params["gpus_per_node"] = int(gpus_per_run)
        if partition:
            params["slurm_partition"] = partition
    ex.update_parameters(**params)
    threads = max(1, int(cpus_per_run))
    submitted = ex.map_array(run_job, [dataclasses.replace(j, threads=j.threads or threads) for j in jobs])
    results = []
    with _progress(len(jobs), progress) as bar:
        for j, s in zip(jobs, submitted):
            try:
                r = s.result()
            except Exception as e:   # the job itself died (time limit, node failure)
                r = {"job": j, "status": "failed", "path": str(j.folder), "seconds": float("nan"),
                     "message": f"{type(e).__name__}: {e}".splitlines()[0]}
            results.append(r)
            _log_result(r, log)
            bar.update(1)
    return results


def _log_result(r: dict, log) -> None:
    j = r["job"]
    if r["status"] == "failed":
        log(f"FAILED {j.name} ({j.folder}): {r['message']}")
    elif r["status"] == "interrupted":
        log(f"interrupted {j.name} ({j.folder}): {r['message']}; the same command resumes")
    elif r["status"] == "skipped":
        log(f"skip  {j.name}: completed")
    else:
        log(f"done  {j.name} in {r['seconds']:.0f}s: {r['message']}")


def summary(results: Sequence[dict]) -> str:
    """The table that ends a sweep: completed / skipped / failed runs, then each failed run."""
    n = {s: sum(r["status"] == s for r in results)
         for s in ("completed", "skipped", "failed", "interrupted")}
    lines = [f"sweep: {n['completed']} completed, {n['skipped']} skipped, {n['failed']} failed"
             + (f", {n['interrupted']} interrupted" if n["interrupted"] else "")]
    lines += [f"  failed: {r['path']}" for r in results if r["status"] == "failed"]
    return "\n".join(lines)


def run_grid(jobs: Sequence[Job], backend: str = "local", log=print, **options) -> List[dict]:
    """Run ``jobs`` on ``backend`` (``local``, ``ray``, ``slurm``; ``options`` go to
    :func:`run_local`, :func:`run_ray` or :func:`run_slurm`), log the summary, return the results
    in grid order."""
    runners: Dict[str, Callable] = {"local": run_local, "ray": run_ray, "slurm": run_slurm}
    if backend not in runners:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    results = runners[backend](jobs, log=log, **options)
    log(summary(results))
    return results


def sweep(dataset, methods, seeds, out, overrides=None, data_dir=None, delete_ckpt=False,
          overwrite=False, log=print, backend: str = "local", **options) -> list:
    """Run every (method, seed) into ``out`` on ``backend``; return the paths of the records that
    are completed (trained now or skipped as already done)."""
    jobs = grid(dataset, methods, seeds, out, overrides, data_dir=data_dir, delete_ckpt=delete_ckpt,
                overwrite=overwrite)
    results = run_grid(jobs, backend, log=log, **options)
    return [Path(r["path"]) for r in results if r["status"] != "failed"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib sweep", description=__doc__,
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
    p.add_argument("--backend", choices=BACKENDS, default="local")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="ray: GPUs per run (0.25: four runs per GPU); slurm: GPUs per job (integer)")
    p.add_argument("--cpus-per-run", type=float, default=None,
                   help="CPU slots and torch threads per run (ray, slurm: default 1; local: torch's default)")
    p.add_argument("--address", default=None, help="ray: a running cluster's address ('auto': this node's)")
    p.add_argument("--partition", default=None, help="slurm: the partition")
    p.add_argument("--time-min", type=int, default=60, help="slurm: the time limit per run, in minutes")
    p.add_argument("--array-parallelism", type=int, default=64, help="slurm: runs at once")
    p.add_argument("--slurm-folder", default="runs/submitit", help="slurm: submitit's logs and pickles")
    p.add_argument("--slurm-executor", choices=("slurm", "local", "debug"), default="slurm",
                   help="slurm: 'local' or 'debug' run the job array on this machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--method-arg", nargs="*", default=[], metavar="NAME.KEY=VALUE",
                   help="method options (JSON values); each run takes those of its own "
                        "components, e.g. lds.sigma=1 ranksim.gamma=100")
    p.add_argument("--save-predictions", choices=("csv", "parquet"), default=None,
                   help="write predictions.csv|parquet beside each run.json (validation and test)")
    a = p.parse_args(argv)
    overrides = parse_kv(a.train_arg)
    try:
        method_kwargs = parse_kv(a.method_arg)
    except argparse.ArgumentTypeError as e:
        p.error(f"--method-arg: {e}")
    if method_kwargs:
        from ..methods import parse_method
        comps = {c for m in a.methods for c in parse_method(m)}
        stray = [k for k in method_kwargs if k.split(".", 1)[0] not in comps]
        if stray:
            p.error(f"--method-arg {', '.join(stray)}: no method of this sweep "
                    f"({', '.join(a.methods)}) has that component; write COMPONENT.KEY=VALUE")
    if a.epochs is not None:
        overrides["epochs"] = a.epochs
    overrides.setdefault("progress", False)
    opts: dict = {"progress": not a.no_progress}
    cpus = a.cpus_per_run or 1.0
    if a.backend == "ray":
        opts.update(gpus_per_run=a.gpus_per_run, cpus_per_run=cpus, address=a.address)
    elif a.backend == "slurm":
        opts.update(folder=a.slurm_folder, partition=a.partition, time_min=a.time_min,
                    gpus_per_run=int(a.gpus_per_run), cpus_per_run=int(cpus),
                    array_parallelism=a.array_parallelism, executor=a.slurm_executor)
    threads = int(a.cpus_per_run) if a.backend == "local" and a.cpus_per_run else None
    jobs = grid(a.dataset, a.methods, a.seeds, a.out, overrides, data_dir=a.data_dir,
                delete_ckpt=a.delete_ckpt, overwrite=a.overwrite, threads=threads,
                save_predictions=a.save_predictions, method_args=method_kwargs)
    try:   # every run's config is refused before anything is written
        from ..methods import parse_method
        for j in jobs:
            parse_method(j.method)
            make_cfg(j.dataset, j.method, j.seed, dict(j.overrides)).validate()
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(grid_header(jobs), flush=True)
    from ..experiment import sigterm_as_interrupt
    with sigterm_as_interrupt():
        results = run_grid(jobs, a.backend, log=lambda m: print(m, flush=True), **opts)
    if any(r["status"] == "interrupted" for r in results):
        return 130
    done = [r for r in results if r["status"] not in ("failed", "interrupted")]
    return 0 if len(done) == len(a.methods) * len(a.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
