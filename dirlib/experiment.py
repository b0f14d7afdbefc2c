"""Run an experiment end to end and write its run record (``OUT/run.json``).

The record is written with status ``running`` before training, updated after every phase, and
finished as ``completed`` or ``failed`` (with the error message): a crash never loses the record.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Optional

from . import records
from .data import load_dataset
from .data.base import DIRData
from .methods import build_method
from .train import RunConfig, fit, resolve_device


def load_for_config(cfg: RunConfig, data_dir=None, subset: bool = True) -> DIRData:
    kwargs = dict(cfg.data_kwargs)
    if cfg.dataset in ("utkface-dir", "agedb-dir", "imdb-wiki-dir"):
        kwargs.setdefault("img_size", cfg.img_size)
    data = load_dataset(cfg.dataset, data_dir=data_dir, **kwargs)
    return apply_subset(cfg, data) if subset else data


def apply_subset(cfg: RunConfig, data: DIRData) -> DIRData:
    if cfg.subset_train is None and cfg.subset_eval is None:
        return data
    return data.subset(cfg.subset_train, cfg.subset_eval, seed=cfg.seed)


def strip_result(res: dict) -> dict:
    return {k: v for k, v in res.items() if k != "model"}


def run_experiment(cfg: RunConfig, out_dir, data_dir=None, data: Optional[DIRData] = None,
                   resume: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_path = out_dir / "run.json"
    t0 = time.time()
    record = {"schema": "dirlib.run/1", "status": "running", "started": records.now(),
              "config": cfg.to_dict(), "config_hash": records.stable_hash(cfg.to_dict()),
              "git": records.git_commit(), "versions": records.versions(),
              "device": str(resolve_device(cfg.device))}
    records.write_json(rec_path, record)
    try:
        if data is None:
            data = load_for_config(cfg, data_dir)
        else:
            data = apply_subset(cfg, data)
        record["data"] = data.summary()
        record["data_checksums"] = data.info.get("checksums", {})
        record["data_hash"] = records.stable_hash(record["data_checksums"] or record["data"])
        spec, runner = build_method(cfg, data)
        record["method_info"] = spec.info
        records.write_json(rec_path, record)
        ckpt_dir = out_dir / "ckpt"
        ckpt_dir.mkdir(exist_ok=True)
        stamp = ckpt_dir / "config_hash"
        if stamp.exists() and stamp.read_text().strip() != record["config_hash"]:
            raise RuntimeError(
                f"{ckpt_dir} holds checkpoints of a different configuration (hash "
                f"{stamp.read_text().strip()} != {record['config_hash']}); use another --out or "
                f"delete that folder")
        stamp.write_text(record["config_hash"])
        if runner is None:
            res = fit(cfg, data, spec, ckpt_path=ckpt_dir / "main.pt")
            result = {"phases": {"main": strip_result(res)}, "final": "main"}
        else:
            result = runner(cfg, data, spec, ckpt_dir, record=record, rec_path=rec_path)
        final = result["phases"][result["final"]]
        record.update(result)
        record["test"] = final["test"]
        record["val"] = final["val"]
        record["status"] = "completed"
    except BaseException as e:  # keep the record, mark it failed, re-raise
        record["status"] = "failed"
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = traceback.format_exc(limit=8)
        raise
    finally:
        record["wall_time_s"] = time.time() - t0
        record["finished"] = records.now()
        records.write_json(rec_path, record)
    return record
