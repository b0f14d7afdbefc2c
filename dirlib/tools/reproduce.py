"""Rerun a stored record with the code that made it, and compare every metric.

::

    python -m dirlib results reproduce results/runs/sts-b-dir/vanilla/seed0/run.json

The record's commit is exported from this repository's history into a scratch folder (``git
archive``), its stored diff is applied when it was written from a dirty tree (``run.diff`` beside
it, checked against the record's hash), and the run is made again there, in a fresh process that
imports that code. A post-hoc record reproduces its base run first, then itself.

Every number of the ``test`` and ``val`` blocks is compared. A CPU run repeats bit for bit on a CPU
with the same feature flags (the record's ``versions.cpu_flags``): there the comparison is exact.
Elsewhere (another CPU's float kernels, a GPU) training drifts in the last bits and the drift grows
over the epochs, so the comparison is to ``rtol`` and the report gives the largest relative
difference. A record that is dirty without its diff cannot be reproduced and is refused by name.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import records

_RUN = """
import json, sys
from dirlib.train import RunConfig
from dirlib.experiment import run_experiment
cfg = json.loads(sys.argv[1])
cfg["lr_milestones"] = tuple(cfg.get("lr_milestones") or ())
run_experiment(RunConfig(**cfg), sys.argv[2], data_dir=sys.argv[3] or None)
"""
_POSTHOC = """
import json, sys
try:                # the record's own code: the post-hoc module moved into dirlib.paper
    from dirlib.paper.posthoc import PosthocConfig, run_posthoc
except ImportError:
    from dirlib.posthoc import PosthocConfig, run_posthoc
pc = json.loads(sys.argv[1])
run_posthoc(sys.argv[2], pc["variant"], sys.argv[3], data_dir=sys.argv[4] or None,
            config=PosthocConfig(**pc), log=lambda m: None)
"""


class ReproduceError(RuntimeError):
    """The record cannot be rerun as it was made."""


def _git(repo, *args, **kw):
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False, **kw)


def export_source(rec: dict, rec_path: Path, dest: Path, repo=None) -> Path:
    """The code that wrote ``rec``: its commit exported to ``dest``, with its diff applied."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    git = rec.get("git") or {}
    commit = git.get("commit")
    if not commit:
        raise ReproduceError(f"{rec_path}: the record names no commit")
    why = records.provenance_problem(rec_path, rec)
    if why == "dirty":
        raise ReproduceError(f"{rec_path}: written from a dirty tree before diffs were stored; the "
                             f"code that ran is not known, so it cannot be reproduced")
    if why:
        raise ReproduceError(f"{rec_path}: {why}")
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise ReproduceError(f"{rec_path}: commit {commit} is not in this repository's history "
                             f"(a shallow clone? git fetch --unshallow)")
    dest.mkdir(parents=True, exist_ok=True)
    archive = _git(repo, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise ReproduceError(f"git archive {commit} failed: {archive.stderr.decode()[:200]}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    if git.get("diff"):
        patch = records.diff_path(rec_path, rec)
        r = subprocess.run(["git", "apply", "--whitespace=nowarn", str(patch.resolve())],
                           cwd=dest, capture_output=True, text=True)
        if r.returncode != 0:
            raise ReproduceError(f"{patch} does not apply to {commit}: {r.stderr[:300]}")
    return dest


def _python(src: Path, script: str, *args) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("DIRLIB_SOURCE_COMMIT", None)
    r = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=src, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ReproduceError(f"the rerun failed:\n{r.stderr[-2000:]}")


def _same(v, w, exact: bool, rtol: float) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v is None:
        return v == w
    if not isinstance(w, (int, float)):
        return False
    if exact:
        return v == w or (math.isnan(v) and math.isnan(w))
    return math.isclose(v, w, rel_tol=rtol, abs_tol=1e-12)


def compare(old: dict, new: dict, exact: bool, rtol: float = 1e-6) -> list:
    """``(block, shot, metric, old, new, equal)`` for every number of the ``test`` and ``val``
    blocks, then of the final phase's per-label test errors (``test_per_label``, one row per bin
    and metric), and the data hash (``data``, a change named as such)."""
    rows = []
    for block in ("test", "val"):
        for shot, m in (old.get(block) or {}).items():
            for k, v in (m or {}).items():
                w = ((new.get(block) or {}).get(shot) or {}).get(k)
                rows.append((block, shot, k, v, w, _same(v, w, exact, rtol)))

    def per_label(rec):
        ph = (rec.get("phases") or {}).get(rec.get("final") or "main") or {}
        return {r["bin"]: r for r in ph.get("test_per_label") or []}
    a, b = per_label(old), per_label(new)
    for bin_, r in a.items():
        for k in ("n", "mae", "mse"):
            w = (b.get(bin_) or {}).get(k)
            rows.append(("test_per_label", f"bin {bin_}", k, r.get(k), w,
                         _same(r.get(k), w, exact, rtol)))
    if old.get("data_hash") is not None:
        rows.append(("data", "hash", "the data changed" if old.get("data_hash") != new.get("data_hash")
                     else "data_hash", old.get("data_hash"), new.get("data_hash"),
                     old.get("data_hash") == new.get("data_hash")))
    return rows


SCHEMAS = ("dirlib.run/1", "dirlib.posthoc/1")


def diff_summary(patch: str) -> str:
    """The files a patch changes and its size, for the reader to judge before it runs.

    >>> diff_summary("diff --git a/dirlib/x.py b/dirlib/x.py\\n+a\\n-b\\n")
    '1 file (dirlib/x.py), 3 lines'
    """
    files = [ln.split(" b/", 1)[-1] for ln in patch.splitlines() if ln.startswith("diff --git ")]
    n = len(patch.splitlines())
    return (f"{len(files)} file{'s' if len(files) != 1 else ''} ({', '.join(files)}), "
            f"{n} lines")


def _read_record(rec_path: Path) -> dict:
    try:
        rec = records.read_json(rec_path)
    except (ValueError, OSError) as e:
        raise ReproduceError(f"{rec_path} is not a run record ({type(e).__name__}: {e})") from None
    if not isinstance(rec, dict) or rec.get("schema") not in SCHEMAS:
        got = rec.get("schema") if isinstance(rec, dict) else type(rec).__name__
        raise ReproduceError(f"{rec_path} is not a run record of a known schema ({got!r}; "
                             f"known: {', '.join(SCHEMAS)})")
    if rec.get("schema") == "dirlib.run/1" and isinstance(rec.get("config"), dict) and \
            records.stable_hash(rec["config"]) != rec.get("config_hash"):
        raise ReproduceError(f"{rec_path}: its config does not match its config_hash (edited "
                             f"after the run?); it is not rerun")
    return rec


def _diffs_to_run(rec: dict, rec_path: Path) -> list:
    """``(path, summary)`` of every stored diff that reproducing ``rec`` would apply and run."""
    out = []
    pairs = [(rec, rec_path)]
    if rec.get("schema") == "dirlib.posthoc/1":
        bp = (rec_path.parent / rec["base"]["path"] / "run.json").resolve()
        if bp.exists():
            pairs.append((records.read_json(bp), bp))
    for r, p in pairs:
        patch = records.diff_path(p, r)
        if patch is not None and patch.exists():
            out.append((patch, diff_summary(patch.read_text())))
    return out


def reproduce(rec_path, *, data_dir=None, rtol: float = 1e-6, repo=None, keep=None,
              run_diffs: bool = False) -> dict:
    """Rerun the record at ``rec_path`` with its own code; returns ``{"exact", "rows", "ok",
    "record"}`` (the new record). ``keep``: a folder to keep the scratch tree and runs in.

    This runs the code the record names: its commit, and its stored diff when it was written from
    a dirty tree. A diff is code that is not in the history, so it runs only with ``run_diffs``
    (``--yes``); without it the diffs' files and sizes are shown and nothing runs (S6)."""
    rec_path = Path(rec_path).resolve()
    rec = _read_record(rec_path)
    if rec.get("status") != "completed":
        raise ReproduceError(f"{rec_path} is {rec.get('status')!r}, not completed")
    diffs = _diffs_to_run(rec, rec_path)
    if diffs and not run_diffs:
        raise ReproduceError(
            "reproducing this record runs code from its stored diff(s), which are not in the "
            "repository's history: " + "; ".join(f"{p} ({s})" for p, s in diffs)
            + ". Read them, then rerun with --yes to run them")
    data_dir = data_dir or os.environ.get("DIRLIB_DATA") or ""
    scratch = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="dirlib-reproduce-"))
    try:
        if rec.get("schema") == "dirlib.posthoc/1":
            base_path = (rec_path.parent / rec["base"]["path"] / "run.json").resolve()
            base = records.read_json(base_path)
            src = export_source(rec, rec_path, scratch / "src", repo)
            base_src = src if (base.get("git") or {}).get("commit") == rec["git"]["commit"] \
                and not base["git"].get("dirty") else export_source(base, base_path,
                                                                    scratch / "base-src", repo)
            _python(base_src, _RUN, json.dumps(base["config"]), scratch / "base", data_dir)
            _python(src, _POSTHOC, json.dumps(rec["posthoc"]), scratch / "base",
                    scratch / "posthoc", data_dir)
            new = records.read_json(scratch / "posthoc" / "run.json")
        else:
            src = export_source(rec, rec_path, scratch / "src", repo)
            _python(src, _RUN, json.dumps(rec["config"]), scratch / "run", data_dir)
            new = records.read_json(scratch / "run" / "run.json")
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    here = records.cpu_identity()["cpu_flags"]
    exact = (str(rec.get("device", "")).startswith("cpu") and here is not None
             and (rec.get("versions") or {}).get("cpu_flags") == here)
    rows = compare(rec, new, exact, rtol)
    return {"exact": exact, "rows": rows, "ok": all(r[-1] for r in rows), "record": new,
            "max_rel_diff": max_relative_difference(rows)}


def max_relative_difference(rows) -> float:
    """The largest ``|new - old| / |old|`` over the numeric rows of :func:`compare`."""
    out = 0.0
    for *_, v, w, _same in rows:
        if isinstance(v, (int, float)) and isinstance(w, (int, float)) and not isinstance(v, bool) \
                and v == v and w == w and v != 0:
            out = max(out, abs(w - v) / abs(v))
    return out


def report(result: dict) -> str:
    """The comparison as text: the test errors per shot (stored and rerun) and every number that
    differs, then a verdict."""
    rows = result["rows"]
    how = ("bit for bit (a CPU run on a CPU with the same feature flags)" if result["exact"]
           else "to the stated tolerance (another CPU or a GPU: not bit for bit)")
    lines = [f"{b}[{s}][{k}]: stored {v!r}, rerun {w!r}{'' if same else '  DIFFERS'}"
             for b, s, k, v, w, same in rows
             if not same or (b == "test" and k in ("mse", "mae"))]
    lines.append(f"largest relative difference: {result.get('max_rel_diff', 0.0):.2e}")
    lines.append(f"{sum(r[-1] for r in rows)} of {len(rows)} numbers reproduced {how}: "
                 + ("REPRODUCED" if result["ok"] else "NOT REPRODUCED"))
    return "\n".join(lines)
