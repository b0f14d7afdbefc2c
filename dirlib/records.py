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
from typing import Optional, Any

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


#: what a run's code is not: records and tables (a worktree that writes its records in place
#: stays clean)
CODE_EXCLUDES = (":(exclude)results",)


def git_commit(cwd=None) -> dict:
    cwd = cwd or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *CODE_EXCLUDES], cwd=cwd, capture_output=True, text=True,
                               timeout=10).stdout.strip() != ""
        # a new file of the package changes what runs as much as an edited one
        dirty = dirty or subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "--", "dirlib"], cwd=cwd,
            capture_output=True, text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    if os.environ.get("DIRLIB_SOURCE_COMMIT"):
        # a copy of the tree sent elsewhere (e.g. to a GPU machine) may carry no .git, or a stale
        # one: the sender names the commit, and what git said there is kept beside it
        return {"commit": os.environ["DIRLIB_SOURCE_COMMIT"], "dirty": None, "from_env": True,
                "git_reported": {"commit": commit, "dirty": dirty}}
    return {"commit": commit, "dirty": dirty}


def working_tree_diff(cwd=None) -> str:
    """The uncommitted changes of the checkout that holds this package, as a patch against HEAD:
    the tracked files' changes outside ``results/`` (``git diff HEAD --binary``) and every
    untracked, not ignored file of the package as a new file. ``git apply`` on a checkout of HEAD
    gives back the code that ran."""
    cwd = cwd or Path(__file__).resolve().parent.parent
    run = lambda *a: subprocess.run(["git", *a], cwd=cwd, capture_output=True, text=True,
                                    timeout=60)
    patch = run("diff", "HEAD", "--binary", "--", ".", *CODE_EXCLUDES).stdout
    for f in run("ls-files", "--others", "--exclude-standard", "-z", "--", "dirlib").stdout.split("\0"):
        if f:
            patch += run("diff", "--no-index", "--binary", "--", "/dev/null", f).stdout
    return patch


DIFF_NAME = "run.diff"


def provenance(rec_path, cwd=None) -> dict:
    """:func:`git_commit` for a record about to be written to ``rec_path``. From a dirty tree the
    diff against the commit is written beside the record (:data:`DIFF_NAME`) and its sha256 goes
    into the returned dict, so the record names the code that made it."""
    git = git_commit(cwd)
    if git.get("dirty"):
        patch = working_tree_diff(cwd)
        path = Path(rec_path).with_name(DIFF_NAME)
        write_text_atomic(path, patch)
        git["diff"] = DIFF_NAME
        git["diff_sha256"] = hashlib.sha256(patch.encode()).hexdigest()
    return git


def copy_record(src: Path, dst: Path) -> Path:
    """Copy the record file ``src`` to ``dst`` (atomically) with the diff it was made with, if any;
    a diff left at ``dst`` from another record is removed, so a copy never names the wrong code."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    diff, old_diff = src.with_name(DIFF_NAME), dst.with_name(DIFF_NAME)
    if diff.exists():
        write_text_atomic(old_diff, diff.read_text())
    elif old_diff.exists():
        old_diff.unlink()
    return write_text_atomic(dst, src.read_text())


def diff_path(rec_path, rec: dict) -> Optional[Path]:
    """Where the diff of the record at ``rec_path`` is: ``git.diff`` beside ``run.json``; beside a
    set-aside record (``run.replaced-<time>.json``), the diff set aside with it
    (``run.replaced-<time>.diff``). None when the record names no diff."""
    name = (rec.get("git") or {}).get("diff")
    if not name:
        return None
    rec_path = Path(rec_path)
    own = rec_path.with_suffix(".diff")
    if rec_path.name != "run.json" and name == DIFF_NAME and own.exists():
        return own
    return rec_path.with_name(name)


def provenance_problem(rec_path, rec: dict):
    """Why ``rec`` (read from ``rec_path``) does not say which code made it, or None:

    * ``"dirty"``: written from a dirty tree before diffs were stored (no ``git.diff``);
    * a message: it names a diff that is missing or does not match its hash."""
    git = rec.get("git") or {}
    if not git.get("dirty"):
        return None
    if not git.get("diff"):
        return "dirty"
    path = diff_path(rec_path, rec)
    if not path.exists():
        return f"written from a dirty tree, and its diff {path} is missing"
    if hashlib.sha256(path.read_bytes()).hexdigest() != git.get("diff_sha256"):
        return f"written from a dirty tree, and its diff {path} does not match the record's hash"
    return None


def cpu_identity() -> dict:
    """The CPU's model name and a hash of its feature flags (``/proc/cpuinfo``): float kernels are
    chosen by those flags, so CPU runs repeat bit for bit only where both are the same."""
    model, flags = platform.processor() or None, ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "model name" and not model:
                model = val.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(val.split()))
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": hashlib.sha256(flags.encode()).hexdigest()[:12]
            if flags else None}


def versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(), **cpu_identity()}
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


# ----------------------------------------------------------------------------------- run identity
#: config keys that never change what a run computes: a rerun that differs only in them is the same
#: run (``device`` counts by the device it resolves to, see :func:`dirlib.experiment.resume_key`)
COSMETIC_KEYS = ("progress",)


def data_hash(data) -> str:
    """The hash of what a run trained and was evaluated on.

    Built-in datasets carry their files' checksums (``data.info["checksums"]``), and the hash is
    theirs. Anything else (a :class:`~dirlib.data.base.DIRData` built from arrays, the synthetic
    generator) is hashed from its summary, its three label arrays and, where the split datasets hold
    tensors (``.x``) or arrays, their shapes and bytes: other labels or other inputs give another
    hash."""
    checksums = (data.info or {}).get("checksums") or {}
    if checksums:
        return stable_hash(checksums)
    h = hashlib.sha256(json.dumps(to_jsonable(data.summary()), sort_keys=True).encode())
    for name in ("train_labels", "val_labels", "test_labels"):
        a = np.ascontiguousarray(np.asarray(getattr(data, name), dtype=np.float64))
        h.update(name.encode() + str(a.shape).encode() + a.tobytes())
    for name in ("train", "val", "test"):
        x = getattr(getattr(data, name), "x", None)
        if x is None:
            h.update(f"{name}:{type(getattr(data, name)).__name__}:{len(getattr(data, name))}".encode())
            continue
        try:
            import torch
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().contiguous().numpy()
        except ImportError:  # pragma: no cover
            pass
        x = np.ascontiguousarray(np.asarray(x))
        h.update(f"{name}:{x.dtype.str}:{x.shape}".encode() + x.tobytes())
    return h.hexdigest()[:16]


class RunLocked(RuntimeError):
    """Another process holds the run folder."""


def wait_unlocked(folder) -> None:
    """Block until no process holds ``folder``'s :class:`RunLock`; return at once when none does."""
    import fcntl
    path = Path(folder) / ".lock"
    if not path.exists():
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)     # waits for the holder to finish
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class RunLock:
    """One process per run folder: an exclusive ``flock`` on ``FOLDER/.lock``, which holds the
    holder's pid. A second process gets :class:`RunLocked` naming that pid."""

    def __init__(self, folder):
        self.path = Path(folder) / ".lock"
        self._f = None

    def __enter__(self):
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunLocked(f"{self.path.parent} is in use by process {holder} (lock file "
                            f"{self.path}); wait for it to finish or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc):
        import fcntl
        if self._f is not None:
            self._f.seek(0)
            self._f.truncate()
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None
        return False
