"""The audit's pre-registered primary family (``docs/audit-plan.md``): its cells, the Bonferroni
correction, Holm's adjusted p values beside it, and each cell's minimum detectable effect.

A cell is one (question, dataset, base, shot). Its value is the paired difference ``a - b`` of two
arms over the seeds both have (:func:`dirlib.stats.paired_difference`). The family is every
planned cell with at least :data:`MIN_SEEDS` paired seeds; its size ``m`` sets the corrected level
``1 - alpha / m`` of every cell's interval, and a cell's verdict is that interval excluding zero.

>>> cells = primary_table(_example_frame())
>>> [(r.question, r.shot, r.n, r.verdict) for r in cells.itertuples()]
[('Q1', 'median', 4, 'lower error'), ('Q1', 'few', 4, 'no effect')]
>>> round(float(cells["level"].iloc[0]), 3)    # two cells in the family: 1 - 0.05 / 2
0.975
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets import main_metric, title
from ..stats import paired_difference

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 4
PRIMARY_SHOTS = ("median", "few")


@dataclass(frozen=True)
class Question:
    key: str
    text: str        # what it asks, in words
    short: str       # a label for plots and tables
    a: str           # arm with the thing (code arms under rule (b))
    b: str           # arm without it
    paper: bool      # the paper's own effect (method against base) is its counterpart


QUESTIONS = (
    Question("Q1", "the text's method (phases 1-3) against its base", "text method vs base",
             "phase1>text", "base", True),
    Question("Q2", "the code protocol (grid chosen on held-out validation data) against the base",
             "code protocol vs base", "code@heldout", "base", True),
    Question("Q3t", "the norm term against its no-norm control, text protocol",
             "norm term, text", "text", "text-no-norm", False),
    Question("Q3c", "the norm term against its no-norm control, code protocol",
             "norm term, code", "code@heldout", "code-no-norm@heldout", False),
    Question("Q4", "the norm term with the norm net fitted to convergence, code protocol",
             "norm term, fitted net", "code-fitted@heldout", "code-no-norm@heldout", False),
    Question("Q5", "the text's method against its base, both tuned on validation data",
             "tuned method vs tuned base", "tuned:frobenius", "tuned:base", True),
)
QUESTION = {q.key: q for q in QUESTIONS}

#: the planned cells: {dataset: {question: bases}} (docs/audit-plan.md)
PLAN = {
    "sts-b-dir": {"Q1": ("vanilla", "lds", "ranksim", "conr"),
                  "Q2": ("vanilla", "lds", "ranksim", "conr"),
                  "Q3t": ("vanilla", "lds", "ranksim", "conr"),
                  "Q3c": ("vanilla", "lds", "ranksim", "conr"),
                  "Q4": ("vanilla", "lds", "ranksim", "conr"),
                  "Q5": ("vanilla",)},
    "utkface-dir": {"Q2": ("vanilla", "lds"), "Q3t": ("vanilla", "lds"),
                    "Q3c": ("vanilla", "lds"), "Q4": ("vanilla", "lds"), "Q5": ("vanilla",)},
}

#: the paper's row of each base, for its own effect ``Ours - base`` (transcribed tables); UTKFace-DIR
#: has no table in the paper, so AgeDB-DIR's Table 1 stands in and is labelled as another dataset
PAPER_ROWS = {
    ("sts-b-dir", "lds"): (3, "STS-B-DIR", "LDS", "MSE"),
    ("sts-b-dir", "ranksim"): (3, "STS-B-DIR", "RANKSIM", "MSE"),
    ("utkface-dir", "vanilla"): (1, "AgeDB-DIR", "VANILLA", "MAE"),
}


def planned_cells() -> list:
    """Every planned (question, dataset, base, shot), in plan order."""
    return [(q, ds, b, s) for ds, qs in PLAN.items() for q, bases in qs.items() for b in bases
            for s in PRIMARY_SHOTS]


def minimum_detectable_effect(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """The smallest true paired mean difference that a two-sided paired t test over ``n`` seeds
    detects with probability ``power`` at level ``alpha``, given the differences' ``sd``:
    ``d * sd`` with ``d`` from ``statsmodels``' ``TTestPower``. NaN when undefined (``n < 2``).

    >>> round(minimum_detectable_effect(1.0, 5, 0.05), 2)    # 5 seeds, uncorrected: 1.68 sd
    1.68
    """
    if n < 2 or not np.isfinite(sd):
        return math.nan
    from scipy import stats
    from scipy.optimize import brentq
    # the two-sided paired t test's power at standardised effect d: P(|T| > t_crit) with T
    # noncentral t (df n-1, noncentrality d sqrt(n)), the formula statsmodels' TTestPower uses;
    # it is monotone in d, so a bracketing root finder is safe. (TTestPower.solve_power's own
    # search is not, at these n and corrected alphas: it returned a smaller d at 0.05/38 than at
    # 0.05/28.)
    df, crit = n - 1, stats.t.isf(alpha / 2, n - 1)

    def power_at(d):
        nc = d * math.sqrt(n)
        # the far tail (the wrong sign) is tiny, and scipy's nct returns NaN for it at times
        return stats.nct.sf(crit, df, nc) + float(np.nan_to_num(stats.nct.cdf(-crit, df, nc)))

    hi = 1.0
    while not power_at(hi) >= power:      # grow the bracket (nct is NaN far out: stay near)
        hi *= 1.5
        if hi > 200:
            return math.nan
    d = brentq(lambda x: power_at(x) - power, 1e-9, hi, xtol=1e-12)
    return float(d) * float(sd)


def paper_effect(dataset: str, base: str, shot: str):
    """``(Ours - base, source)`` in the paper's tables for this dataset's base and shot, or
    ``(nan, "")`` when the paper has no such row."""
    row = PAPER_ROWS.get((dataset, base))
    if row is None:
        return math.nan, ""
    from .record_tables import paper_table
    table, ds, method, metric = row
    t = paper_table(table)
    t = t[(t["dataset"] == ds) & (t["metric"] == metric) & (t["shot"] == shot)]
    val = dict(zip(t["method"], t["value"]))
    if method not in val or "Ours" not in val:
        return math.nan, ""
    other = "" if ds.lower() == dataset else f" ({ds}, another dataset)"
    return float(val["Ours"] - val[method]), f"paper Table {table}{other}"


def primary_table(df: pd.DataFrame, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS,
                  paper: bool = True) -> pd.DataFrame:
    """One row per planned cell with at least ``min_seeds`` paired seeds in ``df``
    (:func:`dirlib.paper.audit.collect`): the paired mean difference, its sd, the uncorrected 95% interval
    (``lo95``, ``hi95``), the corrected interval at ``level = 1 - alpha / m`` (``lo``, ``hi``),
    ``p``, Holm's adjusted p (``p_holm``), the ``verdict`` (``lower error`` / ``higher error`` /
    ``no effect``), the minimum detectable effect at the corrected level (``mde``) and the paper's
    effect in the same units (``paper``, ``paper_source``)."""
    rows = []
    for qkey, ds, base, shot in planned_cells():
        q = QUESTION[qkey]
        sub = df[(df["dataset"] == ds) & (df["base"] == base) & (df["shot"] == shot)]
        sa = sub[sub["arm"] == q.a].set_index("seed")["value"]
        sb = sub[sub["arm"] == q.b].set_index("seed")["value"]
        seeds = sorted(set(sa.index) & set(sb.index))
        if len(seeds) < min_seeds:
            continue
        a, b = sa.loc[seeds].to_numpy(), sb.loc[seeds].to_numpy()
        rows.append({"question": qkey, "dataset": ds, "base": base, "shot": shot,
                     "n": len(seeds), "seeds": seeds, "a": a, "b": b})
    cols = ["question", "dataset", "base", "shot", "n", "seeds", "mean", "sd", "lo95", "hi95", "p",
            "level", "lo", "hi", "p_holm", "verdict", "holm_only", "mde", "paper", "paper_source"]
    if not rows:
        return pd.DataFrame(columns=cols)
    m = len(rows)
    level = 1 - alpha / m
    for r in rows:
        a, b = r.pop("a"), r.pop("b")
        d95 = paired_difference(a, b, 0.95)
        dc = paired_difference(a, b, level)
        r.update(mean=d95.mean, sd=d95.sd, lo95=d95.lo, hi95=d95.hi, p=d95.p, level=level,
                 lo=dc.lo, hi=dc.hi,
                 verdict=("lower error" if dc.hi < 0 else "higher error" if dc.lo > 0
                          else "no effect"),
                 mde=minimum_detectable_effect(d95.sd, d95.n, alpha / m))
        pe, src = paper_effect(r["dataset"], r["base"], r["shot"]) if (
            paper and QUESTION[r["question"]].paper) else (math.nan, "")
        r.update(paper=pe, paper_source=src)
    from statsmodels.stats.multitest import multipletests
    ps = np.array([r["p"] for r in rows], dtype=float)
    holm_reject, p_holm, _, _ = multipletests(np.nan_to_num(ps, nan=1.0), alpha=alpha,
                                              method="holm")
    for r, ph, hr in zip(rows, p_holm, holm_reject):
        r["p_holm"] = float(ph)
        r["holm_only"] = bool(hr and r["verdict"] == "no effect")
    return pd.DataFrame(rows, columns=cols)


def missing_cells(table: pd.DataFrame) -> list:
    """The planned cells that are not in the family (fewer than the minimum seeds)."""
    have = set(map(tuple, table[["question", "dataset", "base", "shot"]].to_numpy().tolist()))
    return [c for c in planned_cells() if c not in have]


def _example_frame() -> pd.DataFrame:
    """A tiny audit frame for the doctest: Q1 on one base, four seeds."""
    rows = []
    for seed, (base_med, text_med, base_few, text_few) in enumerate(
            [(2.0, 1.5, 3.0, 3.2), (2.1, 1.55, 3.1, 2.9), (1.9, 1.42, 2.8, 3.0),
             (2.05, 1.52, 3.3, 3.1)]):
        for arm, med, few in (("base", base_med, base_few), ("phase1>text", text_med, text_few)):
            rows += [{"dataset": "sts-b-dir", "base": "vanilla", "seed": seed, "arm": arm,
                      "shot": "median", "metric": "mse", "value": med},
                     {"dataset": "sts-b-dir", "base": "vanilla", "seed": seed, "arm": arm,
                      "shot": "few", "metric": "mse", "value": few}]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ reading
DATASET_NAMES = {ds: title(ds) for ds in PLAN}
METRICS = {ds: main_metric(ds).upper() for ds in PLAN}
#: each dataset's metric with its unit, for sentences a reader reads without the table
UNITS = {"sts-b-dir": "MSE", "utkface-dir": "years"}
SCALE_NOTES = {"sts-b-dir": " (0-5 scale)"}
#: an MDE above this (in the metric's units) means the arm's fine-tunes scatter so widely (the
#: UTKFace-DIR code arms collapse) that no effect of a useful size could be seen
COLLAPSE_MDE = {"utkface-dir": 20.0}


def _name(ds: str) -> str:
    return DATASET_NAMES.get(ds, ds)


def _base(b: str) -> str:
    from .naming import display_name
    return display_name(b)


def _iv(lo: float, hi: float) -> str:
    from .naming import signed
    return f"[{signed(lo)}, {signed(hi)}]"


def cell_text(r) -> str:
    """``Vanilla median +0.32 [+0.05, +0.59] (95%: [+0.12, +0.53])``: a cell with its corrected
    interval and the uncorrected one beside it."""
    from .naming import signed
    return (f"{_base(r.base)} {r.shot} {signed(r.mean)} {_iv(r.lo, r.hi)} "
            f"(95%: {_iv(r.lo95, r.hi95)})")


def _range(values, unit: str) -> str:
    v = [x for x in values if np.isfinite(x)]
    if not v:
        return "an undefined size"
    lo, hi = min(v), max(v)
    return f"{lo:.2f} {unit}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f} {unit}"


def dataset_paragraph(table: pd.DataFrame, dataset: str) -> str:
    """The primary family's verdicts for one dataset, one sentence per question: the cells whose
    corrected interval excludes zero (with the uncorrected interval beside), and how large an effect
    the other cells could have shown (their minimum detectable effects)."""
    t = table[table["dataset"] == dataset]
    if t.empty:
        return f"**{_name(dataset)}**: no primary cell has {MIN_SEEDS} paired seeds yet."
    m, level = len(table), float(table["level"].iloc[0])
    unit = METRICS.get(dataset, "")
    seeds = sorted({s for ss in t["seeds"] for s in ss})
    out = [f"**{_name(dataset)}**, primary questions (test {unit}, paired over seeds "
           f"{', '.join(map(str, seeds))}; Bonferroni over all {m} primary cells of both datasets, "
           f"so each interval is at level {100 * level:.2f}%, the 95% interval beside it; negative "
           f"= lower error)."]
    for q in QUESTIONS:
        g = t[t["question"] == q.key]
        if g.empty:
            continue
        parts = []
        for word in ("lower error", "higher error"):
            hits = [cell_text(r) for r in g.itertuples() if r.verdict == word]
            if hits:
                parts.append(f"{word} for " + "; ".join(hits))
        rest = g[g["verdict"] == "no effect"]
        if len(rest):
            where = f"in the other {len(rest)} cells" if parts else f"in any of its {len(g)} cells"
            parts.append(f"no detectable effect {where}, where only effects larger than "
                         f"{_range(rest['mde'], unit)} had an 80% chance of detection")
        holm = [f"{_base(r.base)} {r.shot}" for r in g.itertuples() if r.holm_only]
        if holm:
            parts.append("Holm's step-down would also reject " + ", ".join(holm))
        out.append(f"{q.key}, {q.text}: " + "; ".join(parts) + ".")
    return " ".join(out)


def bullets(table: pd.DataFrame, published: dict = None) -> list:
    """At most five plain-words bullets of at most 30 words each, one per group of questions, from
    the corrected verdicts; the last one from the published-script check (``published``:
    ``results/published-bases.json``)."""
    groups = (("Q1", "Q5"), ("Q2",), ("Q3t", "Q3c", "Q4"))
    labels = {("Q1", "Q5"): "The text's method against its base",
              ("Q2",): "The published code's protocol against its base",
              ("Q3t", "Q3c", "Q4"): "The norm term against its no-norm control"}
    out = []
    for keys in groups:
        g = table[table["question"].isin(keys)]
        if g.empty:
            continue
        hit = {w: [f"{_name(r.dataset)} {_base(r.base)} {r.shot}" for r in g.itertuples()
                   if r.verdict == w] for w in ("lower error", "higher error")}
        rest = g[g["verdict"] == "no effect"]
        s = f"**{labels[keys]}** ({', '.join(k for k in keys if k in set(g['question']))}): "
        found = [f"{w} in {len(v)} ({', '.join(v) if len(v) <= 2 else 'see the chapter'})"
                 for w, v in hit.items() if v]
        s += "; ".join(found) if found else f"no detectable effect in {len(g)} cells"
        collapsed = ""
        if len(rest):
            parts = []
            for ds in DATASET_NAMES:
                r = rest[rest["dataset"] == ds]
                if not len(r):
                    continue
                cap = COLLAPSE_MDE.get(ds)
                wide = r[r["mde"] > cap] if cap is not None else r.iloc[:0]
                ok = r.drop(wide.index)
                unit = UNITS.get(ds, METRICS[ds])
                if len(ok):
                    parts.append(f"{_range(ok['mde'], unit)} on {_name(ds)}{SCALE_NOTES.get(ds, '')}")
                if len(wide):
                    collapsed += (f" {len(wide)} {_name(ds)} cells collapse (over {cap:g} "
                                  f"{unit}).")
            if parts:
                s += (f"{'; elsewhere' if found else ''}; effects below "
                      + " or ".join(parts) + " could go unseen")
        out.append(s + "." + collapsed)
    if published:
        zero = [n for n, v in published["bases"].items() if v.get("loaded") == 0]
        stops = [n for n, v in published["bases"].items() if v.get("loaded") is None]
        if zero or stops:
            total = published["resnet18_tensors"]
            s = "**The published post-hoc script** loads "
            if zero:
                s += f"0 of {total} tensors from its {' and '.join(zero)} bases (a random start)"
            if stops:
                s += f"{' and ' if zero else ''}stops on {', '.join(stops)}"
            out.append(s + ".")
    return out[:5]


def forest_plot(table: pd.DataFrame, title: str = ""):
    """Every primary cell: its corrected interval (wide, light bar), its uncorrected 95% interval
    (thin dark line), the mean (filled when the corrected interval excludes zero), zero, and the
    paper's own effect where it has one (open diamond). One panel per dataset, stacked, each on its
    own metric; one row per question and base; median and few side by side."""
    import matplotlib.pyplot as plt
    datasets = [ds for ds in DATASET_NAMES if (table["dataset"] == ds).any()]
    colors = {"median": "#e66100", "few": "#5d3a9b"}
    # planned questions first, then any other rows the table brings (the confirmatory cells)
    extra = [k for k in dict.fromkeys(table["question"]) if k not in QUESTION]
    rows_by_ds = {ds: [(q.key, b) for q in QUESTIONS for b in PLAN[ds].get(q.key, ())
                       if ((table["dataset"] == ds) & (table["question"] == q.key)
                           & (table["base"] == b)).any()]
                  + [(k, b) for k in extra for b in dict.fromkeys(
                      table.loc[(table["dataset"] == ds) & (table["question"] == k), "base"])]
                  for ds in datasets}
    heights = [max(len(rows_by_ds[ds]), 1) for ds in datasets] or [1]
    fig, axes = plt.subplots(len(heights), 1, squeeze=False,
                             figsize=(7.6, 1.2 + 0.42 * sum(heights) + 0.5 * len(heights)),
                             gridspec_kw={"height_ratios": heights})
    for ax, ds in zip(axes[:, 0], datasets):
        rows = rows_by_ds[ds]
        t = table[table["dataset"] == ds]
        for i, (qk, b) in enumerate(rows):
            for k, shot in enumerate(PRIMARY_SHOTS):
                r = t[(t["question"] == qk) & (t["base"] == b) & (t["shot"] == shot)]
                if r.empty:
                    continue
                r = r.iloc[0]
                y = i + (k - 0.5) * 0.36
                c = colors[shot]
                ax.plot([r["lo"], r["hi"]], [y, y], color=c, lw=6, alpha=0.3,
                        solid_capstyle="butt")
                ax.plot([r["lo95"], r["hi95"]], [y, y], color=c, lw=1.4, label=f"{shot} shot")
                filled = r["verdict"] != "no effect"
                ax.plot(r["mean"], y, "o", ms=5, color=c, mfc=c if filled else "white")
                if "paper" in r and np.isfinite(r["paper"]):
                    ax.plot(r["paper"], y, "D", ms=6, mfc="none", mec="black", mew=1.1,
                            label="the paper's effect")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([f"{qk} {QUESTION[qk].short}, {_base(b)}" if qk in QUESTION
                            else f"{qk}: norm term, text, seeds 5-19, {_base(b)}"
                            for qk, b in rows], fontsize=9)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(f"{_name(ds)}: paired difference in test {METRICS.get(ds, '')} "
                      f"(negative = lower error)", fontsize=9)
        ax.tick_params(axis="x", labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    from matplotlib.lines import Line2D
    handles.append(Line2D([], [], color="grey", lw=6, alpha=0.3))
    labels.append("corrected interval")
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def seed_differences(df: pd.DataFrame, question: str) -> pd.DataFrame:
    """The per-seed paired differences behind one question's cells: columns ``dataset, base, shot,
    seed, difference`` (``a - b`` of :data:`QUESTIONS`)."""
    q = QUESTION[question]
    rows = []
    for (ds, base, shot), g in df[df["shot"].isin(PRIMARY_SHOTS)].groupby(
            ["dataset", "base", "shot"]):
        a = g[g["arm"] == q.a].set_index("seed")["value"]
        b = g[g["arm"] == q.b].set_index("seed")["value"]
        for seed in sorted(set(a.index) & set(b.index)):
            rows.append({"dataset": ds, "base": base, "shot": shot, "seed": int(seed),
                         "difference": float(a[seed] - b[seed])})
    return pd.DataFrame(rows, columns=["dataset", "base", "shot", "seed", "difference"])


def plot_seed_differences(df: pd.DataFrame, table: pd.DataFrame, question: str, dataset: str,
                          ax=None):
    """One question on one dataset, seed by seed (seaborn): each seed's paired difference as a dot,
    per base and shot, with the cell's mean, its corrected interval (wide, light) and its 95%
    interval (thin); zero marked. Returns the axes."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    d = seed_differences(df, question)
    d = d[d["dataset"] == dataset]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 0.5 + 0.55 * max(d["base"].nunique(), 1) * 2))
    if d.empty:
        ax.set_axis_off()
        return ax
    d = d.assign(row=[f"{_base(b)}, {s}" for b, s in zip(d["base"], d["shot"])])
    order = [f"{_base(b)}, {s}" for b in PLAN[dataset].get(question, ()) for s in PRIMARY_SHOTS
             if ((d["base"] == b) & (d["shot"] == s)).any()]
    sns.stripplot(data=d, x="difference", y="row", hue="shot", order=order, ax=ax, size=6,
                  jitter=0.15, palette={"median": "#e66100", "few": "#5d3a9b"}, legend=False)
    t = table[(table["question"] == question) & (table["dataset"] == dataset)]
    for i, label in enumerate(order):
        base, shot = label.rsplit(", ", 1)
        r = t[(t["base"].map(_base) == base) & (t["shot"] == shot)]
        if r.empty:
            continue
        r = r.iloc[0]
        ax.plot([r["lo"], r["hi"]], [i, i], color="grey", lw=7, alpha=0.25, solid_capstyle="butt")
        ax.plot([r["lo95"], r["hi95"]], [i, i], color="black", lw=1.2)
        ax.plot(r["mean"], i, "|", color="black", ms=14, mew=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_ylabel("")
    ax.set_xlabel(f"{question}: {QUESTION[question].short}, paired difference in test "
                  f"{METRICS.get(dataset, '')} per seed", fontsize=9)
    ax.tick_params(labelsize=9)
    ax.grid(axis="x", alpha=0.3)
    return ax


def code_grid(record: dict, metric: str) -> pd.DataFrame:
    """A code-family record's grid as a table: rows the norm net's epochs (``fitted`` for
    ``code-fitted``, ``none`` without a norm term), columns the fine-tune epochs, values the
    overall test ``metric`` of the whole-validation fine-tune."""
    rows = {}
    for g in record.get("grid", []):
        if g["fit_on"] != "val":
            continue
        key = ("none" if record.get("variant") == "code-no-norm" else "fitted") \
            if g["linear_epochs"] is None else str(g["linear_epochs"])
        rows[key] = {e["epoch"]: e["test"]["all"][metric] for e in g["epochs"]}
    out = pd.DataFrame(rows).T
    out.index.name, out.columns.name = "norm-net epochs", "fine-tune epochs"
    return out


def plot_code_grid(record: dict, metric: str, base_value: float = None, ax=None):
    """The code protocol's grid (seaborn heatmap): test error per norm-net epochs x fine-tune
    epochs, each cell annotated; ``base_value``: the base model's test error, named in the title,
    so cells worse than the start stand out (a diverging palette centred on it)."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    grid = code_grid(record, metric)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 0.9 + 0.45 * len(grid)))
    centre = base_value if base_value is not None else float(np.nanmedian(grid.to_numpy()))
    sns.heatmap(grid, ax=ax, cmap="RdBu_r", center=centre, annot=True, fmt=".1f",
                annot_kws={"fontsize": 8.5}, cbar_kws={"label": f"test {metric.upper()}"})
    ax.set_title(f"{record.get('variant')}: test {metric.upper()} over the grid"
                 + (f" (the base before fine-tuning: {base_value:.2f}; red is worse)"
                    if base_value is not None else ""), fontsize=9)
    ax.tick_params(labelsize=9)
    return ax
