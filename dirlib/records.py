"""Run records: one JSON per run with its provenance, written atomically.

A record holds the full config and its hash, the data checksums and their hash, seed, git commit,
library versions, device, date, status (``running`` / ``completed`` / ``failed``), metrics and
diagnostics. ``write_json`` writes to a temporary file in the same directory and renames it, so a
crash never leaves a truncated record.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _default(o: Any):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    try:
        import torch
        if isinstance(o, torch.Tensor):
            return o.detach().cpu().tolist()
    except ImportError:  # pragma: no cover
        pass
    return repr(o)


def _clean(o):
    """NaN/inf -> None so the JSON stays standard (``null``)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def to_jsonable(o):
    return _clean(json.loads(json.dumps(o, default=_default)))


def write_json(path, obj) -> Path:
    return write_text_atomic(path, json.dumps(to_jsonable(obj), indent=1, sort_keys=False))


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to a temporary file in ``path``'s folder, fsync it and rename it over ``path``:
    a reader (or a crash) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def stable_hash(obj) -> str:
    """sha256 (first 16 hex) of the canonical JSON of ``obj``."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit(cwd=None) -> dict:
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    if os.environ.get("DIRLIB_SOURCE_COMMIT"):
        # a copy of the tree sent elsewhere (e.g. to a GPU machine) may carry no .git, or a stale
        # one: the sender names the commit, and what git said there is kept beside it
        return {"commit": os.environ["DIRLIB_SOURCE_COMMIT"], "dirty": None, "from_env": True,
                "git_reported": {"commit": commit, "dirty": dirty}}
    return {"commit": commit, "dirty": dirty}


def versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for mod in ("torch", "torchvision", "numpy", "scipy", "sklearn", "pandas"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    from . import __version__
    out["dirlib"] = __version__
    try:
        import torch
        out["torch_threads"] = torch.get_num_threads()
        out["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["cuda_device"] = torch.cuda.get_device_name()
    except ImportError:  # pragma: no cover
        pass
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
