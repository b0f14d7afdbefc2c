"""The fair benchmark read from its records (``docs/benchmark-plan.md``, ``dirlib.tools.benchmark``):
the tuned table beside the defaults table, the reference rows, the corrected family of each
method against Vanilla, the trials behind BMSE's and OE's rows, and what was cut. Every number
and sentence here is computed from the records; with none stored, the page says so.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import records
from ..stats import paired_difference
from ..tools import benchmark as plan
from .audit_primary import minimum_detectable_effect

SHOTS = ("all", "many", "median", "few")
#: the scale of every finding on STS-B-DIR (the plan's recipe; the device is read from records)
SCALE = "BiLSTM of 128 units on GloVe 6B-50d, 10 epochs"


def collect(results="results/benchmark", dataset: str = "sts-b-dir") -> pd.DataFrame:
    """The tuned seeds' test metric per method, seed and shot: ``method, seed, shot, value``
    (``results/<dataset>/<method>/seed<k>/run.json``; trials are not read)."""
    from ..datasets import main_metric
    metric = main_metric(dataset)
    rows = []
    root = Path(results) / dataset
    for path in sorted(root.glob("*/seed*/run.json")):
        rec = records.read_json(path)
        if rec.get("status") != "completed":
            continue
        cfg = rec["config"]
        for s in SHOTS:
            rows.append({"method": cfg["method"], "seed": int(cfg["seed"]), "shot": s,
                         "value": float(rec["test"][s][metric]), "device": rec.get("device")})
    return pd.DataFrame(rows, columns=["method", "seed", "shot", "value", "device"])


def choices(results="results/benchmark", dataset: str = "sts-b-dir") -> dict:
    """``{method: choice.json}`` for every tuned method."""
    out = {}
    for path in sorted((Path(results) / dataset).glob("*/choice.json")):
        c = json.loads(path.read_text())
        out[c["method"]] = c
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per method and shot, with the seeds named."""
    if df.empty:
        return pd.DataFrame(columns=["method", "shot", "n", "seeds", "mean", "sd"])
    g = df.groupby(["method", "shot"])
    out = g["value"].agg(["mean", "std", "count"]).reset_index()
    out["seeds"] = g["seed"].apply(lambda s: " ".join(map(str, sorted(s)))).to_numpy()
    return out.rename(columns={"std": "sd", "count": "n"})


def references(results="results/benchmark", dataset: str = "sts-b-dir") -> pd.DataFrame:
    """The reference rows (``references.json``): mean and sd over seeds per reference and shot."""
    path = Path(results) / dataset / "references.json"
    if not path.exists():
        return pd.DataFrame(columns=["reference", "shot", "mean", "sd", "n"])
    r = json.loads(path.read_text())
    rows = []
    for name, v in r["rows"].items():
        for s in SHOTS:
            xs = [v["seeds"][k][s][r["metric"]] for k in v["seeds"]]
            rows.append({"reference": name, "shot": s, "mean": float(np.mean(xs)),
                         "sd": float(np.std(xs, ddof=1)) if len(xs) > 1 else math.nan,
                         "n": len(xs)})
    return pd.DataFrame(rows)


def family_table(df: pd.DataFrame, alpha: float = 0.05, min_seeds: int = 4) -> pd.DataFrame:
    """Every planned cell (``plan.family()``) with at least ``min_seeds`` paired seeds: the paired
    difference ``a - b``, its 95% and Bonferroni intervals (level ``1 - alpha / m``), p, Holm's p,
    the verdict and the minimum detectable effect at the corrected level."""
    cells = []
    for a, b, shot in plan.family():
        sa = df[(df["method"] == a) & (df["shot"] == shot)].set_index("seed")["value"]
        sb = df[(df["method"] == b) & (df["shot"] == shot)].set_index("seed")["value"]
        seeds = sorted(set(sa.index) & set(sb.index))
        if len(seeds) >= min_seeds:
            cells.append((a, b, shot, seeds, sa.loc[seeds].to_numpy(), sb.loc[seeds].to_numpy()))
    cols = ["a", "b", "shot", "n", "mean", "sd", "lo95", "hi95", "lo", "hi", "p", "p_holm",
            "verdict", "mde", "level"]
    if not cells:
        return pd.DataFrame(columns=cols)
    m = len(cells)
    level = 1 - alpha / m
    rows = []
    for a, b, shot, seeds, xa, xb in cells:
        d95, dc = paired_difference(xa, xb, 0.95), paired_difference(xa, xb, level)
        rows.append({"a": a, "b": b, "shot": shot, "n": len(seeds), "mean": d95.mean,
                     "sd": d95.sd, "lo95": d95.lo, "hi95": d95.hi, "lo": dc.lo, "hi": dc.hi,
                     "p": d95.p, "level": level,
                     "verdict": ("lower error" if dc.hi < 0 else "higher error" if dc.lo > 0
                                 else "no effect"),
                     "mde": minimum_detectable_effect(d95.sd, d95.n, alpha / m)})
    from statsmodels.stats.multitest import multipletests
    t = pd.DataFrame(rows, columns=cols)
    t["p_holm"] = multipletests(np.nan_to_num(t["p"].to_numpy(float), nan=1.0), alpha=alpha,
                                method="holm")[1]
    return t


def cut(df: pd.DataFrame, fam: pd.DataFrame) -> dict:
    """What the plan has that the records do not: methods without their seeds, cells not in the
    family."""
    have = df.groupby("method")["seed"].nunique().to_dict() if len(df) else {}
    missing = [m for m in plan.METHODS if have.get(m, 0) < len(plan.SEEDS)]
    in_fam = set(map(tuple, fam[["a", "b", "shot"]].to_numpy().tolist())) if len(fam) else set()
    cells = [c for c in plan.family() if c not in in_fam]
    return {"methods": missing, "seeds_done": {m: have.get(m, 0) for m in missing},
            "cells": cells}


def _name(m: str) -> str:
    from .naming import display_name
    try:
        name = display_name(m)
    except Exception:        # a name the paper has no row for
        return m
    return name.replace("Ours", "the paper's method")     # we are not its authors


def reference_sentence(refs: pd.DataFrame, default_df: pd.DataFrame) -> str:
    """Where the reference rows stand against the defaults table (STS-B-DIR, 3 seeds, CPU)."""
    if not len(refs) or default_df.empty:
        return ""
    r = refs.set_index(["reference", "shot"])["mean"]
    d = summary(default_df)
    parts = []
    for shot in ("median", "few"):
        at = d[d["shot"] == shot].set_index("method")["mean"]
        lose = [m for m, v in at.items() if v > r[("gradient boosting", shot)]]
        parts.append(f"{len(lose)} at the {shot} shot")
        n_methods = len(at)
    mean_lose = [m for m, v in d[d["shot"] == "all"].set_index("method")["mean"].items()
                 if v > r[("training mean", "all")]]
    return (f"Reference rows on STS-B-DIR (test MSE, 0-5 scale): gradient boosting on the pair's "
            f"mean GloVe 6B-50d vectors gets {r[('gradient boosting', 'median')]:.3f} median- and "
            f"{r[('gradient boosting', 'few')]:.3f} few-shot MSE. Of the {n_methods} BiLSTM "
            f"methods at their published defaults ({SCALE}, 3 seeds, CPU), it beats "
            + " and ".join(parts) + f". Predicting the training mean ({r[('training mean', 'all')]:.3f} "
            f"overall) beats "
            + (f"{len(mean_lose)} of them overall ({', '.join(_name(m) for m in mean_lose)})."
               if mean_lose else "none of them overall."))


def findings_text(df: pd.DataFrame, fam: pd.DataFrame, refs: pd.DataFrame, device: str,
                  default_df: pd.DataFrame = None) -> str:
    """The chapter's finding, generated: how many methods beat tuned Vanilla after correction, and
    where the paper's method and the reference rows stand. States its scale."""
    ref = reference_sentence(refs, default_df) if default_df is not None else ""
    if df.empty:
        return ("No tuned benchmark record is stored yet: the runs of docs/benchmark-plan.md are "
                "under way (see what was cut, below). " + ref).strip()
    methods = sorted(set(fam["a"])) if len(fam) else []
    scale = (f"STS-B-DIR, {SCALE}, tuned with 4 trials each on validation data, seeds 0-4, "
             f"{device}")
    if not methods:
        return (f"{scale}: no method has {plan.SEEDS[-1] + 1} paired seeds with Vanilla yet, so "
                f"no comparison is made.")
    better = fam[(fam["verdict"] == "lower error") & (fam["b"] == "vanilla")]
    worse = fam[(fam["verdict"] == "higher error") & (fam["b"] == "vanilla")]
    s = (f"{scale} (interim: the family holds the cells in so far; its correction widens as "
         f"more methods finish): of {len(set(fam.loc[fam['b'] == 'vanilla', 'a']))} methods compared with "
         f"tuned Vanilla at the median and few shots ({len(fam)} cells, Bonferroni), "
         f"{better['a'].nunique()} beat it after correction"
         + (f" ({', '.join(f'{_name(r.a)} {r.shot}' for r in better.itertuples())})"
            if len(better) else "")
         + f" and {worse['a'].nunique()} lost to it"
         + (f" ({', '.join(f'{_name(r.a)} {r.shot}' for r in worse.itertuples())})"
            if len(worse) else "") + ".")
    paper = fam[fam["a"].str.contains("frobenius")]
    if len(paper):
        s += " The paper's method: " + "; ".join(
            f"{_name(r.a)} vs {_name(r.b)} {r.shot} {r.mean:+.3f} MSE [{r.lo:+.3f}, {r.hi:+.3f}] "
            f"({r.verdict})" for r in paper.itertuples()) + "."
    if len(refs):
        hgb = refs[refs["reference"] == "gradient boosting"].set_index("shot")["mean"]
        summ = summary(df)
        for shot in ("median", "few"):
            tuned = summ[summ["shot"] == shot].set_index("method")["mean"]
            losing = sorted(m for m, v in tuned.items() if v > hgb.get(shot, np.inf))
            if len(tuned):
                s += (f" At the {shot} shot, gradient boosting on mean word vectors "
                      f"({hgb[shot]:.3f} MSE) beats {len(losing)} of {len(tuned)} tuned methods.")
    return s


def trials_table(ch: dict, methods=("bmc", "oe")) -> pd.DataFrame:
    """The trials behind the named methods' rows: each point's rung and final validation score."""
    rows = []
    for m in methods:
        c = ch.get(m)
        if not c:
            continue
        for t in c["trials"]:
            rows.append({"method": m, **{k: v for k, v in t["point"].items()},
                         "validation MSE at the rung": t.get("rung_val"),
                         "validation MSE, 10 epochs": t.get("val"), "kept": t.get("kept"),
                         "chosen": t["point"] == c["chosen"]})
    return pd.DataFrame(rows)


def defaults(results_dir="results", dataset: str = "sts-b-dir") -> pd.DataFrame:
    """The defaults table's records (``results/runs/<dataset>``: each method at its published
    defaults) as ``method, seed, shot, value``."""
    from ..datasets import main_metric
    from .record_tables import load_records
    metric = main_metric(dataset)
    rows = []
    root = Path(results_dir) / "runs" / dataset
    if not root.is_dir():
        return pd.DataFrame(columns=["method", "seed", "shot", "value"])
    for rec in load_records(root, status="completed"):
        for s in SHOTS:
            rows.append({"method": rec["config"]["method"], "seed": int(rec["config"]["seed"]),
                         "shot": s, "value": float(rec["test"][s][metric])})
    return pd.DataFrame(rows, columns=["method", "seed", "shot", "value"])


def side_by_side(default_df: pd.DataFrame, tuned_df: pd.DataFrame, refs: pd.DataFrame,
                 shots=("all", "median", "few")) -> pd.DataFrame:
    """One row per method (then the reference rows): defaults and tuned, mean +- sd per shot."""
    def cells(df):
        s = summary(df)
        return {(r.method, r.shot): f"{r.mean:.3f} ± {r.sd:.3f} ({r.n})" if r.n > 1
                else f"{r.mean:.3f} ({r.n})" for r in s.itertuples()}
    d, t = cells(default_df), cells(tuned_df)
    methods = [m for m in plan.METHODS if any((m, s) in d or (m, s) in t for s in shots)]
    rows = [{"method": _name(m), **{f"{s}, defaults": d.get((m, s), "—") for s in shots},
             **{f"{s}, tuned": t.get((m, s), "—") for s in shots}} for m in methods]
    for name in dict.fromkeys(refs["reference"]) if len(refs) else []:
        r = refs[refs["reference"] == name].set_index("shot")
        v = {s: f"{r.loc[s, 'mean']:.3f}" for s in shots}
        rows.append({"method": f"reference: {name}", **{f"{s}, defaults": v[s] for s in shots},
                     **{f"{s}, tuned": v[s] for s in shots}})
    return pd.DataFrame(rows)


def forest_plot(fam: pd.DataFrame):
    """Each cell of the family: its Bonferroni interval (wide bar), 95% interval (line) and mean
    (filled where the corrected interval excludes zero)."""
    import matplotlib.pyplot as plt
    colors = {"median": "#e66100", "few": "#5d3a9b"}
    pairs = list(dict.fromkeys(zip(fam["a"], fam["b"])))
    fig, ax = plt.subplots(figsize=(7.2, 1.2 + 0.45 * len(pairs)))
    for i, (a, b) in enumerate(pairs):
        for k, shot in enumerate(("median", "few")):
            r = fam[(fam["a"] == a) & (fam["b"] == b) & (fam["shot"] == shot)]
            if r.empty:
                continue
            r = r.iloc[0]
            y = i + (k - 0.5) * 0.36
            ax.plot([r["lo"], r["hi"]], [y, y], color=colors[shot], lw=6, alpha=0.3,
                    solid_capstyle="butt")
            ax.plot([r["lo95"], r["hi95"]], [y, y], color=colors[shot], lw=1.4,
                    label=f"{shot} shot")
            ax.plot(r["mean"], y, "o", ms=5, color=colors[shot],
                    mfc=colors[shot] if r["verdict"] != "no effect" else "white")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(pairs)))
    ax.set_yticklabels([f"{_name(a)} - {_name(b)}" for a, b in pairs], fontsize=9)
    ax.set_ylim(len(pairs) - 0.5, -0.5)
    ax.set_xlabel("paired difference in test MSE, STS-B-DIR 0-5 scale (negative = lower error)",
                  fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    ax.grid(axis="x", alpha=0.3)
    h, l = ax.get_legend_handles_labels()
    keep = dict(zip(l, h))
    ax.legend(keep.values(), keep.keys(), fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def front_bullet(results_dir="results", dataset: str = "sts-b-dir") -> str:
    """The front page's bullet on the fair benchmark: its status and the reference rows."""
    bench = Path(results_dir) / "benchmark"
    tuned = collect(bench, dataset)
    fam = family_table(tuned)
    refs = references(bench, dataset)
    if not len(refs) and tuned.empty:
        return ""
    head = "**The fair benchmark** (docs/benchmark-plan.md): "
    if fam.empty:
        head += "every method tuned with one budget, 5 seeds; its runs are under way. "
    else:
        better = fam[(fam["verdict"] == "lower error") & (fam["b"] == "vanilla")]["a"].unique()
        paper = fam[fam["a"].str.contains("frobenius") & (fam["verdict"] == "lower error")]
        n_done = fam.loc[fam["b"] == "vanilla", "a"].nunique()
        n_plan = len([m for m in plan.METHODS if m != "vanilla"])
        worse = fam[fam["a"].str.contains("frobenius") & (fam["verdict"] == "higher error")]
        head += (f"interim, {n_done} of {n_plan} methods have their 5 seeds (the correction covers "
                 f"the {len(fam)} cells in so far, and widens as the rest arrive). "
                 f"{len(better)} of {n_done} beat tuned Vanilla after correction on STS-B-DIR; "
                 f"the paper's method is {'among them' if len(paper) else 'not among them'}"
                 + (" (higher error: " + "; ".join(
                     f"{r.shot} {r.mean:+.3f} MSE [{r.lo:+.3f}, {r.hi:+.3f}]"
                     for r in worse.itertuples()) + ")" if len(worse) else "") + ". ")
    return head + reference_sentence(refs, defaults(results_dir, dataset))
