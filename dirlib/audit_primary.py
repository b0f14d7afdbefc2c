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

from .stats import paired_difference

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
    from statsmodels.stats.power import TTestPower
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                 alternative="two-sided")
    return float(d) * float(sd)


def paper_effect(dataset: str, base: str, shot: str):
    """``(Ours - base, source)`` in the paper's tables for this dataset's base and shot, or
    ``(nan, "")`` when the paper has no such row."""
    row = PAPER_ROWS.get((dataset, base))
    if row is None:
        return math.nan, ""
    from .results import paper_table
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
    (:func:`dirlib.audit.collect`): the paired mean difference, its sd, the uncorrected 95% interval
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
