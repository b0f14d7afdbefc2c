"""The confirmatory test of the norm term (``docs/confirmatory-plan.md``), read from its records.

Question Q3t, ``text - text-no-norm`` (test MSE), on STS-B-DIR's Vanilla and LDS bases at the
median and few shots: 4 cells over the fresh seeds 5-19, Holm at a family-wise error rate of 0.05,
each cell's Bonferroni interval at ``1 - 0.05/4`` beside its 95% one. The exploratory seeds 0-4
(``results/audit``) are shown beside it and never pooled.

::

    python -m dirlib audit confirmatory        # the table, the verdict, results/tables/audit/

A cell's verdict (the plan's rule): ``confirmed`` (Holm rejects, lower error with the norm term),
``harmful`` (Holm rejects, higher error), ``refuted`` (no rejection, and the Bonferroni interval
lies wholly above the exploratory estimate), else ``inconclusive``. No verdict is given before
every cell has its :data:`N_PLANNED` seeds.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ..stats import paired_difference
from .audit_primary import _base, minimum_detectable_effect

DATASET = "sts-b-dir"
BASES = ("vanilla", "lds")
SHOTS = ("median", "few")
SEEDS = tuple(range(5, 20))
N_PLANNED = len(SEEDS)
ALPHA = 0.05
ARM_A, ARM_B, ARM_BASE = "text", "text-no-norm", "base"
RESULTS = "results/confirmatory"
EXPLORATORY = "results/audit"
EXPLORATORY_SEEDS = tuple(range(0, 5))
#: the scale of every finding: the audit's STS-B-DIR recipe (docs/confirmatory-plan.md)
SCALE = ("STS-B-DIR (BiLSTM of 128 units on GloVe 6B-50d, 10 epochs, CPU); test MSE on the 0-5 "
         "similarity scale")


def _pairs(df: pd.DataFrame, base: str, shot: str, a: str, b: str, seeds) -> tuple:
    sub = df[(df["dataset"] == DATASET) & (df["base"] == base) & (df["shot"] == shot)]
    sa = sub[sub["arm"] == a].set_index("seed")["value"]
    sb = sub[sub["arm"] == b].set_index("seed")["value"]
    common = sorted(set(sa.index) & set(sb.index) & set(seeds))
    return common, sa.loc[common].to_numpy(float), sb.loc[common].to_numpy(float)


def cell_verdict(p_holm: float, mean: float, lo: float, exploratory: float) -> str:
    """The plan's rule for one cell.

    >>> cell_verdict(0.01, -0.05, -0.09, -0.08), cell_verdict(0.01, 0.05, 0.01, -0.08)
    ('confirmed', 'harmful')
    >>> cell_verdict(0.4, -0.01, -0.04, -0.08), cell_verdict(0.4, -0.03, -0.10, -0.08)
    ('refuted', 'inconclusive')
    """
    if p_holm < ALPHA:
        return "confirmed" if mean < 0 else "harmful"
    if lo > exploratory:
        return "refuted"
    return "inconclusive"


def study_verdict(cells) -> str:
    """The study's verdict from its cells' verdicts (``pending`` while any is pending).

    >>> study_verdict(["confirmed", "inconclusive", "refuted", "refuted"])
    'confirmed'
    >>> study_verdict(["refuted", "harmful", "refuted", "refuted"])
    'refuted'
    >>> study_verdict(["confirmed", "harmful", "refuted", "refuted"])
    'inconclusive'
    """
    cells = list(cells)
    if any(c == "pending" for c in cells):
        return "pending"
    if any(c == "confirmed" for c in cells) and not any(c == "harmful" for c in cells):
        return "confirmed"
    if all(c in ("refuted", "harmful") for c in cells):
        return "refuted"
    return "inconclusive"


def exploratory_table(df: pd.DataFrame) -> pd.DataFrame:
    """The exploratory cells (seeds 0-4 of the audit): mean, sd and 95% interval per cell."""
    rows = []
    for base in BASES:
        for shot in SHOTS:
            seeds, a, b = _pairs(df, base, shot, ARM_A, ARM_B, EXPLORATORY_SEEDS)
            d = paired_difference(a, b, 0.95) if len(seeds) >= 2 else None
            rows.append({"base": base, "shot": shot, "n": len(seeds),
                         "mean": d.mean if d else math.nan, "sd": d.sd if d else math.nan,
                         "lo95": d.lo if d else math.nan, "hi95": d.hi if d else math.nan})
    return pd.DataFrame(rows)


def table(df: pd.DataFrame, exploratory: pd.DataFrame) -> pd.DataFrame:
    """One row per planned cell: the confirmatory seeds' paired difference (mean, sd, 95% and
    Bonferroni intervals, p, Holm p, MDE from its own sd), the exploratory estimate, the verdict,
    and beside it (exploratory, untested) the harm of the extra epochs ``text-no-norm - base``, the
    net ``text - base`` and the share of the harm the norm term takes back."""
    from statsmodels.stats.multitest import multipletests
    level = 1 - ALPHA / (len(BASES) * len(SHOTS))
    rows = []
    for base in BASES:
        for shot in SHOTS:
            seeds, a, b = _pairs(df, base, shot, ARM_A, ARM_B, SEEDS)
            row = {"base": base, "shot": shot, "n": len(seeds), "seeds": seeds}
            ex = exploratory[(exploratory["base"] == base) & (exploratory["shot"] == shot)]
            row["exploratory"] = float(ex["mean"].iloc[0]) if len(ex) else math.nan
            if len(seeds) >= 2:
                d95, dc = paired_difference(a, b, 0.95), paired_difference(a, b, level)
                row.update(mean=d95.mean, sd=d95.sd, lo95=d95.lo, hi95=d95.hi, p=d95.p,
                           level=level, lo=dc.lo, hi=dc.hi,
                           mde=minimum_detectable_effect(d95.sd, d95.n, ALPHA / 4))
                hs, hn, hb = _pairs(df, base, shot, ARM_B, ARM_BASE, seeds)
                if len(hs) >= 2:
                    harm = paired_difference(hn, hb, 0.95)
                    net = paired_difference(a, hb, 0.95) if hs == seeds else None
                    # a share of the harm means something only where there is a harm
                    row.update(harm=harm.mean, harm_lo=harm.lo, harm_hi=harm.hi,
                               net=net.mean if net else math.nan,
                               recovered=(-d95.mean / harm.mean) if harm.lo > 0 else math.nan)
            rows.append(row)
    t = pd.DataFrame(rows)
    for c in ("mean", "sd", "lo95", "hi95", "p", "level", "lo", "hi", "mde", "harm", "harm_lo",
              "harm_hi", "net", "recovered"):
        if c not in t:
            t[c] = math.nan
    ps = t["p"].to_numpy(float)
    t["p_holm"] = multipletests(np.nan_to_num(ps, nan=1.0), alpha=ALPHA, method="holm")[1]
    t["verdict"] = [cell_verdict(r.p_holm, r.mean, r.lo, r.exploratory)
                    if r.n >= N_PLANNED else "pending" for r in t.itertuples()]
    return t


def _iv(lo, hi) -> str:
    """An interval at three places: these effects are hundredths of an MSE point."""
    from .naming import signed
    return f"[{signed(lo, 3)}, {signed(hi, 3)}]"


_name = _base       # the method's display name, as the audit writes it


def summary(t: pd.DataFrame) -> str:
    """The verdict in words, generated from ``t`` (:func:`table`), with the scale."""
    verdict = study_verdict(t["verdict"])
    seeds = sorted({s for ss in t["seeds"] for s in ss})
    if verdict == "pending":
        have = ", ".join(f"{_name(r.base)} {r.shot} {r.n}" for r in t.itertuples())
        return (f"The confirmatory test of the norm term (docs/confirmatory-plan.md) is not "
                f"finished: it needs {N_PLANNED} fresh seeds per cell, and the records hold "
                f"{have}. No verdict is given before then.")
    cells = "; ".join(
        f"{_name(r.base)} {r.shot} {r.mean:+.3f} MSE (corrected {_iv(r.lo, r.hi)}, Holm p "
        f"{r.p_holm:.2g}, exploratory {r.exploratory:+.3f}): {r.verdict}"
        for r in t.itertuples())
    return (f"Confirmatory test of the norm term, {SCALE}, fresh seeds {seeds[0]}-{seeds[-1]} "
            f"(n = {int(t['n'].min())} per cell): **{verdict}**. Text method minus its no-norm "
            f"control, per cell: {cells}.")


def harm_sentence(t: pd.DataFrame) -> str:
    """The norm term's effect against the harm of the extra fine-tune epochs, per cell."""
    if study_verdict(t["verdict"]) == "pending":
        return ""                  # read with the verdict, not before
    parts = []
    for r in t.itertuples():
        if not np.isfinite(r.harm):
            continue
        share = (f"; the norm term takes back {100 * r.recovered:.0f}% of it"
                 if np.isfinite(r.recovered) else
                 "; the extra epochs have no detectable harm here, so no share is given")
        parts.append(f"{_name(r.base)} {r.shot}: the extra epochs alone {r.harm:+.3f} "
                     f"{_iv(r.harm_lo, r.harm_hi)}, the text method against its base "
                     f"{r.net:+.3f}{share}")
    if not parts:
        return ""
    return ("Against the harm of the extra fine-tune epochs (exploratory, 95% intervals, same "
            "seeds): " + ". ".join(parts) + ".")


#: the forest plot's row label of the confirmatory cells (dirlib.paper.audit_primary.forest_plot)
FOREST_KEY = "Q3t confirm."


def forest_rows(t: pd.DataFrame) -> pd.DataFrame:
    """The confirmatory cells as rows of the audit's forest plot: their own family (Bonferroni over
    4 cells), never the audit's 38; filled where Holm rejects."""
    rows = []
    for r in t.itertuples():
        if r.verdict == "pending" or not np.isfinite(r.mean):
            continue             # no interim estimate is drawn before the planned seeds are in
        verdict = ("lower error" if r.verdict == "confirmed" else
                   "higher error" if r.verdict == "harmful" else "no effect")
        rows.append({"question": FOREST_KEY, "dataset": DATASET, "base": r.base, "shot": r.shot,
                     "n": r.n, "mean": r.mean, "lo": r.lo, "hi": r.hi, "lo95": r.lo95,
                     "hi95": r.hi95, "verdict": verdict, "paper": math.nan})
    return pd.DataFrame(rows)


def front_bullet(t: pd.DataFrame) -> str:
    """The front page's bullet on the one signal: its exploratory numbers and its status."""
    ex = t[["base", "shot", "exploratory"]]
    lo, hi = float(ex["exploratory"].min()), float(ex["exploratory"].max())
    s = (f"**The one signal in the paper's favour** (Q3t, exploratory): over seeds 0-4 the norm "
         f"term lowered STS-B-DIR median- and few-shot test MSE (0-5 scale) by {-hi:.2f}-{-lo:.2f} "
         f"against its no-norm control, Vanilla and LDS bases (95% intervals exclude zero, "
         f"corrected ones do not). ")
    verdict = study_verdict(t["verdict"])
    if verdict == "pending":
        s += (f"Its pre-registered confirmatory test on fresh seeds 5-19 is under way "
              f"({int(t['n'].min())} of {N_PLANNED} seeds per cell): no verdict yet.")
    else:
        s += (f"Confirmatory test, fresh seeds 5-19 (BiLSTM, 10 epochs, CPU): **{verdict}** "
              f"(" + "; ".join(f"{_name(r.base)} {r.shot} {r.mean:+.3f} {_iv(r.lo, r.hi)}"
                               for r in t.itertuples()) + ", corrected).")
        if t["net"].notna().all():
            s += (" Against its base, the text method as a whole (its extra fine-tune epochs "
                  "included) changes the MSE by " + "; ".join(
                      f"{_name(r.base)} {r.shot} {r.net:+.3f}" for r in t.itertuples())
                  + " (exploratory).")
    return s


def seed_differences(df: pd.DataFrame, seeds) -> pd.DataFrame:
    """``text - text-no-norm`` per (base, shot, seed) over ``seeds``."""
    rows = []
    for base in BASES:
        for shot in SHOTS:
            ss, a, b = _pairs(df, base, shot, ARM_A, ARM_B, seeds)
            rows += [{"base": base, "shot": shot, "seed": s, "diff": x - y}
                     for s, x, y in zip(ss, a, b)]
    return pd.DataFrame(rows, columns=["base", "shot", "seed", "diff"])


def plot(t: pd.DataFrame, confirm: pd.DataFrame, explore: pd.DataFrame):
    """One row per cell: the exploratory seeds 0-4 (grey, their 95% interval) above the
    confirmatory seeds 5-19 (colour; the Bonferroni interval as a wide bar and the 95% one as a
    line once every cell has its seeds). ``confirm`` and ``explore``: :func:`seed_differences`."""
    import matplotlib.pyplot as plt
    colors = {"median": "#e66100", "few": "#5d3a9b"}
    cells = [(b, s) for b in BASES for s in SHOTS]
    fig, ax = plt.subplots(figsize=(7.2, 1.4 + 0.75 * len(cells)))
    for i, (base, shot) in enumerate(cells):
        r = t[(t["base"] == base) & (t["shot"] == shot)].iloc[0]
        e = explore[(explore["base"] == base) & (explore["shot"] == shot)]
        c = confirm[(confirm["base"] == base) & (confirm["shot"] == shot)]
        ye, yc = i - 0.18, i + 0.18
        ax.plot(e["diff"], [ye] * len(e), "o", mfc="white", mec="grey", ms=4)
        if len(e) >= 2:
            d = paired_difference(e["diff"].to_numpy(), np.zeros(len(e)), 0.95)
            ax.plot([d.lo, d.hi], [ye, ye], color="grey", lw=1.2)
        if r["verdict"] != "pending":    # nothing confirmatory is drawn before its seeds are in
            ax.plot(c["diff"], [yc] * len(c), "o", color=colors[shot], ms=3.5, alpha=0.7)
            ax.plot([r["lo"], r["hi"]], [yc, yc], color=colors[shot], lw=7, alpha=0.3,
                    solid_capstyle="butt")
            ax.plot([r["lo95"], r["hi95"]], [yc, yc], color=colors[shot], lw=1.4)
            # r is a Series: r.mean would be its method, not the column
            ax.plot(r["mean"], yc, "|", color="black", ms=12, mew=1.5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(cells)))
    ax.set_yticklabels([f"{_name(b)}, {s} shot" for b, s in cells], fontsize=9)
    ax.set_ylim(len(cells) - 0.5, -0.5)
    ax.set_xlabel("text - text-no-norm, test MSE on STS-B-DIR's 0-5 scale (negative = the norm "
                  "term lowers error)", fontsize=9)
    ax.tick_params(axis="x", labelsize=9)
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D
    fig.legend([Line2D([], [], marker="o", ls="", mfc="white", mec="grey"),
                Line2D([], [], marker="o", ls="", color="black"),
                Line2D([], [], color="grey", lw=7, alpha=0.3)],
               ["exploratory seeds 0-4 (95% interval)", "confirmatory seeds 5-19",
                "Bonferroni interval (4 cells)"], fontsize=9, loc="lower center", ncol=2,
               frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def read(results=RESULTS, exploratory=EXPLORATORY) -> pd.DataFrame:
    from .audit import collect
    return table(collect(results), exploratory_table(collect(exploratory)))


def main(argv=None, results=RESULTS, exploratory=EXPLORATORY, out: Optional[str] = None) -> int:
    t = read(results, exploratory)
    cols = ["base", "shot", "n", "mean", "lo95", "hi95", "lo", "hi", "p", "p_holm", "mde",
            "exploratory", "verdict", "harm", "net", "recovered"]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(t[cols].round(4).to_string(index=False))
    print()
    print(summary(t))
    print(harm_sentence(t))
    if out:
        from .record_tables import write_table
        write_table(t.assign(seeds=t["seeds"].map(lambda s: " ".join(map(str, s)))), out)
    return 0
