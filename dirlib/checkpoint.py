"""Checkpoints that cannot run code, and whose corruption is caught.

* :func:`save` writes ``torch.save`` output to a temporary file beside ``path``, renames it over
  ``path`` and writes its sha256 to the sidecar ``path.sha256``.
* :func:`load` verifies the sidecar first, then loads with ``torch.load(weights_only=True)``: a
  pickle that would call anything but tensor and container constructors is refused. Numpy arrays
  (the RNG states of numpy generators) are stored as tagged tensors and come back as arrays.

Any problem raises :class:`CheckpointError`, naming the file and how to restart from scratch.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

_ND = "__ndarray__"


class CheckpointError(RuntimeError):
    """A checkpoint is missing its checksum, does not match it, or cannot be loaded safely."""


def sidecar(path) -> Path:
    return Path(str(path) + ".sha256")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _encode(o):
    if isinstance(o, np.ndarray):
        return {_ND: torch.from_numpy(np.ascontiguousarray(o).astype(np.int64 if o.dtype.kind in "ui"
                                                                      else np.float64)),
                "dtype": o.dtype.str}
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, dict):
        return {k: _encode(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_encode(v) for v in o]
    if isinstance(o, tuple):
        return tuple(_encode(v) for v in o)
    return o


def _decode(o):
    if isinstance(o, dict):
        if _ND in o and set(o) == {_ND, "dtype"}:
            return o[_ND].numpy().astype(np.dtype(o["dtype"]))
        return {k: _decode(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_decode(v) for v in o]
    if isinstance(o, tuple):
        return tuple(_decode(v) for v in o)
    return o


def save(obj, path) -> Path:
    """Write ``obj`` to ``path`` atomically, then its sha256 to ``path.sha256``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(_encode(obj), tmp)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    from .records import write_text_atomic
    write_text_atomic(sidecar(path), digest + "\n")
    return path


def restart_hint(path) -> str:
    return (f"To restart this run from scratch, rerun with --overwrite (the old record is kept "
            f"beside the new one) or delete {Path(path).parent}.")


def load(path, map_location="cpu"):
    """Verify ``path`` against its sidecar and load it without running any code."""
    path = Path(path)
    side = sidecar(path)
    if not side.exists():
        raise CheckpointError(f"checkpoint {path} has no checksum file {side.name}, so it cannot "
                              f"be verified. {restart_hint(path)}")
    want = side.read_text().strip()
    got = sha256_file(path)
    if got != want:
        raise CheckpointError(f"checkpoint {path} is corrupted: its sha256 {got[:16]} does not match "
                              f"{side.name} ({want[:16]}). {restart_hint(path)}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: it is not a readable "
                              f"checkpoint of tensors and plain containers ({type(e).__name__}), "
                              f"and dirlib unpickles nothing else. {restart_hint(path)}") from None
    return _decode(obj)
