"""The results store: run records in, tables out.

* :func:`load_records` reads every ``**/run.json`` under a results folder (records written by
  :mod:`dirlib.experiment` / :mod:`dirlib.records`) and filters them by dataset, method, status or
  any other config key. Records under an ``audit/``, ``confirmatory/`` or ``benchmark/`` folder
  (:data:`SEPARATE_FOLDERS`) are not read.
* :func:`summary_table` aggregates records into mean and standard deviation over seeds, one row per
  method x shot. It refuses (``ValueError``) to mix records that are not comparable: different data
  (``data_hash``), or configs that differ in anything but the seed and the run-time-only keys in
  :data:`RUNTIME_KEYS`. Only ``status == "completed"`` records count; the others are named in a
  warning.
* :func:`write_table` writes a table as CSV atomically (temporary file + rename).
* :func:`paper_table` reads the paper's Tables 1-3 from ``results/paper_tables.csv``.
* ``python -m dirlib results tables --results results/ --out results/tables/`` regenerates every
  table (:func:`regenerate_tables`).

Choices: the standard deviation is the sample one (``ddof=1``) over seeds, NaN for a single seed
(undefined, not zero); a metric that is ``null`` in a record (NaN, e.g. a shot with no test sample)
makes that cell's mean NaN (no silent ``nanmean``); two completed records with the same config and
the same seed are an error (a copied run would otherwise count twice).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..datasets import find as find_dataset

SHOTS_ALL = ("all", "many", "median", "few")
#: config keys that do not change what a run computes (ignored when checking comparability)
RUNTIME_KEYS = ("seed", "progress", "device", "num_workers",
                "encoder_weights")   # a user encoder seeded per seed starts from other weights
#: the metrics each dataset's table reports (the paper's Tables 1-3); others: MAE and GM

PAPER_TABLES = Path(__file__).resolve().parents[2] / "results" / "paper_tables.csv"
def table_metrics(dataset: str) -> tuple:
    """The metrics a dataset's table reports (its file's ``TABLE_METRICS``: MSE and Pearson on
    STS-B-DIR, as the paper's Table 3; MAE and GM otherwise)."""
    info = find_dataset(dataset)
    return info.table_metrics if info is not None else ("mae", "gm")


#: sub-folders of a results folder that hold other kinds of records (the gains audit's base runs and
#: post-hoc arms, ``dirlib.paper.audit``; the confirmatory test's, ``dirlib.paper.confirmatory``;
#: the tuned benchmark's trials and seeds, ``dirlib.tools.benchmark``): left out of the defaults
#: tables unless the folder is named itself
SEPARATE_FOLDERS = ("audit", "reproduce-check", "confirmatory", "benchmark")
INDEX_COLUMNS = ["table", "dataset", "n_records", "n_methods", "methods", "seeds", "data_hash", "file"]


# ----------------------------------------------------------------------------------- reading
#: the record formats this version reads
KNOWN_SCHEMAS = ("dirlib.run/1", "dirlib.posthoc/1")


class RecordError(ValueError):
    """Run records that cannot be trusted: unreadable, or edited after they were written."""


def record_problem(path, rec) -> Optional[str]:
    """Why the record ``rec`` read from ``path`` cannot be trusted, or None: not a run record, or a
    ``config_hash`` that is not the hash of its ``config`` (a post-hoc record: of its post-hoc config
    and its base's hash), i.e. a config edited by hand."""
    from ..records import stable_hash
    if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
        return "not a run record (no 'config' object)"
    from ..records import provenance_problem
    why = provenance_problem(path, rec)
    if why and why != "dirty":
        return why
    if rec.get("schema") not in KNOWN_SCHEMAS:
        return (f"unknown record schema {rec.get('schema')!r} (this dirlib reads "
                f"{', '.join(KNOWN_SCHEMAS)}): written by another version of dirlib?")
    if rec.get("schema") == "dirlib.posthoc/1":
        try:
            want = stable_hash({"posthoc": rec["posthoc"], "base": rec["base"]["config_hash"]})
        except (KeyError, TypeError):
            return "a post-hoc record without its posthoc / base blocks"
    else:
        want = stable_hash(rec["config"])
    if rec.get("config_hash") != want:
        return (f"its config_hash {rec.get('config_hash')} is not the hash of its config ({want}): "
                f"the config was edited after the run")
    return None


def read_records(paths, strict: bool = False) -> list:
    """``(path, record)`` for each file that can be trusted (:func:`record_problem`). The others are
    named, all of them, in one warning (or, ``strict``, one :class:`RecordError`) and left out."""
    good, bad = [], []
    for path in paths:
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            bad.append(f"{path}: unreadable ({type(e).__name__}: {e})")
            continue
        why = record_problem(path, rec)
        if why:
            bad.append(f"{path}: {why}")
            continue
        good.append((path, rec))
    if bad:
        msg = f"{len(bad)} run record(s) refused:\n  " + "\n  ".join(bad)
        if strict:
            raise RecordError(msg)
        warnings.warn(msg, stacklevel=3)
    return good


def load_records(results_dir, dataset: Optional[str] = None,
                 method: Union[None, str, Iterable[str]] = None, status: Optional[str] = None,
                 strict: bool = False, **where) -> list:
    """Every run record (``**/run.json``) under ``results_dir``, sorted by path.

    Filters (all optional): ``dataset`` (``config["dataset"]``), ``method`` (one name or several),
    ``status`` (``"completed"``, ``"failed"``, ``"running"``) and ``**where`` for any other config
    key (``epochs=90``, ``seed=0`` ...; a record without that key does not match). Each returned
    record gets ``"_path"`` (the file it came from). A missing folder is an error; a folder without
    records gives ``[]``. Records that cannot be trusted (:func:`record_problem`: unreadable, or a
    config edited after the run) are left out and named in a warning (``strict``: an error).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {str(root)!r} does not exist")
    methods = None
    if method is not None:
        methods = {method} if isinstance(method, str) else set(method)
    out = []
    paths = [p for p in sorted(root.rglob("run.json"))
             if not any(part in SEPARATE_FOLDERS for part in p.relative_to(root).parts[:-1])]
    for path, rec in read_records(paths, strict=strict):
        cfg = rec["config"]
        if dataset is not None and cfg.get("dataset") != dataset:
            continue
        if methods is not None and cfg.get("method") not in methods:
            continue
        if status is not None and rec.get("status") != status:
            continue
        if any(k not in cfg or cfg[k] != v for k, v in where.items()):
            continue
        rec["_path"] = str(path)
        out.append(rec)
    return out


def comparable_config(config: dict) -> dict:
    """``config`` without the keys that may differ between seeds of one experiment, in its JSON form
    (a tuple and a list of the same values are the same setting)."""
    from ..records import to_jsonable
    return {k: v for k, v in to_jsonable(config).items() if k not in RUNTIME_KEYS}


#: config keys that define a *method* rather than the protocol it is run under
METHOD_KEYS = ("method", "method_kwargs", "loss", "seed")


def protocol_key(config: dict) -> str:
    """Hash of the config without the method-level and run-time keys: the experimental protocol
    (dataset, epochs, image size, model ...) that runs of different methods share."""
    from ..records import stable_hash
    return stable_hash({k: v for k, v in comparable_config(config).items() if k not in METHOD_KEYS})


def run_key(config: dict) -> tuple:
    """What makes one run of a protocol: the method, its base loss and its method arguments."""
    return (config.get("method"), config.get("loss"),
            tuple(sorted((config.get("method_kwargs") or {}).items())))


def main_protocol(keyed_records: Iterable[Tuple[object, dict]]) -> Optional[str]:
    """The :func:`protocol_key` that a page or table should show, from ``(run, record)`` pairs
    (``run``: any hashable naming what the record is a run of, e.g. :func:`run_key` or a figure
    label): the protocol with the most distinct runs, then the most records, then the latest
    ``finished``. ``None`` for no records."""
    runs, n, last = {}, {}, {}
    for key, r in keyed_records:
        pk = protocol_key(r["config"])
        runs.setdefault(pk, set()).add(key)
        n[pk] = n.get(pk, 0) + 1
        last[pk] = max(last.get(pk, ""), str(r.get("finished") or ""))
    return max(runs, key=lambda k: (len(runs[k]), n[k], last[k]), default=None)


def _name(rec: dict) -> str:
    return rec.get("_path") or f"config_hash {rec.get('config_hash')}"


def _config_hash(rec: dict) -> str:
    if rec.get("config_hash"):
        return str(rec["config_hash"])
    from ..records import stable_hash
    return stable_hash(rec["config"])


def completed(records: Sequence[dict], warn: bool = True) -> list:
    """The records with ``status == "completed"``; the others are named in a warning."""
    done = [r for r in records if r.get("status") == "completed"]
    skipped = [r for r in records if r.get("status") != "completed"]
    if skipped and warn:
        warnings.warn(f"{len(skipped)} run record(s) not completed, left out: " + "; ".join(
            f"{_name(r)} (status {r.get('status')!r})" for r in skipped), stacklevel=3)
    return done


def check_comparable(records: Sequence[dict]) -> None:
    """Raise ``ValueError`` unless all ``records`` share one ``data_hash`` and, per method, one config
    up to :data:`RUNTIME_KEYS` and no seed twice."""
    if not records:
        return
    first = records[0]

    def data_of(r):
        # seeds of a subset run draw their own subsets of one data set (recorded as its source)
        return r.get("data_source_hash") or r.get("data_hash")

    for r in records:
        if not r.get("data_hash"):
            raise ValueError(f"run record {_name(r)} has no data_hash; cannot check it used the same data")
        if data_of(r) != data_of(first):
            raise ValueError(
                f"refusing to aggregate runs on different data: data_hash {data_of(first)} "
                f"({_name(first)}) != {data_of(r)} ({_name(r)})")
    by_method = {}
    for r in records:
        by_method.setdefault(setting_label(r["config"]), []).append(r)
    for method, recs in by_method.items():
        ref = recs[0]
        ref_cfg = comparable_config(ref["config"])
        seen = {}
        for r in recs:
            cfg = comparable_config(r["config"])
            if cfg != ref_cfg:
                keys = sorted(k for k in set(cfg) | set(ref_cfg) if cfg.get(k, "<absent>") !=
                              ref_cfg.get(k, "<absent>"))
                diff = ", ".join(f"{k}: {ref_cfg.get(k, '<absent>')!r} vs {cfg.get(k, '<absent>')!r}"
                                 for k in keys)
                raise ValueError(
                    f"refusing to aggregate method {method!r}: config_hash {_config_hash(ref)} "
                    f"({_name(ref)}) and config_hash {_config_hash(r)} ({_name(r)}) differ in more "
                    f"than the seed: {diff}")
            seed = r["config"].get("seed")
            if seed in seen:
                raise ValueError(f"method {method!r}: seed {seed} appears twice ({_name(seen[seed])} "
                                 f"and {_name(r)}); a run must count once")
            seen[seed] = r


def _metric(rec: dict, split: str, shot: str, metric: str) -> float:
    try:
        block = rec[split][shot]
    except (KeyError, TypeError):
        raise ValueError(f"run record {_name(rec)} has no {split}[{shot!r}] block") from None
    if metric not in block:
        raise ValueError(f"metric {metric!r} is not in {split}[{shot!r}] of {_name(rec)} "
                         f"(it has: {', '.join(sorted(block))})")
    v = block[metric]
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"run record {_name(rec)}: {split}[{shot!r}][{metric!r}] is {v!r}, not a "
                         f"number")
    return float(v)


def setting_label(config: dict) -> str:
    """What one row of a table is: the method, with its method arguments and base loss when the
    run gives them (``frobenius [frobenius.beta=0.01]``), so that two settings of one method sit
    in one table as two rows."""
    extra = [f"{k}={v}" for k, v in sorted((config.get("method_kwargs") or {}).items())]
    if config.get("loss"):
        extra.append(f"loss={config['loss']}")
    return config.get("method") + (f" [{', '.join(extra)}]" if extra else "")


def summary_table(records: Sequence[dict], metrics: Sequence[str] = ("mae", "gm"),
                  split: str = "test", shots: Sequence[str] = SHOTS_ALL) -> pd.DataFrame:
    """Mean and sample std over seeds, one row per setting (:func:`setting_label`) x shot.

    Columns: ``dataset, method, shot, n_seeds, seeds, n`` (samples in that shot of the split) then
    ``<metric>_mean, <metric>_std`` for each metric. Methods are sorted by name, shots in the order
    given. Raises ``ValueError`` for non-comparable records (:func:`check_comparable`).
    """
    metrics = tuple(metrics)
    cols = ["dataset", "method", "shot", "n_seeds", "seeds", "n"] + [
        f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    recs = completed(records)
    if not recs:
        return pd.DataFrame(columns=cols)
    check_comparable(recs)
    by_method = {}
    for r in recs:
        by_method.setdefault(setting_label(r["config"]), []).append(r)
    rows = []
    for method in sorted(by_method):
        group = sorted(by_method[method], key=lambda r: r["config"].get("seed"))
        seeds = [r["config"].get("seed") for r in group]
        for shot in shots:
            row = {"dataset": group[0]["config"].get("dataset"), "method": method, "shot": shot,
                   "n_seeds": len(group), "seeds": ",".join(str(s) for s in seeds),
                   "n": _n(group[0], split, shot)}
            for m in metrics:
                vals = np.array([_metric(r, split, shot, m) for r in group], dtype=np.float64)
                row[f"{m}_mean"] = float(vals.mean())
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _n(rec, split, shot):
    v = (rec.get(split) or {}).get(shot, {}).get("n")
    return None if v is None else int(v)


def format_table(df: pd.DataFrame, metrics: Optional[Sequence[str]] = None, digits: int = 2
                 ) -> pd.DataFrame:
    """A display table: rows = methods, columns = (metric, shot), cells ``"mean ± std"`` (just the mean
    for a single seed)."""
    if metrics is None:
        metrics = [c[:-5] for c in df.columns if c.endswith("_mean")]
    out = {}
    for m in metrics:
        for _, r in df.iterrows():
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            cell = f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")
            out.setdefault((m.upper() if m != "pearson" else "Pearson", r["shot"]), {})[r["method"]] = cell
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------------- writing
def write_table(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as CSV (no index, floats with 10 significant digits) atomically: a temporary file
    in the same folder renamed over ``path``, so a reader never sees half a table."""
    from ..records import write_text_atomic
    return write_text_atomic(path, df.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def table_stem(dataset) -> str:
    """A file name for ``dataset``'s table, from the dataset as a record names it: its file stem
    for a path (``/abs/d.toml`` -> ``d``), every character outside ``[A-Za-z0-9._-]`` replaced by
    ``-``. Never a path: a record cannot choose where a table is written (S3).

    >>> table_stem("sts-b-dir"), table_stem("/abs/fair.toml"), table_stem("../../etc/passwd")
    ('sts-b-dir', 'fair', 'passwd')
    >>> table_stem("..")
    'dataset'
    """
    import re
    name = str(dataset).replace("\\", "/").rstrip("/").split("/")[-1]
    for ext in (".toml", ".csv", ".parquet", ".tsv", ".json"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip(".")
    return name or "dataset"


def _inside(out_dir: Path, fname: str) -> Path:
    path = (out_dir / fname).resolve()
    if path.parent != out_dir.resolve():
        raise ValueError(f"table file {fname!r} would leave --out {out_dir}")
    return path


def markdown_summary(table: pd.DataFrame) -> str:
    """A summary table (:func:`summary_table`'s CSV) as Markdown: one row per method, one column
    per shot with ``mean ± sd`` of the main metric over seeds and the shot's test count.

    >>> t = pd.DataFrame({"method": ["a", "a"], "shot": ["all", "few"], "n_seeds": [3, 3],
    ...                   "n": [100, 16], "mae_mean": [2.0, 5.5], "mae_std": [0.1, 0.4]})
    >>> print(markdown_summary(t))
    | method | all | few | seeds |
    |---|---|---|---|
    | a | 2.000 ± 0.100 (n=100) | 5.500 ± 0.400 (n=16) | 3 |
    """
    metric = next(c[:-5] for c in table.columns if c.endswith("_mean"))
    shots = [s for s in ("all", "many", "median", "few") if s in set(table["shot"])]
    lines = [f"| method | {' | '.join(shots)} | seeds |", "|" + "---|" * (len(shots) + 2)]
    for m, g in table.groupby("method", sort=False):
        g = g.set_index("shot")
        one = int(g["n_seeds"].max()) < 2          # one seed: no spread to show
        cells = [(f"{g.loc[s, metric + '_mean']:.3f}"
                  + ("" if one else f" ± {g.loc[s, metric + '_std']:.3f}")
                  + f" (n={int(g.loc[s, 'n'])})") if s in g.index else "—" for s in shots]
        lines.append(f"| {m} | {' | '.join(cells)} | {int(g['n_seeds'].max())} |")
    return "\n".join(lines)


def write_references(results_dir, out_dir, data_dir=None) -> list:
    """Reference rows (:func:`dirlib.tools.references.reference_rows`) for each dataset of the
    records whose data loads here and is a table or sentence pairs: ``<stem>-references.csv`` in
    ``out_dir``, one row per reference and shot (mean and sd over the records' seeds, the shot's
    test count). Returns lines to print (a skipped dataset says why)."""
    import warnings
    from ..datasets import load_dataset
    from ..tools.references import reference_rows
    out_dir = Path(out_dir)
    done = completed(load_records(results_dir, strict=True))
    by_ds = {}
    for r in done:
        by_ds.setdefault(r["config"].get("dataset"), set()).add(int(r["config"].get("seed", 0)))
    lines = []
    for ds, seeds in sorted(by_ds.items(), key=lambda kv: str(kv[0])):
        try:
            data = load_dataset(ds, data_dir=data_dir)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="An input array is constant")
                ref = reference_rows(data, seeds=sorted(seeds), log=lambda m: None)
        except (ValueError, OSError) as e:
            lines.append(f"references for {ds}: skipped ({str(e).splitlines()[0][:160]})")
            continue
        metric = ref["metric"]
        rows = []
        for name, v in ref["rows"].items():
            for shot in ("all", "many", "median", "few"):
                xs = [v["seeds"][k][shot][metric] for k in v["seeds"]]
                n = v["seeds"][next(iter(v["seeds"]))][shot]["n"]
                rows.append({"reference": name, "shot": shot, "n": n,
                             f"{metric}_mean": float(np.mean(xs)),
                             f"{metric}_std": float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0,
                             "n_seeds": len(xs)})
        df = pd.DataFrame(rows)
        path = write_table(df, _inside(out_dir, f"{table_stem(ds)}-references.csv"))
        lines.append(str(path))
        lines.append("\n" + markdown_summary(df.rename(columns={"reference": "method"})))
    return lines


#: a shot with fewer test rows than this gets a bootstrap interval over its rows too
FEW_TEST_ROWS = 30


def row_bootstrap(method_records: Sequence[dict], base_records: Sequence[dict], shot: str,
                  n_boot: int = 2000, seed: int = 0):
    """A 95% bootstrap interval of ``MAE(method) - MAE(base)`` at ``shot`` over the test rows, from
    the runs' saved predictions (``--save-predictions``; seeds paired, their differences averaged
    over seeds inside each resample). None when a run has no predictions file."""
    def errors(rec):
        p = Path(rec.get("_path", "")).with_name("predictions.csv")
        q = p.with_suffix(".parquet")
        if not p.exists() and not q.exists():
            return None
        df = pd.read_csv(p) if p.exists() else pd.read_parquet(q)
        t = df[(df["split"] == "test") & (df["shot"] == shot)].sort_values("row")
        return (t["prediction"] - t["label"]).abs().to_numpy()
    base = {r["config"].get("seed"): r for r in completed(base_records, warn=False)}
    diffs = []
    for r in completed(method_records, warn=False):
        b = base.get(r["config"].get("seed"))
        ea, eb = (errors(r), errors(b)) if b is not None else (None, None)
        if ea is None or eb is None or len(ea) != len(eb) or not len(ea):
            return None
        diffs.append(ea - eb)
    if not diffs:
        return None
    d = np.mean(diffs, axis=0)                  # per test row, averaged over the paired seeds
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), len(d)


def comparison_lines(results_dir, base: str) -> list:
    """Markdown, per dataset: each method minus ``base`` at each shot, paired over seeds with its
    95% t interval and the shot's test rows; where a shot has fewer than :data:`FEW_TEST_ROWS` test
    rows and the runs saved predictions, a bootstrap interval over those rows beside it."""
    from ..datasets import main_metric
    done = completed(load_records(results_dir, strict=True))
    lines = []
    for ds in sorted({r["config"].get("dataset") for r in done}, key=str):
        recs = [r for r in done if r["config"].get("dataset") == ds]
        metric = main_metric(ds) if ds else "mae"
        by_m = {}
        for r in recs:
            by_m.setdefault(r["config"]["method"], []).append(r)
        if base not in by_m:
            lines.append(f"{ds}: no {base} records to compare with")
            continue
        lines += ["", f"{table_stem(ds)}: method - {base}, test {metric}, paired over seeds "
                      f"(95% t interval; bootstrap over test rows where a shot has fewer than "
                      f"{FEW_TEST_ROWS})", "",
                  "| method | shot | seeds | test rows | difference | 95% interval | rows bootstrap |",
                  "|---|---|---|---|---|---|---|"]
        for m, rs in sorted(by_m.items()):
            if m == base:
                continue
            eff = paired_effects(rs, by_m[base], metric)
            for shot, d in eff.items():
                n_rows = int(rs[0]["test"][shot].get("n", 0))
                boot = (row_bootstrap(rs, by_m[base], shot) if n_rows < FEW_TEST_ROWS
                        and metric == "mae" else None)
                bcell = f"[{boot[1]:+.3f}, {boot[2]:+.3f}]" if boot else "—"
                ci = (f"[{d.lo:+.3f}, {d.hi:+.3f}]" if d.n > 1 else "one seed: none")
                lines.append(f"| {m} | {shot} | {d.n} | {n_rows} | {d.mean:+.3f} | {ci} | {bcell} |")
    return lines


def regenerate_tables(results_dir, out_dir) -> list:
    """Rebuild every table from the records under ``results_dir`` into ``out_dir``: one
    ``<dataset>.csv`` (:func:`summary_table` with the dataset's metrics) per dataset that has
    completed records, and ``index.csv`` listing them (only its header when there are none).
    Returns the written paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder: choose a folder for the tables")
    records = load_records(results_dir, strict=True)
    done = completed(records)
    by_ds = {}
    for r in done:
        by_ds.setdefault(r["config"].get("dataset"), []).append(r)
    written, index = [], []
    groups = []
    for ds in sorted(by_ds, key=str):
        # one table per protocol: records that differ only in the method (and the seed) share a
        # table; a short run and a full reproduction on the same dataset get one table each
        by_proto = {}
        for r in by_ds[ds]:
            by_proto.setdefault(protocol_key(r["config"]), []).append(r)
        for key, recs in sorted(by_proto.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            stem = table_stem(ds)
            name = (stem if len(by_proto) == 1
                    else f"{stem}-e{recs[0]['config'].get('epochs')}-{key[:6]}")
            groups.append((ds, name, recs))
    for ds, name, recs in groups:
        try:
            df = summary_table(recs, metrics=table_metrics(ds))
        except ValueError as e:
            raise ValueError(f"table {name}: {e}") from None
        fname = f"{name}.csv"
        written.append(write_table(df, _inside(out_dir, fname)))
        index.append({"table": name, "dataset": ds, "n_records": len(recs),
                      "n_methods": df["method"].nunique(),
                      "methods": ";".join(sorted(df["method"].unique())),
                      "seeds": ";".join(sorted({str(r["config"].get("seed")) for r in recs})),
                      "data_hash": recs[0]["data_hash"], "file": fname})
    written.append(write_table(pd.DataFrame(index, columns=INDEX_COLUMNS), out_dir / "index.csv"))
    return written


# ----------------------------------------------------------------------------------- method vs base
#: metrics where higher is better (the others are errors)
HIGHER_IS_BETTER = ("pearson", "spearman")


def paired_effects(method_records: Sequence[dict], base_records: Sequence[dict], metric: str,
                   shots: Sequence[str] = ("all", "many", "median", "few"), split: str = "test") -> dict:
    """Per shot, the paired difference (method - base) of ``metric`` over the seeds both arms have,
    with its 95% t interval (:func:`dirlib.stats.paired_difference`); a shot without finite values
    on both sides is left out."""
    from ..stats import paired_difference
    m_recs, b_recs = completed(method_records, warn=False), completed(base_records, warn=False)
    for name, recs in (("method", m_recs), ("base", b_recs)):
        seeds = [r["config"].get("seed") for r in recs]
        twice = sorted({s for s in seeds if seeds.count(s) > 1}, key=str)
        if twice:
            raise ValueError(f"paired_effects: the {name} records hold seed(s) {twice} more than "
                             f"once; each seed pairs once")
    base = {r["config"].get("seed"): r for r in b_recs}
    pairs = [(r, base[r["config"].get("seed")]) for r in m_recs if r["config"].get("seed") in base]
    out = {}
    for s in shots:
        a = np.array([_metric(m, split, s, metric) for m, _ in pairs], dtype=np.float64)
        b = np.array([_metric(bb, split, s, metric) for _, bb in pairs], dtype=np.float64)
        if len(a) and np.isfinite(a).all() and np.isfinite(b).all():
            out[s] = paired_difference(a, b)
    return out


def stored_recipes(records: Sequence[dict]) -> pd.DataFrame:
    """How the completed ``records`` were trained, one row per dataset and distinct recipe: the
    device (the GPU's name where the record has it), model arguments, input size (images), epochs,
    learning-rate drops, batch size, learning rate and the number of runs. Read from each record's
    ``config``, ``device`` and ``versions``, so a page that states the setup cannot contradict it."""
    rows = {}
    for r in completed(records, warn=False):
        c, v = r["config"], r.get("versions") or {}
        dev = v.get("cuda_device") if r.get("device") == "cuda" else (r.get("device") or "?")
        info = find_dataset(c.get("dataset"))
        images = bool(info and info.images)
        drops = c.get("lr_milestones") or []
        key = (c.get("dataset"), str(dev), json.dumps(c.get("model_kwargs") or {}, sort_keys=True),
               c.get("img_size") if images else None, c.get("epochs"), tuple(drops), c.get("batch_size"), c.get("lr"))
        row = rows.setdefault(key, {"dataset": key[0], "device": key[1], "model arguments": key[2],
                                    "image size": f"{key[3]} px" if key[3] else "–",
                                    "epochs": key[4],
                                    "lr drops at": ", ".join(map(str, drops)) or "none",
                                    "batch size": key[6], "lr": key[7], "runs": 0})
        row["runs"] += 1
    cols = ["dataset", "device", "model arguments", "image size", "epochs", "lr drops at", "batch size", "lr", "runs"]
    return pd.DataFrame(list(rows.values()), columns=cols)


def compute_used(records: Sequence[dict]) -> pd.DataFrame:
    """Run time behind ``records`` (completed ones): per dataset and device, the number of runs,
    the torch threads per run and the summed ``wall_time_s`` in hours. On a CPU run with ``t``
    threads the core-hours are at most ``t`` x the hours; runs that shared one GPU overlap, so
    their sum is more than the machine time they took."""
    rows = {}
    for r in completed(records, warn=False):
        v = r.get("versions") or {}
        dev = v.get("cuda_device") if str(r.get("device", "")).startswith("cuda") else "cpu"
        key = (r["config"].get("dataset"), dev or str(r.get("device")), v.get("torch_threads"))
        row = rows.setdefault(key, {"runs": 0, "hours": 0.0, "missing_time": 0})
        row["runs"] += 1
        t = r.get("wall_time_s")
        if t is None:
            row["missing_time"] += 1
        else:
            row["hours"] += float(t) / 3600.0
    out = [{"dataset": k[0], "device": k[1], "torch_threads": k[2], **v} for k, v in sorted(
        rows.items(), key=lambda kv: tuple(str(x) for x in kv[0]))]
    return pd.DataFrame(out, columns=["dataset", "device", "torch_threads", "runs", "hours", "missing_time"])


# ----------------------------------------------------------------------------------- README
README_BEGIN = "<!-- results:begin (generated by python -m dirlib results readme; do not edit) -->"
README_END = "<!-- results:end -->"
#: the order of the rows: the paper's tables, then anything else by name
README_ORDER = ("vanilla", "inv", "sqinv", "lds", "fds", "lds+fds", "focal", "rrt", "bmc", "gai", "bni",
                "ranksim", "oe", "conr", "frobenius", "lds+frobenius", "ranksim+frobenius")
README_DATASETS = {"utkface-dir": (1, "mae"), "sts-b-dir": (3, "mse")}


def _protocol_groups(records: Sequence[dict]) -> dict:
    """``{dataset: [its completed records of the protocol :func:`main_protocol` picks]}``."""
    by = {}
    for r in completed(records, warn=False):
        by.setdefault(r["config"].get("dataset"), []).append(r)
    out = {}
    for ds, recs in by.items():
        best = main_protocol((run_key(r["config"]), r) for r in recs)
        out[ds] = [r for r in recs if protocol_key(r["config"]) == best]
    return out


def _protocol_text(recs: Sequence[dict]) -> str:
    c = recs[0]["config"]
    parts = [f"{c.get('epochs')} epochs", f"batch {c.get('batch_size')}", f"lr {c.get('lr')}"]
    info = find_dataset(c.get("dataset"))
    if info is not None and info.images:
        parts.insert(0, f"{c.get('model') or 'ResNet-18'} at {c.get('img_size')} px")
    elif (c.get("model_kwargs") or {}).get("hidden"):
        parts.insert(0, f"BiLSTM hidden {c['model_kwargs']['hidden']}")
    devices = sorted({str(r.get("versions", {}).get("cuda_device") or r.get("device")) for r in recs})
    seeds = sorted({r["config"].get("seed") for r in recs})
    return (", ".join(parts) + f"; seeds {', '.join(map(str, seeds))}; "
            f"{len(recs)} runs on {', '.join(devices)}")


def dirty_records(recs: Sequence[dict]) -> list:
    """The records written from a tree with uncommitted changes before dirlib stored the diff with
    each record: the commit they name is not exactly the code that ran."""
    from ..records import provenance_problem
    return [r for r in recs if provenance_problem(r.get("_path", "run.json"), r) == "dirty"]


def dirty_note(recs: Sequence[dict]) -> str:
    """A footnote counting :func:`dirty_records` among ``recs`` ("" when there are none)."""
    n = len(dirty_records(recs))
    if not n:
        return ""
    return (f"*{n} of these {len(recs)} records were written from a working tree with uncommitted "
            f"changes, before dirlib stored the diff with each record: the commit they name is not "
            f"exactly the code that ran. docs/reproduction.md has the commands to rerun them.*")


def refuse_dirty(recs: Sequence[dict], allow: bool) -> None:
    """The table commands' rule: a record without the code that made it is refused unless
    ``allow`` (``--allow-dirty``), and then the table says so (:func:`dirty_note`)."""
    bad = dirty_records(recs)
    if bad and not allow:
        raise ValueError(f"{len(bad)} record(s) were written from a dirty tree without their diff "
                         f"(e.g. {_name(bad[0])}); rerun them, or pass --allow-dirty to table them "
                         f"with a footnote that counts them")


def readme_results(results_dir) -> str:
    """The README's results block: per dataset in :data:`README_DATASETS`, the protocol with the most
    completed records, mean ± sample std over seeds of the table's first metric per shot, rows in
    the paper's order, and the paper's own Vanilla row (transcribed, another dataset) for scale."""
    from .naming import METRIC_DIGITS, display_name, format_mean_std
    groups = _protocol_groups(load_records(results_dir))
    paper = paper_table()
    lines = [README_BEGIN]
    for ds, (table, metric) in README_DATASETS.items():
        recs = groups.get(ds)
        if not recs:
            lines += ["", f"**{ds}**: no completed run records yet."]
            continue
        df = summary_table(recs, metrics=(metric,))
        methods = sorted(df["method"].unique(), key=lambda m: (
            README_ORDER.index(m) if m in README_ORDER else len(README_ORDER), m))
        head = f"| method | {metric.upper()} all | many | median | few | seeds |"
        lines += ["", f"**{ds}**, test {metric.upper()} (lower is better), mean ± std over seeds: "
                  f"{_protocol_text(recs)}.", "", head, "|---|---|---|---|---|---|"]
        for m in methods:
            sub = df[df["method"] == m].set_index("shot")
            cells = [format_mean_std(sub.loc[shot, f"{metric}_mean"], sub.loc[shot, f"{metric}_std"],
                                     METRIC_DIGITS[metric]) for shot in SHOTS_ALL]
            lines.append(f"| {display_name(m)} | " + " | ".join(cells) + f" | {sub['n_seeds'].iloc[0]} |")
        pv = paper[(paper["table"] == table) & (paper["method"] == "VANILLA")
                   & (paper["metric"].str.lower() == metric)]
        if len(pv):
            pds = pv["dataset"].iloc[0]
            vals = {r["shot"]: r["value"] for _, r in pv[pv["dataset"] == pds].iterrows()}
            lines.append(f"| *paper's Vanilla, {pds} (transcribed; another scale)* | "
                         + " | ".join("" if pd.isna(vals.get(s)) else f"*{vals.get(s):g}*" for s in SHOTS_ALL)
                         + " | |")
        note = dirty_note(recs)
        if note:
            lines += ["", note]
    lines += ["", README_END]
    return "\n".join(lines)


def replace_block(path, begin: str, end: str, body: str, check: bool = False) -> bool:
    """Replace the text between the marker lines ``begin`` and ``end`` in the file ``path`` with
    ``body`` (the markers stay). ``check``: write nothing, return whether the file is up to date.
    A file without both markers is an error naming the file and the markers."""
    from ..records import write_text_atomic
    path = Path(path)
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no generated block: no {begin} ... {end} markers")
    pre, rest = text.split(begin, 1)
    post = rest.split(end, 1)[1]
    new = pre + begin + body + end + post
    if check:
        return new == text
    if new != text:
        write_text_atomic(path, new)
    return True


def update_readme(results_dir, readme, check: bool = False) -> bool:
    """Replace the block between :data:`README_BEGIN` and :data:`README_END` in ``readme`` with
    :func:`readme_results`. ``check``: write nothing, return whether the file is up to date."""
    block = readme_results(results_dir)
    body = block[len(README_BEGIN):-len(README_END)]
    return replace_block(readme, README_BEGIN, README_END, body, check=check)


# ----------------------------------------------------------------------------------- paper
def paper_table(table: Optional[int] = None, path=None) -> pd.DataFrame:
    """The paper's numbers (``results/paper_tables.csv``): columns ``table, dataset, method, metric,
    shot, value, source``; ``value`` is float (NaN where the paper prints ``-``). ``table`` selects 1,
    2 or 3."""
    df = pd.read_csv(path or PAPER_TABLES, dtype={"value": "float64"})
    if table is not None:
        if table not in (1, 2, 3):
            raise ValueError(f"table must be 1, 2 or 3, got {table!r}")
        df = df[df["table"] == table].reset_index(drop=True)
    return df


# ----------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib results",
                                description="Tables from run records.")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tables", help="regenerate every table from the run records")
    t.add_argument("--results", default="results", help="folder searched for **/run.json")
    t.add_argument("--out", default="results/tables", help="output folder for the CSV tables")
    t.add_argument("--references", action="store_true",
                   help="also the reference rows of each table whose data loads here (tables and "
                        "sentence pairs): training mean and median, gradient boosting tuned on "
                        "validation data; written as <table>-references.csv and printed")
    t.add_argument("--data-dir", default=None, help="for --references (default: $DIRLIB_DATA)")
    t.add_argument("--compare", default=None, metavar="BASE",
                   help="print each method minus BASE per shot, paired over seeds with a 95%% "
                        "interval, and a bootstrap over test rows where a shot has few of them "
                        "(runs saved with --save-predictions)")
    r = sub.add_parser("readme", help="regenerate the results block of README.md from the records")
    r.add_argument("--results", default="results")
    r.add_argument("--readme", default="README.md")
    r.add_argument("--check", action="store_true", help="exit 1 if the block is out of date")
    for q in (t, r):
        q.add_argument("--allow-dirty", action="store_true",
                       help="table records written from a dirty tree before diffs were stored "
                            "(the README block counts them in a footnote)")
    rp = sub.add_parser("reproduce", help="rerun a stored record with the code that made it "
                                          "(its commit and diff) and compare every metric",
                        description="Rerun a stored record with the code that made it and compare "
                                    "every metric. This RUNS THE RECORD'S CODE: its commit, and "
                                    "its stored run.diff when it was written from a dirty tree. "
                                    "A diff is shown (files, lines) and runs only with --yes.")
    rp.add_argument("--yes", action="store_true",
                    help="run the record's stored diff (code not in the history) too")
    rp.add_argument("record", help="a run.json")
    rp.add_argument("--data-dir", default=None, help="default: $DIRLIB_DATA")
    rp.add_argument("--rtol", type=float, default=1e-6,
                    help="relative tolerance for runs that were not on the CPU")
    a = p.parse_args(argv)
    if a.cmd == "reproduce":
        from ..tools.reproduce import ReproduceError, report, reproduce
        try:
            res = reproduce(a.record, data_dir=a.data_dir, rtol=a.rtol, run_diffs=a.yes)
        except (ReproduceError, OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(report(res))
        return 0 if res["ok"] else 1
    try:
        refuse_dirty(load_records(a.results, status="completed"), a.allow_dirty)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.cmd == "readme":
        try:
            ok = update_readme(a.results, a.readme, check=a.check)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if not ok:
            print(f"{a.readme}: the results block is out of date; run python -m dirlib results readme --allow-dirty",
                  file=sys.stderr)
        return 0 if ok else 1
    if Path(a.out).exists() and not Path(a.out).is_dir():
        print(f"error: --out {a.out} is a file, not a folder: choose a folder for the tables",
              file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            paths = regenerate_tables(a.results, a.out)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    for path in paths:
        if Path(path).name != "index.csv" and not Path(path).stem.endswith("-references"):
            print(f"\n{Path(path).stem}\n\n" + markdown_summary(pd.read_csv(path)))
    if a.references:
        for line in write_references(a.results, a.out, a.data_dir):
            print(line)
    if a.compare:
        print("\n".join(comparison_lines(a.results, a.compare)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
