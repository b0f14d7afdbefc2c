"""The numbers behind the paper's figures and tables, computed from run records: shot tables
(Fig. 1), per-label norms and training MAE (Figs. 2/5), training curves (Fig. 3), the paper's
tables beside the reproduction's (Tables 1-3) and the paired base comparisons. The records come
from :mod:`dirlib.paper.page_runs`, the plots are :mod:`dirlib.paper.plots`, the formatting :mod:`dirlib.paper.naming`.

Choices (not in the paper):

* Fig. 1 error bars are the sample standard deviation over seeds (``ddof=1``,
  :func:`dirlib.paper.record_tables.summary_table`); a single seed has no bar.
* Figs. 2/5 and 3 show one run (the lowest seed present), as the paper's figures show one model.
  The bars are per-label training MAE and the line the per-label prototype norm
  ``||mean_i z_i||`` of the un-augmented training set (``train_per_label`` of the run record, from
  :func:`dirlib.train.train_diagnostics`). For a frobenius run the final phase (fine-tuned) is drawn
  and phase 2's predicted norms ``l_hat`` are overlaid as a dashed line.
* Shot regions follow the 100 / 20 rule on the training counts of the full training set.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..datasets import main_metric  # noqa: F401  (pages call figs.main_metric)
from .naming import METRIC_DIGITS, METRIC_NAMES, SHOT_NAMES, display_name, format_mean_std  # noqa: F401
from .page_runs import Runs, RunSpec, repo_relative, cached_runs, run_spec, scratch_dir, train_runs


SHOTS = ("many", "median", "few")


SHOTS_ALL = ("all",) + SHOTS


# ----------------------------------------------------------------------------------- paper rows
#: the paper's table rows (as printed in results/paper_tables.csv) -> dirlib method names.
#: "SQINV + LDS" (Table 1) and "LDS" (Table 3) are both dirlib's ``lds``: its weighting defaults to
#: SQINV on the age datasets and INV on STS-B-DIR, as the benchmark's rows. "Ours" is ``frobenius``
#: on the dataset's default loss (the paper: "we adopt the MAE as the loss penalty").
PAPER_METHODS = {
    "VANILLA": "vanilla", "SMOTER": "smoter", "SMOEN": "smogn", "RRT": "rrt", "FOCAL-R": "focal",
    "SQINV": "sqinv", "SQINV + LDS": "lds", "LDS": "lds", "FDS": "fds", "INV": "inv",
    "LDS+FDS": "lds+fds", "LDS + FDS": "lds+fds", "LDS+FDS+DER": "lds+fds+der",
    "LDS + FDS + DER": "lds+fds+der", "DER": "der", "VAE": "vae", "RANKSIM": "ranksim", "OE": "oe",
    "Con-R": "conr", "VIR": "vir", "SupCR": "supcr", "Distloss": "distloss", "SRL": "srl",
    "BMC": "bmc", "GAI": "gai", "Ours": "frobenius",
}


#: the dataset of each paper table (dirlib name) and the metrics it prints
PAPER_TABLE_DATASETS = {1: "agedb-dir", 2: "imdb-wiki-dir", 3: "sts-b-dir"}


TABLE_METRICS = {1: ("mae", "gm"), 2: ("mae", "gm"), 3: ("mse", "pearson")}


#: the panels of the paper's Fig. 2 (baselines) and Fig. 5 (the same + the paper's method)
FIG2_SPECS = (RunSpec("vanilla", "MSE", loss="mse"), RunSpec("vanilla", "MAE", loss="l1"),
              RunSpec("lds", "MAE+LDS", loss="l1"), RunSpec("bmc", "BMSE"),
              RunSpec("conr", "ConR"), RunSpec("ranksim", "RankSim"))


FIG5_SPECS = (RunSpec("bmc+frobenius", "BMSE + ours"), RunSpec("ranksim+frobenius", "RankSim + ours"),
              RunSpec("conr+frobenius", "ConR + ours"))


#: Fig. 5 panel -> the Fig. 2 panel it improves on
FIG5_BASE = {"BMSE + ours": "BMSE", "RankSim + ours": "RankSim", "ConR + ours": "ConR"}


#: Figs. 2 and 5 from the reproduction's records (it ran these methods, not the paper's exact
#: panels): the baselines, and the paper's method on three of them
REPRO_FIG2_SPECS = (RunSpec("vanilla", "Vanilla"), RunSpec("lds", "LDS"), RunSpec("bmc", "BMSE"),
                    RunSpec("conr", "ConR"), RunSpec("ranksim", "RankSim"))


REPRO_FIG5_SPECS = (RunSpec("frobenius", "Vanilla + ours"), RunSpec("lds+frobenius", "LDS + ours"),
                    RunSpec("ranksim+frobenius", "RankSim + ours"))


REPRO_FIG5_BASE = {"Vanilla + ours": "Vanilla", "LDS + ours": "LDS", "RankSim + ours": "RankSim"}


def fig25_specs(results_dir, dataset: str):
    """``(fig2_specs, fig5_specs, fig5_base)`` for Figs. 2 and 5 drawn from stored records on
    ``dataset``: the paper's panels (:data:`FIG2_SPECS`, :data:`FIG5_SPECS`) when records cover
    them all, else the reproduction's panels (:data:`REPRO_FIG2_SPECS`, :data:`REPRO_FIG5_SPECS`)
    that have records."""
    from .record_tables import load_records
    results_dir = Path(results_dir)
    recs = load_records(results_dir, dataset=dataset, status="completed") if results_dir.is_dir() else []

    def have(spec):
        return any(spec.matches(r["config"]) for r in recs)
    if all(have(s) for s in FIG2_SPECS + FIG5_SPECS):
        return list(FIG2_SPECS), list(FIG5_SPECS), dict(FIG5_BASE)
    f2 = [s for s in REPRO_FIG2_SPECS if have(s)]
    f5 = [s for s in REPRO_FIG5_SPECS if have(s)]
    return f2, f5, {k: v for k, v in REPRO_FIG5_BASE.items() if any(s.label == k for s in f5)}


# ----------------------------------------------------------------------------------- Fig. 1
def shot_table(runs: Runs, metrics: Optional[Sequence[str]] = None, split: str = "test"
               ) -> pd.DataFrame:
    """Mean and sample std over seeds per run x shot (:func:`dirlib.paper.record_tables.summary_table` on each
    run's records). Columns ``label, method, shot, n_seeds, seeds, n, <metric>_mean, <metric>_std``;
    rows in the order of ``runs.specs``, shots all/many/median/few."""
    from .record_tables import summary_table
    metrics = tuple(metrics or (main_metric(runs.dataset),))
    frames = []
    for s in runs.present():
        df = summary_table(runs.records[s.label], metrics=metrics, split=split)
        df.insert(0, "label", s.label)
        frames.append(df)
    if not frames:
        cols = ["label", "dataset", "method", "shot", "n_seeds", "seeds", "n"] + [
            f"{m}_{k}" for m in metrics for k in ("mean", "std")]
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)


def shot_gaps(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per run: the mean test error of the median and few shots divided by the many shot's (the
    gap Fig. 1 is about; > 1: the under-represented labels are worse)."""
    rows = {}
    for label, g in table.groupby("label", sort=False):
        m = g.set_index("shot")[f"{metric}_mean"]
        many = m.get("many", math.nan)
        rows[label] = {"median / many": m.get("median", math.nan) / many if many else math.nan,
                       "few / many": m.get("few", math.nan) / many if many else math.nan}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = f"test {METRIC_NAMES.get(metric, metric)} ratio"
    return out


# ----------------------------------------------------------------------------------- Figs. 2 / 5
def final_phase(record: dict) -> str:
    return record.get("final") or "main"


def per_label(record: dict, phase: Optional[str] = None) -> pd.DataFrame:
    """The per-label training diagnostics of a run record: columns ``bin, label, count, proto_norm,
    mean_norm, mae, shot`` (+ ``label_mean``), one row per label with training samples."""
    phase = phase or final_phase(record)
    try:
        tpl = record["phases"][phase]["train_per_label"]
    except (KeyError, TypeError):
        raise ValueError(f"run record {record.get('_path', record.get('config_hash'))} has no "
                         f"phases[{phase!r}]['train_per_label'] (trained with diagnostics=False?)") from None
    df = pd.DataFrame(tpl["per_label"])
    need = {"label", "count", "proto_norm", "mae", "shot"}
    if not need <= set(df.columns):
        raise ValueError(f"train_per_label lacks columns {sorted(need - set(df.columns))}")
    return df.sort_values("label").reset_index(drop=True)


def ordinality(record: dict, phase: Optional[str] = None) -> dict:
    """The ordinality score stored with the per-label diagnostics (``train_per_label.ordinality``)."""
    phase = phase or final_phase(record)
    return dict(record["phases"][phase]["train_per_label"]["ordinality"])


def norm_targets(record: dict) -> Optional[pd.DataFrame]:
    """Phase 2 of a frobenius run: ``label, observed_norm, predicted_norm, majority`` per label
    (``None`` for a run without phase 2)."""
    ph = (record.get("phases") or {}).get("norm")
    if not ph:
        return None
    return pd.DataFrame(ph["per_label"])


def shot_mae(df: pd.DataFrame) -> Dict[str, float]:
    """Count-weighted training MAE per shot (and all) from a :func:`per_label` frame."""
    out = {}
    w = df["count"].to_numpy(dtype=float)
    e = df["mae"].to_numpy(dtype=float)
    for s in SHOTS_ALL:
        m = np.ones(len(df), bool) if s == "all" else (df["shot"].to_numpy() == s)
        out[s] = float(np.sum(w[m] * e[m]) / np.sum(w[m])) if m.any() and np.sum(w[m]) > 0 else float("nan")
    return out


def ordinality_table(panels: Sequence[Tuple[str, dict]], phase: Optional[str] = None) -> pd.DataFrame:
    """One row per panel: Spearman (all, per shot), adjacent violations, discordant fraction and the
    count-weighted training MAE per shot."""
    rows = {}
    for t, r in panels:
        sc = ordinality(r, phase)
        df = per_label(r, phase)
        tm = shot_mae(df)
        row = {"Spearman": sc.get("spearman")}
        for s in SHOTS:
            row[f"Spearman {SHOT_NAMES[s]}"] = sc.get(f"spearman_{s}")
        row["violations"] = f"{sc.get('adjacent_violations')}/{sc.get('adjacent_pairs')}"
        row["discordant"] = sc.get("discordant_fraction")
        for s in SHOTS_ALL:
            row[f"train MAE {SHOT_NAMES[s]}"] = tm[s]
        rows[t] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "run"
    return out


def before_after(pairs: Sequence[Tuple[str, dict, str, dict]], phase: Optional[str] = None) -> pd.DataFrame:
    """Fig. 2 -> Fig. 5: for each ``(before label, before record, after label, after record)`` the
    overall and few-shot Spearman of the prototype norms and the few-shot and all-label training MAE,
    before and after. Columns ``(quantity, "before" | "after")``, rows ``"before -> after"``."""
    rows, index = [], []
    for bl, br, al, ar in pairs:
        b, a = ordinality(br, phase), ordinality(ar, phase)
        mb, ma = shot_mae(per_label(br, phase)), shot_mae(per_label(ar, phase))
        rows.append([b.get("spearman"), a.get("spearman"), b.get("spearman_few"), a.get("spearman_few"),
                     mb["few"], ma["few"], mb["all"], ma["all"]])
        index.append(f"{bl} -> {al}")
    cols = pd.MultiIndex.from_product([["Spearman", "Spearman Few", "train MAE Few", "train MAE All"],
                                       ["before", "after"]])
    return pd.DataFrame(rows, index=pd.Index(index, name="runs"), columns=cols, dtype=float)


# ----------------------------------------------------------------------------------- Fig. 3
def training_curves(record: dict, phase: Optional[str] = None) -> pd.DataFrame:
    """Per epoch and shot: the running training MAE (``history[*].train_mae_running``, the mean
    |error| of the predictions made during that epoch, in train mode) and the validation MAE.
    Default phase: ``main`` (the phase that trains from scratch)."""
    phase = phase or ("main" if "main" in (record.get("phases") or {}) else final_phase(record))
    try:
        hist = record["phases"][phase]["history"]
    except (KeyError, TypeError):
        raise ValueError(f"run record has no phases[{phase!r}]['history']") from None
    rows = []
    for h in hist:
        for s in SHOTS:
            tr = (h.get("train_mae_running") or {}).get(s)
            va = ((h.get("val") or {}).get(s) or {}).get("mae")
            rows.append({"epoch": int(h["epoch"]), "shot": s,
                         "train_mae": np.nan if tr is None else float(tr),
                         "val_mae": np.nan if va is None else float(va)})
    if not rows:
        raise ValueError(f"phases[{phase!r}]['history'] is empty")
    return pd.DataFrame(rows)


def convergence_epoch(values: Sequence[float], tol: float = 0.1) -> Optional[int]:
    """The first epoch (1-based) from which the curve stays within ``tol`` (relative) of its last
    value; ``None`` for an empty or all-NaN curve. NaN entries are skipped."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    if not ok.any():
        return None
    last = v[ok][-1]
    band = tol * abs(last) if last != 0 else tol
    inside = np.where(ok, np.abs(v - last) <= band, True)
    k = len(v)
    while k > 0 and inside[k - 1]:
        k -= 1
    return k + 1


# ----------------------------------------------------------------------------------- Tables 1-3
def paper_rows(table: int) -> List[str]:
    """The method rows of a paper table, in the paper's order."""
    from .record_tables import paper_table
    return list(dict.fromkeys(paper_table(table)["method"]))


def paper_table_rows(table: int, metric: str) -> Dict[str, Dict[str, float]]:
    """``{dirlib method: {shot: value}}`` of a paper table's ``metric`` (transcribed), for the rows
    dirlib implements (:data:`PAPER_METHODS`; the first row of a method wins)."""
    out: Dict[str, Dict[str, float]] = {}
    for (row, m, shot), v in _paper_values(table).items():
        method = PAPER_METHODS.get(row)
        if method is None or m != metric or (method in out and out[method].get("_row") != row):
            continue
        out.setdefault(method, {"_row": row})[shot] = v
    return {k: {s: v for s, v in d.items() if s != "_row"} for k, d in out.items()}


def table_specs(table: int, methods: Optional[Sequence[str]] = None) -> List[RunSpec]:
    """The dirlib runs behind a paper table: one per row that dirlib implements
    (:data:`PAPER_METHODS`), in the paper's order; ``methods`` (dirlib names) restricts them."""
    from ..methods import catalog
    out, seen = [], set()
    for row in paper_rows(table):
        m = PAPER_METHODS.get(row)
        if m is None or m in seen or not all(p in catalog() for p in m.split("+")):
            continue
        if methods is not None and m not in methods:
            continue
        seen.add(m)
        out.append(RunSpec(m, row))
    if methods is not None:
        for m in methods:
            if m not in seen:
                out.append(run_spec(m))
                seen.add(m)
    return out


def _paper_values(table: int) -> Dict[Tuple[str, str, str], float]:
    from .record_tables import paper_table
    df = paper_table(table)
    return {(r.method, r.metric.lower(), r.shot): r.value for r in df.itertuples()}


def table_frame(table: int, runs: Optional[Runs] = None, *, paper: bool = True,
                digits: Optional[Dict[str, int]] = None) -> pd.DataFrame:
    """A paper table's layout with each cell's source: rows ``(method, source)`` where source is
    ``paper`` (transcribed, ``results/paper_tables.csv``) or ``dirlib`` (mean ± std over the seeds
    of ``runs``, test split), columns ``(metric, shot)``. Paper rows without dirlib records get
    only their paper line; dirlib runs that are not a paper row come last. ``paper=False``: only
    the dirlib lines (e.g. UTKFace-DIR, synthetic data)."""
    from .record_tables import summary_table
    if table not in TABLE_METRICS:
        raise ValueError(f"table must be 1, 2 or 3, got {table!r}")
    metrics = TABLE_METRICS[table]
    dg = {**METRIC_DIGITS, **(digits or {})}
    cols = pd.MultiIndex.from_tuples([(METRIC_NAMES[m], SHOT_NAMES[s]) for m in metrics for s in SHOTS_ALL])
    pv = _paper_values(table)
    ours = {}
    if runs is not None:
        for s in runs.present():
            recs = runs.records[s.label]
            for m in metrics:
                for r in recs:
                    if m not in (r.get("test") or {}).get("all", {}):
                        raise ValueError(f"run records of {s.label} have no test metric {m!r} "
                                         f"(dataset {runs.dataset}); table {table} needs "
                                         f"{', '.join(metrics)}")
            ours[s.label] = summary_table(recs, metrics=metrics)
    rows, index = [], []

    def dirlib_row(label):
        df = ours[label].set_index("shot")
        return [format_mean_std(df.loc[s, f"{m}_mean"], df.loc[s, f"{m}_std"], dg[m])
                for m in metrics for s in SHOTS_ALL]

    shown = set()
    if paper:
        for row in paper_rows(table):
            rows.append([format_mean_std(pv.get((row, m, s), math.nan), math.nan, dg[m])
                         for m in metrics for s in SHOTS_ALL])
            index.append((row, "paper"))
            if row in ours:
                rows.append(dirlib_row(row))
                index.append((row, "dirlib"))
                shown.add(row)
    for label in ours:
        if label not in shown:
            rows.append(dirlib_row(label))
            index.append((label, "dirlib"))
    out = pd.DataFrame(rows, columns=cols, index=pd.MultiIndex.from_tuples(index, names=["method", "source"])
                       if index else None)
    return out


def table_runs(table: int, seeds: Sequence[int], *, dataset: Optional[str] = None,
               dataset_param: str = "auto", source: str = "cached", quick: bool = True,
               methods: Optional[Sequence[str]] = None, results_dir="results", data_dir=None,
               device: str = "auto", epochs: Optional[int] = None, scratch=None,
               log: Optional[Callable[[str], None]] = None) -> Runs:
    """The dirlib runs shown with paper table ``table``, on the table's dataset (or ``dataset``, e.g.
    ``utkface-dir`` in Table 1's layout). Committed records first. The page trains only when
    (``source == "rerun"`` or there are no records) and the dataset's files are present and the
    ``DATASET`` parameter (``dataset_param``) names this dataset, or is ``"auto"`` outside quick
    mode (a full run). Otherwise the result has ``source == "none"`` or the cached records."""
    from .page_runs import has_data
    ds = dataset or PAPER_TABLE_DATASETS[table]
    specs = table_specs(table, methods)
    runs = cached_runs(specs, dataset=ds, results_dir=results_dir)
    if source == "cached" and runs:
        return runs
    wanted = dataset_param == ds or (dataset_param == "auto" and not quick)
    present = has_data(ds, data_dir)
    if not present:
        if not runs or source == "rerun":
            runs.reason = "its data files are not under DATA_DIR, so the page cannot train it here"
        return runs
    if not wanted:
        if not runs:
            runs.reason = ("its data is present, but quick mode trains no real data; set DATASET = "
                           f"{ds!r}, or QUICK = False, to train it" if quick else
                           f"DATASET = {dataset_param!r} does not name it")
        return runs
    reason = "SOURCE = rerun" if source == "rerun" else f"no run records under `{repo_relative(results_dir)}`"
    folder = Path(scratch) if scratch is not None else (
        scratch_dir() if quick else Path(results_dir) / "runs")
    return train_runs(specs, list(seeds), dataset=ds, folder=folder, quick=quick, epochs=epochs,
                      device=device, data_dir=data_dir, log=log, reason=reason)


#: the methods of the small-scale reproduction (docs/reproduction.md): Tables 1 and 3's
#: baselines and the paper's method on three bases
REPRODUCTION_METHODS = ("vanilla", "inv", "lds", "fds", "lds+fds", "focal", "rrt", "bmc", "ranksim", "oe",
                        "conr", "frobenius", "lds+frobenius", "ranksim+frobenius")


#: (method, its base) pairs for :func:`base_comparison`
BASE_PAIRS = (("frobenius", "vanilla"), ("lds+frobenius", "lds"), ("ranksim+frobenius", "ranksim"))


def base_effects(runs: "Runs", metric: Optional[str] = None, pairs=BASE_PAIRS,
                 shots=("all", "many", "median", "few")) -> List[tuple]:
    """``(method, base, effects)`` for each (method, base) in ``pairs`` with records in ``runs``:
    the paired differences per shot of :func:`dirlib.paper.record_tables.paired_effects`."""
    from .record_tables import paired_effects
    metric = metric or main_metric(runs.dataset)
    by_method = {s.method: runs.records[s.label] for s in runs.present() if s.loss is None}
    return [(m, b, paired_effects(by_method[m], by_method[b], metric, shots=shots))
            for m, b in pairs if m in by_method and b in by_method]


def base_comparison(runs: "Runs", metric: Optional[str] = None, pairs=BASE_PAIRS,
                    shots=("all", "many", "median", "few")) -> pd.DataFrame:
    """:func:`base_effects` as one display table with plain columns: the base's and the method's
    mean ± std, the paired difference (method - base) with its 95% t interval, and the verdict."""
    from .record_tables import HIGHER_IS_BETTER, summary_table
    metric = metric or main_metric(runs.dataset)
    by_method = {s.method: runs.records[s.label] for s in runs.present() if s.loss is None}
    digits = METRIC_DIGITS.get(metric, 3)
    sign = 1 if metric in HIGHER_IS_BETTER else -1          # +1: a positive difference is better
    rows = []
    for m, b, eff in base_effects(runs, metric, pairs, shots):
        mean = {}
        for who, name in (("base", b), ("method", m)):
            t = summary_table(by_method[name], metrics=(metric,))
            mean[who] = dict(zip(t["shot"], zip(t[f"{metric}_mean"], t[f"{metric}_std"])))
        for s, d in eff.items():
            verdict = ("no detectable effect" if not d.detectable
                       else "better" if sign * d.direction > 0 else "worse")
            rows.append({"comparison": f"{display_name(m)} vs {display_name(b)}", "shot": SHOT_NAMES[s],
                         "base": format_mean_std(*mean["base"][s], digits),
                         "with the method": format_mean_std(*mean["method"][s], digits),
                         "paired difference [95% CI]": f"{d.mean:+.{digits}f} [{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]",
                         "verdict": verdict, "seeds": d.n})
    return pd.DataFrame(rows)

