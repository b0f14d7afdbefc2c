"""The one-sentence findings that open the book's pages, generated from the numbers they state.

Each function takes the data a page draws (a shot table, run records, training curves) and returns
plain text built from those numbers, so a finding cannot go stale: rerun the page and the sentence
follows the runs. :func:`intro_block` gathers the findings of the stored records for the book's
introduction and the README (``python -m dirlib findings [--check]``).

>>> import pandas as pd
>>> t = pd.DataFrame({"label": ["A"] * 3 + ["B"] * 3, "shot": ["many", "median", "few"] * 2,
...                   "mae_mean": [5.0, 7.5, 10.0, 6.0, 6.0, 9.0]})
>>> shot_gap_finding(t, "mae", "toy")
'On toy, the few-shot test MAE is above the many-shot test MAE for every method (2 of 2), by a factor of 1.50 to 2.00; the median-shot test MAE is above it for 1 of 2 methods (not for B), by a factor of up to 1.50.'
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from . import figure_data as figs
from .ridge import label_norms, shared_ridge_fit
from .page_runs import cached_runs, record_datasets, stored_specs
from .figure_data import convergence_epoch, shot_gaps
from .naming import METRIC_NAMES, dataset_name, signed


#: |Spearman| at or above which a label range's prototype norms are called ordinal
ORDINAL_RHO = 0.8
SHOT_WORDS = {"many": "many-shot", "median": "median-shot", "few": "few-shot", "all": "all-label"}
#: the paper's Fig. 3 statement (section 3.4), transcribed: many-shot training MAE settles by
#: epoch 40 of 90
PAPER_SETTLE = (40, 90)


def _names(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _num(v: float, digits: int = 2) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def box(text, title: str = "Finding", markdown: bool = False):
    """The finding as the page shows it: an admonition (class ``finding``) at the top of the page,
    one paragraph per entry when ``text`` is a list (one per dataset). ``markdown``: ``text`` is
    Markdown (paragraphs, bold), rendered inside the box."""
    from IPython.display import HTML, Markdown
    paras = [text] if isinstance(text, str) else list(text)
    head = f'<div class="admonition finding">\n<p class="admonition-title">{html.escape(title)}</p>'
    if markdown:
        return Markdown(head + "\n\n" + "\n\n".join(paras) + "\n\n</div>")
    return HTML(head + "".join(f"<p>{html.escape(p)}</p>" for p in paras) + "</div>")


# ----------------------------------------------------------------------------------- Fig. 1
def shot_gap_finding(table: pd.DataFrame, metric: str, dataset: str, scale: str = "") -> str:
    """Fig. 1: do the median- and few-shot errors exceed the many-shot error for every method, and by
    how much (the ratios of the mean test errors, :func:`dirlib.paper.figure_data.shot_gaps`)? ``table`` has
    ``label, shot, <metric>_mean`` (:func:`dirlib.paper.figure_data.shot_table`)."""
    gaps = shot_gaps(table, metric)
    if not len(gaps):
        return f"On {dataset_name(dataset)}, there are no runs to compare."
    name = f"test {METRIC_NAMES.get(metric, metric)}"
    parts = []
    for s in ("few", "median"):
        r = gaps[f"{s} / many"].dropna()
        subject = (f"the {SHOT_WORDS[s]} {name} is above the many-shot {name}" if not parts
                   else f"the {SHOT_WORDS[s]} {name} is above it")
        if not len(r):
            parts.append(f"no method has a {SHOT_WORDS[s]} and a many-shot {name}")
            continue
        above = r[r > 1]
        who = (f"for every method ({len(r)} of {len(r)})" if len(above) == len(r) else
               f"for {len(above)} of {len(r)} methods (not for {_names([k for k in r.index if k not in above.index])})")
        if not len(above):
            size = ""
        elif above.min() == above.max():
            size = f", by a factor of {'up to ' if len(above) < len(r) else ''}{above.max():.2f}"
        else:
            size = f", by a factor of {above.min():.2f} to {above.max():.2f}"
        parts.append(f"{subject} {who}{size}")
    where = f"On {dataset_name(dataset)} ({scale})" if scale else f"On {dataset_name(dataset)}"
    return f"{where}, " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------------- Figs. 2 and 5
def _ordinal(v) -> Optional[bool]:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else abs(v) >= ORDINAL_RHO


def premise_finding(label: str, score: dict, dataset: str) -> str:
    """Figs. 2/5: does the paper's premise hold for one run, that the prototype norms are ordinal over
    the many-shot labels and not over the others? ``score`` is the run's ordinality score
    (:func:`dirlib.paper.figure_data.ordinality`); ordinal means ``|Spearman| >= ORDINAL_RHO``."""
    rho = {s: score.get(f"spearman_{s}") for s in ("many", "median", "few")}
    shown = ", ".join(f"{s} {_num(v)}" for s, v in rho.items() if v is not None)
    head = (f"On {dataset_name(dataset)}, {label}'s prototype norms have a Spearman correlation with the label of "
            f"{_num(score.get('spearman'))} over all labels ({shown})")
    flags = {s: _ordinal(v) for s, v in rho.items() if _ordinal(v) is not None}
    if "many" not in flags or len(flags) < 2:
        return head + "; too few labels per shot to test the paper's premise."
    yes = [SHOT_WORDS[s] for s, f in flags.items() if f]
    no = [SHOT_WORDS[s] for s, f in flags.items() if not f]
    if flags["many"] and not any(f for s, f in flags.items() if s != "many"):
        verdict = "the paper's premise holds here: ordinal over the many-shot labels only"
    else:
        where = (f"ordinal over the {_names(yes)} labels" if yes else "ordinal over no shot")
        verdict = f"the paper's premise does not hold here: {where}" + (f", not over the {_names(no)} labels" if no else "")
    return f"{head}; with ordinal meaning |Spearman| ≥ {ORDINAL_RHO}, {verdict}."


def method_change_finding(pairs: Sequence[Tuple[str, Sequence[dict], str, Sequence[dict]]],
                          seeds: Sequence[int] = ()) -> str:
    """Fig. 5: how the method changes the overall Spearman of the prototype norms, per
    ``(base label, base scores, method label, method scores)`` with one score per seed (paired by
    position; ``seeds`` names them). Per base, the seeds whose |Spearman| rises, falls, or stays
    the same at two decimals; every seed's value is stated, so a sign change shows."""
    if not pairs:
        return "No run with the method has its base run stored beside it."
    groups = {"more ordinal": [], "less ordinal": [], "unchanged at two decimals": [], "mixed": []}
    for bl, b, al, a in pairs:
        b, a = list(b) if isinstance(b, (list, tuple)) else [b], list(a) if isinstance(a, (list, tuple)) else [a]
        vb = [x.get("spearman") for x in b]
        va = [x.get("spearman") for x in a]
        moves = [round(abs(y or 0), 2) - round(abs(x or 0), 2) for x, y in zip(vb, va)]
        text = f"{bl} {', '.join(_num(x) for x in vb)} → {', '.join(_num(y) for y in va)}"
        if all(m > 0 for m in moves):
            groups["more ordinal"].append(text)
        elif all(m < 0 for m in moves):
            groups["less ordinal"].append(text)
        elif all(m == 0 for m in moves):
            groups["unchanged at two decimals"].append(text)
        else:
            groups["mixed"].append(text)
    n = max(len(b) if isinstance(b, (list, tuple)) else 1 for _, b, _, _ in pairs)
    over = (f"over seeds {', '.join(map(str, seeds))}" if seeds else
            f"over {n} seed{'s' if n > 1 else ''}")
    parts = [f"{word} in every seed for {'; '.join(items)}" if word != "mixed" else
             f"in no common direction for {'; '.join(items)}"
             for word, items in groups.items() if items]
    return f"With the method, the overall Spearman of the norms ({over}) is " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------------- Fig. 3
def runs_scale(runs) -> str:
    """The scale of a page's runs: each recipe (model, image size, epochs, device) and the seeds,
    e.g. ``"ResNet-18 at 64 px, 20 epochs, cuda; seeds 0, 1, 2"``."""
    recs = [r for rs in runs.records.values() for r in rs]
    if not recs:
        return ""
    recipes = sorted({record_scale(r, seed=False) for r in recs})
    seeds = sorted({r["config"].get("seed") for r in recs}, key=lambda x: (x is None, x))
    return "; ".join(recipes) + f"; seed{'s' if len(seeds) > 1 else ''} " + ", ".join(map(str, seeds))


def dirty_note(runs) -> str:
    """A sentence when some of a page's records were written from a dirty tree without their
    diff (the code behind them is not known exactly)."""
    recs = [r for rs in runs.records.values() for r in rs]
    dirty = [r for r in recs if (r.get("git") or {}).get("dirty") and not (r.get("git") or {}).get("diff")]
    if not dirty:
        return ""
    return (f" {len(dirty)} of these {len(recs)} records were written from a dirty tree without "
            f"their diff, so the code behind them is not known exactly; the README's footnote "
            f"and the records' README say how to remake them.")


def record_scale(rec: dict, seed: bool = True) -> str:
    """The scale a record ran at, for a finding: model, image size (image data), epochs, seed and
    device, e.g. ``"ResNet-18 at 64 px, 20 epochs, seed 0, cuda"``.

    >>> record_scale({"config": {"dataset": "sts-b-dir", "model": None, "epochs": 10, "seed": 0,
    ...                          "model_kwargs": {"hidden": 128}}, "device": "cpu"})
    'BiLSTM of 128 units, 10 epochs, seed 0, cpu'
    """
    from ..datasets import find as find_dataset
    cfg = rec.get("config") or {}
    info = find_dataset(cfg.get("dataset", ""))
    images = bool(info is not None and info.images)
    model = (rec.get("model_used") or {}).get("name") or cfg.get("model")
    if model is None:     # records before model_used: the loaders' defaults, by the data's kind
        model = ("resnet18" if images else
                 "bilstm" if info is not None and info.family == "sts" else "mlp")
    names = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "bilstm": "BiLSTM", "mlp": "MLP"}
    m = names.get(model, model)
    hidden = (cfg.get("model_kwargs") or {}).get("hidden")
    if model == "bilstm" and hidden:
        m += f" of {hidden} units"
    if images:
        m += f" at {cfg.get('img_size')} px"
    return (f"{m}, {cfg.get('epochs')} epochs, " + (f"seed {cfg.get('seed')}, " if seed else "")
            + f"{rec.get('device', '?')}")


def settle_finding(curves: pd.DataFrame, dataset: str, label: str, tol: float = 0.1,
                   lr_drops: Sequence[int] = (), scale: str = "") -> str:
    """Fig. 3: the epoch from which each shot's training MAE stays within ``tol`` of its final value,
    next to the paper's "the majority converges at epoch ≈ 40", in plain sentences. ``curves`` is
    :func:`dirlib.paper.figure_data.training_curves` of one run (``scale``: its
    :func:`record_scale`, naming its seed); ``lr_drops``: the epochs after which the learning rate
    drops (the run's ``lr_milestones``), which a settling epoch may simply follow."""
    epochs = int(curves["epoch"].max())
    settle = {}
    for s in ("many", "median", "few"):
        c = curves[curves["shot"] == s].sort_values("epoch")["train_mae"].to_numpy()
        if len(c) and not np.isnan(c).all():
            settle[s] = convergence_epoch(c, tol)
    where = f"On {dataset_name(dataset)} ({scale})" if scale else f"On {dataset_name(dataset)}"
    if "many" not in settle:
        return f"{where}, {label} has no many-shot training curve."
    pe, pn = PAPER_SETTLE
    many = settle["many"]
    out = [f"{where}, the training MAE of {label}'s many-shot labels settles at epoch {many} of "
           f"{epochs}, {100 * many / epochs:.0f}% of training. Settling means it stays within "
           f"{int(tol * 100)}% of its final value from then on."]
    rest = [s for s in ("median", "few") if s in settle]
    if rest:
        out.append("The " + " and the ".join(f"{SHOT_WORDS[s]} labels settle at epoch {settle[s]}"
                                             for s in rest) + ".")
        later = [s for s in rest if settle[s] > many]
        if later and len(later) == len(rest):
            out.append("So the many shot settles first.")
        elif later:
            out.append(f"So the many shot settles before the "
                       f"{_names([SHOT_WORDS[s] for s in later])} labels, but not before the "
                       f"{_names([SHOT_WORDS[s] for s in rest if s not in later])} labels.")
        else:
            out.append("So the many shot does not settle first.")
    drops = sorted(int(d) for d in lr_drops)
    if drops:
        near = sorted({e for e in settle.values() if any(0 <= e - d <= 1 for d in drops)})
        out.append(f"The learning rate drops after epoch{'s' if len(drops) > 1 else ''} "
                   f"{_names([str(d) for d in drops])}."
                   + (f" Settling by epoch {_names([str(e) for e in near])} may just follow a drop."
                      if near else " No shot settles right after a drop."))
    else:
        out.append("The learning rate does not drop in this run.")
    out.append(f"The paper says the majority converges at epoch ≈ {pe} and gives no total. The DIR "
               f"benchmark's recipe is {pn} epochs, so that is {100 * pe / pn:.0f}% of training.")
    return " ".join(out)


# ----------------------------------------------------------------------------------- tables
def base_finding(comparisons: Sequence[Tuple[str, Dict[str, object]]], metric: str, dataset: str,
                 digits: int = 2, subject: str = "the method", contrast: str = "method minus base") -> str:
    """Tables: does the method beat its base per shot? ``comparisons`` holds ``(name, effects)``
    pairs, ``effects`` from :func:`dirlib.paper.record_tables.paired_effects`. Lower is better unless the metric is Pearson."""
    if not comparisons:
        return f"On {dataset_name(dataset)}, no run of the method has its base stored beside it."
    from .record_tables import HIGHER_IS_BETTER
    higher_better = metric in HIGHER_IS_BETTER
    better, worse, none = [], [], []
    for name, eff in comparisons:
        for s, d in eff.items():
            item = (f"{name} {s} {signed(d.mean, digits)} [{signed(d.lo, digits)}, "
                    f"{signed(d.hi, digits)}]")
            if not d.detectable:
                none.append(f"{name} {s}")
            elif (d.mean < 0) != higher_better:
                better.append(item)
            else:
                worse.append(item)
    seeds = sorted({d.n for _, eff in comparisons for d in eff.values()})
    head = (f"On {dataset_name(dataset)} (test {METRIC_NAMES.get(metric, metric)}, {contrast}, paired over "
            f"{'/'.join(map(str, seeds))} seeds, 95% t intervals)")
    parts = []
    parts.append(f"{subject} lowers the error beyond its interval for {_names(better)}" if better
                 else f"{subject} lowers no median- or few-shot error beyond its interval")
    if worse:
        parts.append(f"it raises it for {_names(worse)}")
    if none:
        parts.append(f"no detectable effect for {_names(none)}")
    return f"{head}, {'; '.join(parts)}."


# ----------------------------------------------------------------------------------- Fig. 4
def norm_fit_finding(labels, observed, predicted, shots, counts, dataset: str,
                     scale: str = "") -> str:
    """The Fig. 4 page: how far phase 2's prediction for the labels it did not see (median and few
    shot) lies from their observed prototype norms. ``scale``: the run's (method, epochs, samples,
    seed, device)."""
    labels, observed, predicted = (np.asarray(v, dtype=np.float64) for v in (labels, observed, predicted))
    shots, counts = np.asarray(shots), np.asarray(counts)
    have = counts > 0
    maj = have & (shots == "many")
    rest = have & (shots != "many")
    where = f"On {dataset_name(dataset)} ({scale})" if scale else f"On {dataset_name(dataset)}"
    if not rest.any():
        return f"{where}, every label with samples is a majority label: phase 2 predicts no unseen norm."
    gap = np.abs(predicted[rest] - observed[rest])
    return (f"{where}, the norm network $f_F$ is fitted on {int(maj.sum())} majority labels. For the "
            f"{int(rest.sum())} median- and few-shot labels with samples it predicts norms of "
            f"{predicted[rest].min():.3g} to {predicted[rest].max():.3g}. Their observed prototype "
            f"norms are {observed[rest].min():.3g} to {observed[rest].max():.3g}. The mean absolute "
            f"gap is {gap.mean():.3g}, {100 * gap.mean() / observed[rest].mean():.0f}% of their mean "
            f"norm. Phase 3 would close it by moving their features.")


# ----------------------------------------------------------------------------------- section 3.2
def ridge_finding(lam: float, slopes: Sequence[float], labels=None) -> str:
    """The explore page: the error of one shared ridge regressor for norm profiles of each slope
    (:func:`dirlib.paper.ridge.shared_ridge_fit` over :func:`dirlib.paper.ridge.label_norms`)."""
    labels = np.arange(1, 11, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    rmse = {sl: float(shared_ridge_fit(labels, label_norms(labels, sl), lam)["rmse"]) for sl in slopes}
    best = min(rmse, key=rmse.get)
    bits = ", ".join(f"{v:.2f} at slope {k:g}" for k, v in rmse.items())
    return (f"With one shared ridge regressor (λ = {lam:g}) over the labels {labels[0]:g}-{labels[-1]:g}, "
            f"the RMSE of its predictions is {bits}: equal norms (slope 0) give every label the same "
            f"prediction, and the lowest error here is at slope {best:g}, where the norm "
            f"{'equals' if best == 1 else 'grows with'} the label.")


# ----------------------------------------------------------------------------------- setup
def recipe_finding(recipes: pd.DataFrame) -> str:
    """The choices page: how the stored records were trained, one clause per recipe of
    :func:`dirlib.paper.record_tables.stored_recipes`."""
    if not len(recipes):
        return "No completed run records are stored."
    parts = []
    for _, r in recipes.iterrows():
        dev = "the CPU" if r["device"] == "cpu" else f"the GPU {r['device']}"
        size = "" if r["image size"] in ("–", None) or pd.isna(r["image size"]) \
            else f", {r['image size']}"
        model = "" if r["model arguments"] == "{}" else f", model arguments {r['model arguments']}"
        drops = ("no learning-rate drop" if r["lr drops at"] == "none"
                 else f"the learning rate dropped x0.1 at epochs {r['lr drops at']}")
        parts.append(f"{dataset_name(r['dataset'])}: {r['runs']} runs on {dev}{model}{size}, "
                     f"{r['epochs']} epochs "
                     f"with {drops}, batch {r['batch size']}, lr {r['lr']:g}")
    return ("The stored run records behind the tables were trained as follows (read from their "
            "configs): " + "; ".join(parts) + ".")


def bench_finding(rows: Sequence[dict]) -> str:
    """The performance page: the costliest method per benchmark case, as a ratio to a Vanilla step."""
    df = pd.DataFrame(rows)
    if not len(df) or "ratio" not in df:
        return "No benchmark rows are stored."
    parts = []
    steps = df[(df["method"] != "vanilla") & (df.get("kind", "step") == "step")]
    for case, g in steps.groupby("case", sort=False):
        top = g.loc[g["ratio"].idxmax()]
        cheap = g[g["ratio"] <= 1.1]
        parts.append(f"On {case}, {top['method']} costs the most per training step, "
                     f"{top['ratio']:.2f}x a Vanilla step. {len(cheap)} of {len(g)} methods "
                     f"{'stays' if len(cheap) == 1 else 'stay'} within 10% of Vanilla.")
    return " ".join(parts)


# ----------------------------------------------------------------------------------- the intro
BEGIN = "<!-- page-findings:begin (generated by python -m dirlib findings; do not edit) -->"
END = "<!-- page-findings:end -->"


def fig1_finding(runs) -> str:
    """:func:`shot_gap_finding` for a page's :class:`dirlib.paper.page_runs.Runs`."""
    metric = figs.main_metric(runs.dataset)
    return (shot_gap_finding(figs.shot_table(runs, metrics=(metric,)), metric, runs.dataset,
                             scale=runs_scale(runs)) + dirty_note(runs))


def fig25_finding(runs, fig2_specs, fig5_specs, fig5_base: Dict[str, str]) -> str:
    """The premise for the first Fig. 2 panel with a run (its lowest seed, as the panel), then how
    the method changes each base's ordinality, seed by seed (:func:`premise_finding`,
    :func:`method_change_finding`)."""
    first = next((s for s in fig2_specs if s.label in runs.records), None)
    if first is None:
        return f"On {dataset_name(runs.dataset)}, no Fig. 2 panel has a run."
    pairs, seeds = [], None
    for s in fig5_specs:
        base = fig5_base.get(s.label)
        if s.label not in runs.records or base not in runs.records:
            continue
        by_seed_b = {r["config"]["seed"]: r for r in runs.records[base]}
        by_seed_m = {r["config"]["seed"]: r for r in runs.records[s.label]}
        common = sorted(set(by_seed_b) & set(by_seed_m))
        seeds = common if seeds is None else sorted(set(seeds) & set(common))
        pairs.append((base, [figs.ordinality(by_seed_b[k]) for k in common], s.label,
                      [figs.ordinality(by_seed_m[k]) for k in common]))
    return (premise_finding(first.label, figs.ordinality(runs.first(first.label)),
                            runs.dataset).rstrip(".")
            + f" (seed {runs.first(first.label)['config']['seed']}, the panel's). "
            + method_change_finding(pairs, seeds or ()))


def fig3_finding(runs, label: str) -> str:
    """:func:`settle_finding` for the run ``label`` of a page's runs (with its lr drops)."""
    rec = runs.first(label)
    return settle_finding(figs.training_curves(rec), runs.dataset, label,
                          lr_drops=rec["config"].get("lr_milestones") or (),
                          scale=record_scale(rec))


def tables_finding(runs) -> str:
    """:func:`base_finding` for the (method, base) pairs with records in ``runs``."""
    metric = figs.main_metric(runs.dataset)
    return base_finding(table_comparisons(runs, metric), metric, runs.dataset,
                        digits=figs.METRIC_DIGITS.get(metric, 2))


def dataset_findings(results_dir, dataset: str) -> Dict[str, str]:
    """The findings of the Fig. 1, Figs. 2/5, Fig. 3 and tables pages for ``dataset``, from the
    stored records under ``results_dir``, selected as those pages select them."""
    _, specs = stored_specs(results_dir, dataset=dataset)
    runs = cached_runs(specs, dataset=dataset, results_dir=results_dir)
    out = {"fig1": fig1_finding(runs)}
    f2, f5, base = figs.fig25_specs(results_dir, dataset)
    if f2:
        out["fig2"] = fig25_finding(cached_runs(f2 + f5, dataset=dataset, results_dir=results_dir),
                                    f2, f5, base)
    van = next((s for s in runs.present() if s.method == "vanilla"), None)
    if van is not None:
        out["fig3"] = fig3_finding(runs, van.label)
    out["tables"] = tables_finding(runs)
    return out


def table_comparisons(runs, metric: str) -> List[Tuple[str, Dict[str, object]]]:
    """``(base name, effects)`` of :func:`dirlib.paper.figure_data.base_effects` on the median and few shots."""
    return [(figs.display_name(b), eff)
            for _, b, eff in figs.base_effects(runs, metric, shots=("median", "few"))]


PAGES = {"fig1": ("Fig. 1", "_exec/fig1_shot_errors"), "fig2": ("Figs. 2 and 5", "_exec/fig2_norms_and_mae"),
         "fig3": ("Fig. 3", "_exec/fig3_training_mae"), "tables": ("Tables", "_exec/tables")}
QUESTIONS = {"fig1": "Are the median and few shots worse than the many shot for every method?",
             "fig2": "Are the norms ordinal for the majority and not for the rest, and does the method change that?",
             "fig3": "When does each shot's training error settle?",
             "tables": "Does the method beat its base, per shot?"}


def intro_block(results_dir, link: str = "doc") -> str:
    """The generated "findings per page" block: per page a question, then each dataset's finding."""
    per = {d: dataset_findings(results_dir, d) for d in record_datasets(results_dir)}
    lines = []
    for key, (title, doc) in PAGES.items():
        ref = f"{{doc}}`{title} <{doc}>`" if link == "doc" else f"{title} (`notebooks/{doc.split('/')[-1]}.md`)"
        lines.append(f"**{QUESTIONS[key]}** ({ref})")
        lines.append("")
        for d, f in per.items():
            if key in f:
                lines.append(f"- {f[key]}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    import argparse
    root = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(prog="python -m dirlib findings",
                                description="regenerate the findings block of book/intro.md from results/")
    p.add_argument("--results", default=str(root / "results"))
    p.add_argument("--check", action="store_true", help="fail when the committed block is stale")
    a = p.parse_args(argv)
    from .record_tables import replace_block
    block = "\n" + intro_block(Path(a.results))
    target = root / "book" / "intro.md"
    if a.check:
        if not replace_block(target, BEGIN, END, block, check=True):
            print(f"{target.name}: the findings block is stale: run python -m dirlib findings")
            return 1
        return 0
    replace_block(target, BEGIN, END, block)
    print(f"wrote the findings block of {target.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
