"""Run an experiment end to end and write its run record (``OUT/run.json``).

Nothing is written until the config is valid, the data loaded and the method built. The record is
then written with status ``running``, updated after every phase, and finished as ``completed``,
``interrupted`` (SIGINT, SIGTERM) or ``failed`` (with the error): a crash never loses the record,
and a refused rerun never touches it (:func:`run_experiment`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

from . import records
from .datasets import get as dataset_info
from .data.base import DIRData
from .methods import build_method
from .methods.phases import run_phases
from .train import RunConfig, RunPaused, fit, resolve_device


def load_for_config(cfg: RunConfig, data_dir=None, subset: bool = True) -> DIRData:
    kwargs = dict(cfg.data_kwargs)
    info = dataset_info(cfg.dataset)
    if info.images:
        kwargs.setdefault("img_size", cfg.img_size)
    data = info.load(data_dir=data_dir, **kwargs)
    return apply_subset(cfg, data) if subset else data


def apply_subset(cfg: RunConfig, data: DIRData) -> DIRData:
    if cfg.subset_train is None and cfg.subset_eval is None:
        return data
    return data.subset(cfg.subset_train, cfg.subset_eval, seed=cfg.seed)


def strip_result(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "model"}


def _device_key(name) -> str:
    d = resolve_device(str(name or "auto"))
    return f"{d.type}:{d.index or 0}" if d.type == "cuda" else d.type


def resume_key(config: dict, data_hash_: str) -> str:
    """What decides whether two runs are the same run: the config without its cosmetic fields
    (:data:`dirlib.records.COSMETIC_KEYS`; ``device`` as the device it resolves to here) and the
    data hash."""
    c = {k: v for k, v in records.to_jsonable(config).items() if k not in records.COSMETIC_KEYS}
    c["device"] = _device_key(c.get("device"))
    return records.stable_hash({"config": c, "data_hash": data_hash_})


class RunExists(RuntimeError):
    """The output folder holds a record of another run; nothing was written."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so it ends the run like SIGINT does."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM into :class:`RunInterrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(f"signal {signum} (SIGTERM)")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def recorded(record: dict, rec_path: Path):
    """Run the block as the run that ``record`` describes, and write the record however it ends:
    ``completed`` when the block returns, ``interrupted`` on SIGINT or SIGTERM (turned into
    :class:`RunInterrupted`), ``failed`` with the error and traceback otherwise."""
    t0 = time.time()
    record.setdefault("attempts", [])
    try:
        with sigterm_as_interrupt():
            yield
        record["status"] = "completed"
    except RunPaused as e:      # stopped on purpose at a rung: resumable, not an error
        record["status"] = "paused"
        record["paused"] = {"epoch": e.epoch, "best_val": e.best, "metric": e.metric}
        raise
    except BaseException as e:  # keep the record, mark it, re-raise
        record["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=8)
        raise
    finally:
        record["wall_time_s"] = time.time() - t0
        record["finished"] = records.now()
        attempt = {k: record.get(k) for k in ("started", "finished", "status", "wall_time_s")}
        # the code of each attempt (S5): a run resumed under other code names both
        attempt["git"] = attempt_code(record.get("git"))
        record["attempts"].append(attempt)
        records.write_json(rec_path, record)


def attempt_code(git: Optional[dict]) -> dict:
    """The code identity an attempt ran: commit, dirty flag and diff hash."""
    git = git or {}
    return {k: git.get(k) for k in ("commit", "dirty", "diff_sha256")}


def other_code_attempts(attempts: list, git: dict) -> list:
    """The earlier attempts that ran under code other than ``git`` (those that stored theirs)."""
    now = attempt_code(git)
    return [a for a in attempts if a.get("git") and a["git"] != now]


def earlier_attempts(old: Optional[dict]) -> list:
    """The attempts of an unfinished record that a new attempt resumes: its ``attempts`` list, or
    one entry made of its own fields for records written before attempts were kept."""
    if not old:
        return []
    if old.get("attempts"):
        return list(old["attempts"])
    return [{k: old.get(k) for k in ("started", "finished", "status", "wall_time_s")}]


def _read_existing(rec_path: Path) -> Optional[dict]:
    if not rec_path.exists():
        return None
    try:
        rec = records.read_json(rec_path)
        if not isinstance(rec, dict):
            raise ValueError("not a JSON object")
        return rec
    except (ValueError, OSError) as e:
        raise RunExists(f"{rec_path} exists but cannot be read ({type(e).__name__}: {e}); it was "
                        f"left as it is. Rerun with --overwrite to keep it as a .replaced copy and "
                        f"start anew, or choose another --out") from None


def _set_aside(rec_path: Path) -> Path:
    """Keep an old record beside the new one: ``run.replaced-<time>.json``."""
    stamp = records.now().replace(":", "").replace("+0000", "Z")
    dst = rec_path.with_name(f"run.replaced-{stamp}.json")
    k = 1
    while dst.exists():
        dst = rec_path.with_name(f"run.replaced-{stamp}-{k}.json")
        k += 1
    diff = rec_path.with_name(records.DIFF_NAME)
    if diff.exists():
        # the diff it was made with goes with it, under its name (S4; records.diff_path): the new
        # run may write its own run.diff, and the kept record stays byte for byte as it was
        os.replace(diff, dst.with_suffix(".diff"))
    os.replace(rec_path, dst)
    return dst


def _differences(old_cfg: dict, new_cfg: dict) -> str:
    a, b = records.to_jsonable(old_cfg or {}), records.to_jsonable(new_cfg)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)
                  and k not in records.COSMETIC_KEYS)
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:6]) or "the data"


def _check_model(cfg: RunConfig, data: DIRData) -> None:
    """Build the model once before anything is written: a bad ``--model`` or ``--model-arg`` is
    refused by name and leaves no failed record behind."""
    from .models import build_model
    name = cfg.model or data.model
    kwargs = {**data.model_kwargs, **cfg.model_kwargs}
    try:
        build_model(name, **kwargs)
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        raise ValueError(f"--model {name} with --model-arg {cfg.model_kwargs or '{}'} cannot be "
                         f"built: {type(e).__name__}: {e}") from None


def check_out_dir(out_dir: Path, what: str = "run.json") -> None:
    """``out_dir`` can hold a record: not a file, not under a file, and writable where it exists
    (refused by name before anything is written)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder: choose a folder for {what}")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out_dir}: {parent} is a file, so no folder can be made "
                                 f"under it")
            if not os.access(parent if not out_dir.exists() else out_dir, os.W_OK):
                raise ValueError(f"--out {out_dir}: {parent} is not writable")
            break


def run_experiment(cfg: RunConfig, out_dir, data_dir=None, data: Optional[DIRData] = None,
                   overwrite: bool = False, log=None, save_predictions: Optional[str] = None,
                   keep_model: bool = False):
    """Train and evaluate ``cfg`` into ``out_dir`` (``run.json`` + ``ckpt/``) and return the record.

    * The config is validated, the data loaded and the method built **before** anything is written:
      a run that would train nothing, or cannot start, leaves the folder untouched.
    * The run's identity is :func:`resume_key` (the config without cosmetic fields,
      and the data hash). A completed record with the same key is returned as it is; an unfinished
      one is resumed from its checkpoint (verified by its sha256).
    * A record of another run is never touched: it is refused with :class:`RunExists`.
      ``overwrite`` keeps any existing record as ``run.replaced-<time>.json``, removes the
      checkpoints and starts anew.
    * One process per folder (:class:`dirlib.records.RunLock`). SIGINT and SIGTERM end the run as
      ``interrupted``; the same call resumes it. Any other error ends it as ``failed``.
    """
    cfg.validate()
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    try:
        resolve_device(cfg.device)
    except RuntimeError as e:          # no CUDA here: refused before anything is written
        raise ValueError(str(e)) from None
    rec_path = out_dir / "run.json"
    full = load_for_config(cfg, data_dir, subset=False) if data is None else data
    data = apply_subset(cfg, full)
    spec = build_method(cfg, data)
    _check_model(cfg, data)
    dhash = records.data_hash(data)
    # a subset is drawn per seed, so its hash differs from seed to seed: the data it was drawn
    # from is what seeds of one experiment share
    source_hash = records.data_hash(full) if data is not full else None
    key = resume_key(cfg.to_dict(), dhash)
    out_dir.mkdir(parents=True, exist_ok=True)
    with records.RunLock(out_dir):
        old = _read_existing(rec_path)
        ckpt_dir = out_dir / "ckpt"
        if old is not None and overwrite:
            kept = _set_aside(rec_path)
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            if log:
                log(f"kept the old record as {kept}")
            old = None
        if old is not None:
            old_key = old.get("resume_key") or (
                resume_key(old["config"], old.get("data_hash"))
                if isinstance(old.get("config"), dict) else None)
            if old_key == key and old.get("status") == "completed":
                if log:
                    log(f"skip  {rec_path}: completed")
                if keep_model:
                    raise RunExists(f"{rec_path} is completed, and its model is not in memory: "
                                    f"rerun with overwrite=True (the old record is kept beside) "
                                    f"to get the model")
                if save_predictions and not (out_dir / f"predictions.{save_predictions}").exists():
                    raise RunExists(f"{rec_path} is completed, and predictions are written while a "
                                    f"run trains: rerun with --overwrite (the old record is kept "
                                    f"beside) to get predictions.{save_predictions}")
                return old
            if old_key != key and old.get("status") == "failed":
                # a failed record holds no result: it is kept beside, and the new run starts
                kept = _set_aside(rec_path)
                shutil.rmtree(ckpt_dir, ignore_errors=True)
                if log:
                    log(f"kept the failed record of another configuration as {kept}")
                old = None
            elif old_key != key:
                raise RunExists(
                    f"{rec_path} holds a {old.get('status', 'unknown')} run of another "
                    f"configuration or data ({_differences(old.get('config'), cfg.to_dict())}); "
                    f"it was left as it is. Rerun with --overwrite to keep it as a .replaced "
                    f"copy and start anew, or choose another --out")
        stamp = ckpt_dir / "resume_key"
        if stamp.exists() and stamp.read_text().strip() != key:
            raise RunExists(f"{ckpt_dir} holds checkpoints of another run (resume key "
                            f"{stamp.read_text().strip()} != {key}); delete that folder or use "
                            f"another --out")
        if log:
            log(settings_header(cfg, data, spec))
        kept = {}
        rec = _run(cfg, data, spec, out_dir, rec_path, ckpt_dir, stamp, key, dhash,
                   earlier_attempts(old), source_hash, save_predictions, kept)
        return (rec, kept.get("model")) if keep_model else rec


def shot_settings(data: DIRData) -> dict:
    """How the shots are drawn and how many training samples each has: the thresholds (or the
    dataset's fixed bin lists) and the per-bin training counts."""
    spec = data.shot_spec
    counts = data.binning.counts(data.shot_reference)
    bin_shot = data.bin_shots()
    out = {"rule": "fixed bin lists" if spec.lists else f"training samples per {spec.by}",
           "many_thr": spec.many_thr, "few_thr": spec.few_thr,
           "train_per_bin": [int(c) for c in counts],
           "train_per_shot": {s: int(counts[bin_shot == s].sum()) for s in ("many", "median", "few")}}
    return out


def settings_header(cfg: RunConfig, data: DIRData, spec) -> str:
    """The settings a run starts with, in one block: what a reader checks first."""
    sh = shot_settings(data)
    split = (data.info or {}).get("split")
    return "\n".join([
        f"run: {cfg.dataset} / {cfg.method}, seed {cfg.seed}",
        f"  encoder  {cfg.model or data.model} {dict((k, v) for k, v in cfg.model_kwargs.items())}",
        f"  loss     {spec.loss if spec.base_loss is None else 'the method own'}; main metric "
        f"{data.main_metric}",
        f"  optim    {cfg.optimizer} lr {cfg.lr:g} weight decay {cfg.weight_decay:g}, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs",
        f"  shots    {sh['rule']}: many > {sh['many_thr']}, few < {sh['few_thr']}; training "
        f"samples many {sh['train_per_shot']['many']}, median {sh['train_per_shot']['median']}, "
        f"few {sh['train_per_shot']['few']}",
        f"  splits   train {len(data.train_labels)}, val {len(data.val_labels)}, test "
        f"{len(data.test_labels)}" + (f"; {split}" if split else "")])


def _run(cfg, data, spec, out_dir, rec_path, ckpt_dir, stamp, key, dhash, attempts,
         source_hash=None, save_predictions=None, kept: Optional[dict] = None) -> dict:
    record = {"schema": "dirlib.run/1", "status": "running", "started": records.now(),
              "attempts": attempts,
              "config": cfg.to_dict(), "config_hash": records.stable_hash(cfg.to_dict()),
              "resume_key": key, "git": records.provenance(rec_path),
              "versions": records.versions(),
              "device": str(resolve_device(cfg.device)),
              "data": data.summary(), "data_checksums": data.info.get("checksums", {}),
              "data_hash": dhash, "method_info": spec.settings, "shots": shot_settings(data),
              # the split draw, the table and its columns: what data.summary() leaves out
              "data_provenance": {k: v for k, v in (data.info or {}).items()
                                  if k in ("split", "table", "target", "features", "sizes",
                                           "title", "source")},
              "loss_used": spec.loss if spec.base_loss is None else "the method's own"}
    if source_hash is not None:
        record["data_source_hash"] = source_hash
    others = other_code_attempts(attempts, record["git"])
    if others:
        import warnings
        record["resumed_under_other_code"] = True
        warnings.warn(f"{rec_path}: this run resumes {len(others)} attempt(s) made under other code "
                      f"(commit {others[-1]['git'].get('commit')}, dirty "
                      f"{others[-1]['git'].get('dirty')}); each attempt's code is in its "
                      f"record's attempts", stacklevel=2)
    records.write_json(rec_path, record)
    with recorded(record, rec_path):
        ckpt_dir.mkdir(exist_ok=True)
        stamp.write_text(key)
        if spec.phases is None:
            res = fit(cfg, data, spec, ckpt_path=ckpt_dir / "main.pt", run_key=key)
            model = res["model"]
            result = {"phases": {"main": strip_result(res)}, "final": "main"}
        else:
            def phase_done(progress):
                record.update(progress)
                records.write_json(rec_path, record)
            result = run_phases(spec.phases, cfg, data, spec, ckpt_dir, on_phase_end=phase_done,
                                run_key=key)
            model = result.pop("model", None)
        final = result["phases"][result["final"]]
        record.update(result)
        record["test"] = final["test"]
        record["val"] = final["val"]
        if model is not None:
            record["model_used"] = {"name": cfg.model or data.model,
                                    "architecture": repr(model),
                                    "parameters": int(sum(p.numel() for p in model.parameters()))}
        if save_predictions and model is not None:
            record["predictions"] = write_predictions(model, data, cfg, out_dir, save_predictions)
    if kept is not None and model is not None:
        kept["model"] = model.eval()
    return record


PREDICTION_FORMATS = ("csv", "parquet")


def prediction_rows(model, data: DIRData, cfg: RunConfig):
    """One row per validation and test sample: ``split, row, label, bin, shot, prediction``
    (``row``: the sample's row in its source table where the data knows it, else its index in the
    split), predicted by ``model`` as the run's evaluation predicts."""
    import pandas as pd
    from .train import evaluate
    device = resolve_device(cfg.device)
    frames = []
    rows = data.extra.get("row_ids") or {}
    for split in ("val", "test"):
        ev = evaluate(model, data, split, cfg, device)
        labels = np.asarray(ev["labels"], dtype=np.float64)
        ids = rows.get(split)
        if ids is None or len(ids) != len(labels):
            ids = np.arange(len(labels))
        frames.append(pd.DataFrame({
            "split": split, "row": np.asarray(ids, dtype=np.int64), "label": labels,
            "bin": data.binning.index(labels), "shot": data.shots(labels),
            "prediction": np.asarray(ev["pred"], dtype=np.float64).reshape(-1)}))
    return pd.concat(frames, ignore_index=True)


def write_predictions(model, data: DIRData, cfg: RunConfig, out_dir: Path, fmt: str) -> dict:
    """:func:`prediction_rows` as ``out_dir/predictions.<fmt>``; returns its entry for the record
    (file, rows, sha256)."""
    import hashlib
    if fmt not in PREDICTION_FORMATS:
        raise ValueError(f"--save-predictions must be one of {', '.join(PREDICTION_FORMATS)}, "
                         f"got {fmt!r}")
    df = prediction_rows(model, data, cfg)
    path = Path(out_dir) / f"predictions.{fmt}"
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        df.to_csv(tmp, index=False, float_format="%.9g")
    else:
        df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return {"file": path.name, "rows": int(len(df)),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "columns": list(df.columns)}
