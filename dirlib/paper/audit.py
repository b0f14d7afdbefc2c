"""Where do the paper's gains come from? The audit that separates them, run and read.

One base checkpoint per (base method, seed) is shared by every arm, so all differences are paired
by seed:

* ``base``: the base method (``vanilla``, ``lds``, ...), trained as usual;
* ``phase1``: the base plus the paper's phase-1 regulariser (``BASE+frobenius_reg``), same seed;
* ``phase1>text``: phases 2-3 of the text on the phase-1 model: the whole method of the text;
* ``text``, ``text-no-norm``, ``code``, ``code-no-norm``: the post-hoc variants of
  :mod:`dirlib.paper.posthoc` on the base model (``code*`` under selection rule (a), (b) or (c)).

::

    python -m dirlib audit run --dataset sts-b-dir --seeds 0 1 2 3 4     # resumable; one per core
    python -m dirlib audit tables                                        # results/audit -> tables

``run`` trains into a work folder (``--work``, default ``runs/audit``: checkpoints stay out of git)
and copies each finished record into ``results/audit`` under the same relative path. A base whose
checkpoint is gone (a fresh checkout) is retrained when one of its post-hoc arms is still missing;
the new record must reproduce the stored one.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .. import records
from ..datasets import main_metric
from ..datasets import title as dataset_title
from .posthoc import RULES, PosthocConfig, run_posthoc
from ..stats import paired_difference

SHOTS_ALL = ("all", "many", "median", "few")

#: the audited protocol per dataset: the training recipe of the stored tables, the bases, which
#: bases also get a phase-1 run, and the post-hoc sub-grid that fits the CPU budget
PLANS = {
    "sts-b-dir": {
        "train": {"epochs": 10, "model_kwargs": {"hidden": 128}},
        "bases": ("vanilla", "lds", "ranksim", "conr"),
        "phase1": ("vanilla", "lds", "ranksim", "conr"),
        "posthoc": {"regression_epochs": 20, "linear_epochs": (1, 10, 19)},
    },
    # measured on this 2-core CPU, one thread per run: 32 px ResNet-18 epochs take about 90 s, so
    # 20 epochs with both bases and phase 1 would cost ~2.5 CPU-hours per seed. Cut to fit: 10
    # epochs (lr x0.1 at 7 and 9), no phase 1, fine-tunes of 10 epochs (the code's default point,
    # 10 x 10, is still on the grid)
    "utkface-dir": {
        "train": {"img_size": 32, "epochs": 10, "lr_milestones": [7, 9]},
        "bases": ("vanilla", "lds"),
        "phase1": (),
        "posthoc": {"regression_epochs": 10, "linear_epochs": (1, 10, 19)},
    },
}
BASE_VARIANTS = ("text", "text-no-norm", "code", "code-no-norm", "code-fitted")
#: ``code-from-scratch`` needs no trained base and every base of a dataset shares one architecture
#: here, so it runs once per (dataset, seed), from this base's folder, and pairs with every base
SCRATCH_BASE = "vanilla"
SCRATCH_VARIANT = "code-from-scratch"

#: (effect, arm minus arm); ``code`` arms are read under the chosen selection rule
EFFECTS = (
    ("the text method (phases 1-3) against its base", "phase1>text", "base"),
    ("phase 1 alone (the ordinal regulariser)", "phase1", "base"),
    ("phases 2-3 of the text on the base model", "text", "base"),
    ("the norm term under the text protocol", "text", "text-no-norm"),
    ("the extra epochs alone", "text-no-norm", "base"),
    ("the balanced validation data alone", "code-no-norm", "base"),
    ("the norm term under the code protocol", "code", "code-no-norm"),
    ("the code protocol in total", "code", "base"),
    ("selection optimism: rule (a) - rule (b)", "code@best_test", "code@heldout"),
    ("the norm term with a fitted norm net (code protocol)", "code-fitted", "code-no-norm"),
    ("fitting the code's norm net to convergence", "code-fitted", "code"),
    ("the base checkpoint under the code protocol", "code", "code-from-scratch"),
    ("the code protocol from a random start, against the base", "code-from-scratch", "base"),
)


def method_dir(method: str) -> str:
    return method.replace("+", "_")


def base_dir(root, dataset: str, method: str, seed: int) -> Path:
    return Path(root) / dataset / method_dir(method) / f"seed{seed}"


def posthoc_dir(root, dataset: str, method: str, seed: int, variant: str) -> Path:
    return base_dir(root, dataset, method, seed) / "posthoc" / variant


# ------------------------------------------------------------------------------------ running
def _mirror(work: Path, results: Path, rec_dir: Path):
    """Copy ``rec_dir/run.json`` (completed) to the same relative place under ``results``."""
    src = rec_dir / "run.json"
    dst = results / rec_dir.relative_to(work) / "run.json"
    if src.exists() and records.read_json(src).get("status") == "completed":
        records.copy_record(src, dst)      # with the uncommitted changes it was made with


def _ensure_base(cfg, rd: Path, data, needs_ckpt: bool, log):
    """Train the base run in ``rd`` unless it is completed with its checkpoint (or none is needed).
    A completed record without a checkpoint is retrained beside it; the new test metrics must equal
    the old ones, else the old record is kept as ``run.prev.json`` and the mismatch reported."""
    from ..experiment import run_experiment
    rec_path = rd / "run.json"
    h = records.stable_hash(cfg.to_dict())
    old = records.read_json(rec_path) if rec_path.exists() else None
    if old is not None and old.get("config_hash") != h:
        raise RuntimeError(f"{rec_path} holds a run of another configuration; remove it or use "
                           f"another --work")
    have_ckpt = (rd / "ckpt" / "main.pt").exists()
    if old is not None and old.get("status") == "completed" and (have_ckpt or not needs_ckpt):
        return old
    prev = None
    if old is not None and old.get("status") == "completed":
        prev = rd / "run.prev.json"
        shutil.copyfile(rec_path, prev)
        rec_path.unlink()
        shutil.rmtree(rd / "ckpt", ignore_errors=True)
        log(f"retrain {rd} (its checkpoint is gone)")
    t0 = time.time()
    rec = run_experiment(cfg, rd, data=data)
    log(f"done  {rd} in {time.time() - t0:.0f}s")
    if prev is not None:
        before = records.read_json(prev)["test"]["all"]
        after = rec["test"]["all"]
        if all(math.isclose(before[k], after[k], rel_tol=1e-9) for k in before
               if isinstance(before[k], float)):
            prev.unlink()
        else:
            log(f"WARNING {rd}: the retrained base differs from the stored record (kept as "
                f"{prev.name}): {before} vs {after}")
    return rec


def run_audit(dataset: str, seeds, *, work="runs/audit", results="results/audit", data_dir=None,
              bases=None, variants=None, posthoc: Optional[dict] = None, train=None,
              plan: Optional[dict] = None, data=None, replace_dirty: bool = False,
              verify_bases: bool = False, log=print) -> None:
    """Train and post-process every arm of the audit for ``dataset`` and ``seeds``, resumably.
    ``plan`` defaults to ``PLANS[dataset]``; ``data`` to the dataset loaded from ``data_dir``;
    ``variants`` to :data:`BASE_VARIANTS`, plus ``code-from-scratch`` on :data:`SCRATCH_BASE`.

    ``replace_dirty``: a stored record written from a dirty tree (``git.dirty``) counts as missing:
    it is rerun here (a base must reproduce it) and the new record replaces it.
    ``verify_bases``: every base is retrained (when its checkpoint is gone) even if all its arms are
    stored; one that does not reproduce its record has its arms rerun, so that every arm of a seed
    pairs with what the current code trains."""
    from ..experiment import load_for_config
    from ..tools.sweep import make_cfg
    plan = plan or PLANS[dataset]
    work, results = Path(work), Path(results)
    bases = tuple(bases or plan["bases"])
    overrides = {**plan["train"], **(train or {}), "progress": False}
    opts = {**plan["posthoc"], **(posthoc or {})}
    def done(d: Path) -> bool:
        return _completed(d) and not (replace_dirty and d.is_relative_to(results) and _dirty(d))

    for seed in seeds:
        for base in bases:
            base_variants = tuple(variants) if variants is not None else (
                BASE_VARIANTS + ((SCRATCH_VARIANT,) if base == SCRATCH_BASE else ()))
            arms = [(base, base_variants)]
            if base in plan["phase1"]:
                arms.append((f"{base}+frobenius_reg", ("text",)))
            for method, arm_variants in arms:
                cfg = make_cfg(dataset, method, seed, overrides)
                rd = base_dir(work, dataset, method, seed)
                todo = [v for v in arm_variants
                        if not (done(posthoc_dir(work, dataset, method, seed, v))
                                or done(posthoc_dir(results, dataset, method, seed, v)))]
                stored = base_dir(results, dataset, method, seed) / "run.json"
                if not todo and done(stored.parent) and not verify_bases:
                    log(f"skip  {rd}: every arm is stored in {results}")
                    continue
                if _completed(stored.parent) and not (rd / "run.json").exists():
                    # a fresh checkout: the retrained base must reproduce the stored record
                    rd.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(stored, rd / "run.json")
                if data is None:
                    data = load_for_config(cfg, data_dir, subset=False)
                needs_ckpt = verify_bases or any(v != SCRATCH_VARIANT for v in todo)
                if replace_dirty and _completed(rd) and _dirty(rd) and not _has_ckpt(rd):
                    needs_ckpt = True   # retrained from this tree, it replaces the dirty record
                base_rec = _ensure_base(cfg, rd, data, needs_ckpt=needs_ckpt, log=log)
                _mirror(work, results, rd)
                # a stored arm made from another checkpoint of this base (a retrained base that did
                # not reproduce) no longer pairs with it: rerun it
                for v in arm_variants:
                    if v in todo or v == SCRATCH_VARIANT:
                        continue
                    for root in (work, results):
                        od = posthoc_dir(root, dataset, method, seed, v)
                        if _completed(od) and not _same_base(od, base_rec):
                            log(f"stale {od}: made from another checkpoint of its base; rerun")
                            todo.append(v)
                            (od / "run.json").unlink()
                            break
                for v in arm_variants:
                    od = posthoc_dir(work, dataset, method, seed, v)
                    if v not in todo:
                        _mirror(work, results, od)
                        continue
                    t0 = time.time()
                    try:
                        run_posthoc(rd, v, od, data=data, config=PosthocConfig(variant=v, **opts),
                                    log=log)
                    except Exception as e:  # recorded as failed; the grid goes on
                        log(f"FAILED {od}: {type(e).__name__}: {e}")
                        continue
                    log(f"done  {od} in {time.time() - t0:.0f}s")
                    _mirror(work, results, od)


#: the tuned arms' methods: the base and the text's method on it (docs/audit-plan.md, Q5)
TUNED_METHODS = ("vanilla", "frobenius")


def run_tuned(dataset: str, seeds, *, trials: int = 4, methods=TUNED_METHODS,
              results="results/audit", data_dir=None, data=None, plan: Optional[dict] = None,
              backend: str = "local", log=print) -> dict:
    """The tuned arms: each of ``methods`` tuned by :func:`dirlib.tools.tune.tune` (``trials`` points of
    its declared space, chosen on seed 0's validation split) at the plan's recipe, then trained for
    ``seeds``, into ``results/<dataset>/tuned/<method>``. Returns ``{method: choice}``."""
    from ..tools.tune import tune
    plan = plan or PLANS[dataset]
    overrides = {**plan["train"], "progress": False}
    out = {}
    for method in methods:
        out[method] = tune(dataset, method, out=Path(results) / dataset / "tuned" / method_dir(method),
                           trials=trials, seeds=seeds, overrides=overrides, data=data,
                           data_dir=data_dir, backend=backend, log=log)
    return out


def _completed(d: Path) -> bool:
    p = d / "run.json"
    return p.exists() and records.read_json(p).get("status") == "completed"


def _same_base(posthoc_dir_: Path, base_rec: dict) -> bool:
    """The post-hoc record in ``posthoc_dir_`` was made from the checkpoint behind ``base_rec``: the
    base's test metrics it saw on loading (``base_test``) are the base record's."""
    return records.read_json(posthoc_dir_ / "run.json").get("base_test") == base_rec.get("test")


def _dirty(d: Path) -> bool:
    """The record in ``d`` was written from a tree with uncommitted changes."""
    return bool((records.read_json(d / "run.json").get("git") or {}).get("dirty"))


def _has_ckpt(d: Path) -> bool:
    return (d / "ckpt" / "main.pt").exists()


# ------------------------------------------------------------------------------------ reading
def collect(results="results/audit", metric: Optional[str] = None) -> pd.DataFrame:
    """Every arm's test metric per (dataset, base, seed, shot) as a long table with columns
    ``dataset, base, seed, arm, shot, metric, value``. ``metric`` defaults to the dataset's main
    one (MSE for STS-B-DIR, MAE otherwise). Records that are not completed are skipped with a
    warning; a post-hoc record whose base hash differs from the stored base is an error."""
    import warnings
    from .record_tables import read_records
    from .page_runs import base_of
    root = Path(results)
    rows, skipped = [], []
    paths = [p for p in sorted(root.rglob("run.json")) if "trials" not in p.relative_to(root).parts]
    for path, rec in read_records(paths):
        if rec.get("status") != "completed":
            skipped.append(str(path))
            continue
        cfg = rec["config"]
        ds = cfg["dataset"]
        m = metric or main_metric(ds)
        if "tuned" in path.relative_to(root).parts:
            # dirlib.tools.tune's runs at the setting chosen on validation data (audit tune)
            base = base_of(cfg["method"])
            arm = "tuned:base" if base == cfg["method"] else "tuned:frobenius"
            rows += _rows(ds, base, cfg["seed"], arm, rec["test"], m, path)
        elif rec.get("schema") == "dirlib.posthoc/1":
            base_method = rec["base"]["method"]
            base_rec_path = (path.parent / rec["base"]["path"] / "run.json").resolve()
            if base_rec_path.exists():
                stored = records.read_json(base_rec_path).get("config_hash")
                if stored != rec["base"]["config_hash"]:
                    raise ValueError(f"{path}: its base {base_rec_path} has config hash {stored}, "
                                     f"the post-hoc record names {rec['base']['config_hash']}")
                if (not rec["variant"].startswith(SCRATCH_VARIANT)
                        and records.read_json(base_rec_path).get("test") != rec.get("base_test")):
                    raise ValueError(f"{path}: made from another checkpoint of its base "
                                     f"{base_rec_path} (the base's test metrics differ): it does "
                                     f"not pair with it; rerun it (python -m dirlib audit run)")
            if base_method.endswith("+frobenius_reg"):
                base, arm_prefix = base_method[: -len("+frobenius_reg")], "phase1>"
            else:
                base, arm_prefix = base_method, ""
            if rec["variant"].startswith("code"):
                for rule, sel in rec["selected"].items():
                    arm = f"{arm_prefix}{rec['variant']}@{rule}"
                    rows += _rows(ds, base, cfg["seed"], arm, sel["test"], m, path)
            else:
                rows += _rows(ds, base, cfg["seed"], arm_prefix + rec["variant"], rec["test"], m, path)
        else:
            method = cfg["method"]
            if method.endswith("+frobenius_reg"):
                rows += _rows(ds, method[: -len("+frobenius_reg")], cfg["seed"], "phase1",
                              rec["test"], m, path)
            else:
                rows += _rows(ds, method, cfg["seed"], "base", rec["test"], m, path)
    if skipped:
        warnings.warn(f"{len(skipped)} audit record(s) not completed, left out: "
                      + "; ".join(skipped), stacklevel=2)
    df = pd.DataFrame(rows, columns=["dataset", "base", "seed", "arm", "shot", "metric", "value"])
    # the from-scratch arm is stored once per (dataset, seed) and pairs with every base
    scratch = df[df["arm"].str.startswith(SCRATCH_VARIANT) & (df["base"] == SCRATCH_BASE)]
    copies = [scratch[scratch["dataset"] == ds].assign(base=b) for ds in scratch["dataset"].unique()
              for b in df.loc[df["dataset"] == ds, "base"].unique() if b != SCRATCH_BASE]
    return pd.concat([df, *copies], ignore_index=True) if copies else df


def _rows(ds, base, seed, arm, test, metric, path=None):
    out = []
    for s in SHOTS_ALL:
        v = (test.get(s) or {}).get(metric, "<missing>") if isinstance(test, dict) else "<missing>"
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"audit record {path}: test[{s!r}][{metric!r}] is {v!r}, not a number")
        out.append({"dataset": ds, "base": base, "seed": int(seed), "arm": arm, "shot": s,
                    "metric": metric, "value": float("nan") if v is None else float(v)})
    return out


def _arm_name(arm: str, rule: str) -> str:
    return f"{arm}@{rule}" if arm.startswith("code") and "@" not in arm else arm


def decomposition(df: pd.DataFrame, dataset: str, base: str, rule: str = "heldout") -> pd.DataFrame:
    """The paired effects of :data:`EFFECTS` for one dataset and base: one row per effect and shot
    with the mean difference (lower is better for the metric: negative = the first arm has lower
    error), its 95% t interval over the seeds both arms have, ``n`` and a ``verdict``. Effects whose
    arms have no common seed are left out."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    sub = df[(df["dataset"] == dataset) & (df["base"] == base)]
    out = []
    for effect, a, b in EFFECTS:
        a, b = _arm_name(a, rule), _arm_name(b, rule)
        for shot in SHOTS_ALL:
            sa = sub[(sub["arm"] == a) & (sub["shot"] == shot)].set_index("seed")["value"]
            sb = sub[(sub["arm"] == b) & (sub["shot"] == shot)].set_index("seed")["value"]
            seeds = sorted(set(sa.index) & set(sb.index))
            if not seeds:
                continue
            d = paired_difference(sa.loc[seeds].to_numpy(), sb.loc[seeds].to_numpy())
            out.append({"effect": effect, "a": a, "b": b, "shot": shot, "mean": d.mean, "lo": d.lo,
                        "hi": d.hi, "n": d.n, "p": d.p, "seeds": seeds,
                        "verdict": verdict(d)})
    return pd.DataFrame(out, columns=["effect", "a", "b", "shot", "mean", "lo", "hi", "n", "p",
                                      "seeds", "verdict"])


def verdict(d) -> str:
    if d.n < 2:
        return "one seed: no interval"
    if not d.detectable:
        return "no detectable effect"
    return "lower error" if d.mean < 0 else "higher error"


#: the effects that add up to a whole protocol (the others are its parts, or selection)
TOTAL_EFFECTS = ("the text method (phases 1-3) against its base",
                 "phases 2-3 of the text on the base model", "the code protocol in total")
SELECTION_EFFECT = "selection optimism: rule (a) - rule (b)"
PART_EFFECTS = tuple(e for e, _, _ in EFFECTS if e not in TOTAL_EFFECTS + (SELECTION_EFFECT,))
DATASET_ORDER = ("sts-b-dir", "utkface-dir")
BASE_ORDER = ("vanilla", "lds", "ranksim", "conr")
#: how prose names the audited datasets (their dataset files' titles)
DATASET_NAMES = {ds: dataset_title(ds) for ds in DATASET_ORDER}


def ordered(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def _fmt_ci(mean: float, lo: float, hi: float) -> str:
    """``+0.40 [+0.10, +0.69]``: a paired mean difference and its interval (a nonzero bound never
    prints as ``+0.00``)."""
    from .naming import signed
    return f"{signed(mean)} [{signed(lo)}, {signed(hi)}]"


def _ci(r) -> str:
    return _fmt_ci(r.mean, r.lo, r.hi)


def base_name(base: str) -> str:
    from .naming import display_name
    return display_name(base)


def _join(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def dataset_tables(df: pd.DataFrame, dataset: str, rule: str = "heldout") -> dict:
    """``{base: decomposition}`` for every base of ``dataset`` in ``df``, bases in the usual order."""
    bases = ordered(df.loc[df["dataset"] == dataset, "base"].unique(), BASE_ORDER)
    return {b: decomposition(df, dataset, b, rule) for b in bases}


#: the exploratory effects' arms pairs that are primary questions under rule (b)
_PRIMARY_PAIRS = {("phase1>text", "base"), ("code@heldout", "base"), ("text", "text-no-norm"),
                  ("code@heldout", "code-no-norm@heldout"),
                  ("code-fitted@heldout", "code-no-norm@heldout")}


def exploratory_paragraph(df: pd.DataFrame, dataset: str) -> str:
    """Every non-primary effect on the median and few shots (rule (b), and rule (a) for the code
    protocol's effects) whose uncorrected 95% interval excludes zero, how many intervals were read
    (so the reader can weigh chance hits), and the optimism of reading the grid off the test split."""
    tabs = {b: t for b, t in dataset_tables(df, dataset).items() if not t.empty}
    if not tabs:
        return ""
    names = {b: base_name(b) for b in tabs}
    rule_a = {b: decomposition(df, dataset, b, "best_test") for b in tabs}
    read, hits = 0, {"lower error": {}, "higher error": {}}
    for label, tables in (("", tabs), (" under rule (a)", rule_a)):
        for b, t in tables.items():
            for r in t[t["shot"].isin(["median", "few"])].itertuples():
                if (r.a, r.b) in _PRIMARY_PAIRS or r.effect == SELECTION_EFFECT:
                    continue
                if label and not r.a.startswith("code"):
                    continue        # rule (a) changes the code arms only
                read += 1
                if r.verdict in hits:
                    hits[r.verdict].setdefault(f"{r.effect}{label}", []).append(
                        f"{names[b]} {r.shot} {_ci(r)}")
    s = [f"Exploratory effects on the median and few shots ({read} uncorrected 95% intervals; "
         f"about {read / 20:.0f} would exclude zero by chance alone)."]
    for word in ("lower error", "higher error"):
        if hits[word]:
            s.append(f"With {word}: " + "; ".join(f"{e} ({'; '.join(v)})"
                                                  for e, v in hits[word].items()) + ".")
    if not any(hits.values()):
        s.append("None excludes zero.")
    sel = []
    for b, t in tabs.items():
        for r in t[(t["effect"] == SELECTION_EFFECT) & (t["shot"] == "all")].itertuples():
            sel.append(f"{names[b]} {_ci(r)}")
    if sel:
        s.append(f"Reading the code's grid off the test split (rule (a)) instead of choosing it on "
                 f"held-out validation data (rule (b)) changes its overall test "
                 f"{main_metric(dataset).upper()} by " + "; ".join(sel) + ".")
    return " ".join(s)


def about(x: float) -> str:
    """A ratio in words a reader can say: two significant figures, no exponent.

    >>> about(697.3), about(0.0123), about(3.46)
    ('about 700', 'about 0.012', 'about 3.5')
    """
    if not np.isfinite(x):
        return "an unknown number of"
    if x == 0:
        return "0"
    digits = 2 - int(math.floor(math.log10(abs(x)))) - 1
    v = round(x, digits)
    return f"about {v:,.{max(digits, 0)}f}"


def divergence_sentence(health: pd.DataFrame, dataset: str) -> str:
    """How many of the code-family arms' held-out fine-tunes ended above where they started, per
    arm, and how large the norm term was against the task loss in their first epoch
    (:func:`health_table`)."""
    h = health[health["dataset"] == dataset] if health is not None and len(health) else None
    if h is None or not len(h):
        return ""
    parts = []
    for arm in ("code", "code-fitted", "code-from-scratch", "code-no-norm"):
        g = h[h["arm"] == arm]
        if not len(g):
            continue
        ratio = g["norm/task, first epoch"]
        size = (f", the norm term {about(ratio.median())} times the task loss in the first "
                f"epoch (median)" if arm != "code-no-norm" and ratio.notna().any() else "")
        parts.append(f"{arm} {int(g['ended worse'].sum())} of {len(g)}{size}")
    note = ("; for records of the first round, which did not store their start, the base's error on "
            "the whole validation split stands in" if (h["start from"] != "the fine-tune's start").any()
            else "")
    return ("Held-out fine-tunes of the code protocol that ended with a higher held-out error than "
            "they started with: " + "; ".join(parts) + note + ".")


def dataset_answer(df: pd.DataFrame, dataset: str, table: Optional[pd.DataFrame] = None,
                   health: Optional[pd.DataFrame] = None) -> str:
    """One dataset's answer: the primary family's corrected verdicts
    (:func:`dirlib.paper.audit_primary.dataset_paragraph`), then the exploratory effects and, with
    ``health`` (:func:`health_table`), how often the code protocol's fine-tunes diverged."""
    from .audit_primary import dataset_paragraph, primary_table
    table = primary_table(df) if table is None else table
    explore = " ".join(p for p in (exploratory_paragraph(df, dataset),
                                   divergence_sentence(health, dataset)) if p)
    return "\n\n".join(p for p in (dataset_paragraph(table, dataset), explore) if p)


def paper_claim() -> str:
    from .record_tables import paper_table
    paper = paper_table(1)
    paper = paper[(paper["metric"] == "MAE") & paper["shot"].isin(["median", "few"])]
    val = {(r.method, r.shot): r.value for r in paper.itertuples()}
    return ("The paper reports that its method lowers AgeDB-DIR median-shot MAE from "
            f"{val[('VANILLA', 'median')]:g} to {val[('Ours', 'median')]:g} and few-shot MAE from "
            f"{val[('VANILLA', 'few')]:g} to {val[('Ours', 'few')]:g} over Vanilla (transcribed "
            "from its Table 1).")


def answer(df: pd.DataFrame, health: Optional[pd.DataFrame] = None) -> str:
    """The full answer to "where do the gains come from?", generated from the audit records ``df``
    (:func:`collect`): the paper's claim, then :func:`dataset_answer` for each audited dataset
    (``health``: :func:`health_table` of the same records)."""
    from .audit_primary import primary_table
    table = primary_table(df)
    claim = (paper_claim() + " Its text trains three phases from scratch; its published code "
             "fine-tunes a finished model post hoc on the balanced validation split and sweeps a "
             "grid read off the test split. We separate those effects with paired controls from "
             "one shared base checkpoint per seed, and read the pre-registered questions "
             "(docs/audit-plan.md) with a correction for their number.")
    parts = [claim] + [dataset_answer(df, ds, table, health) for ds in
                       ordered(df["dataset"].unique(), DATASET_ORDER)]
    return "\n\n".join(parts)


def published_bases(root=None) -> dict:
    """The published post-hoc script's base-loading counts (``results/published-bases.json``)."""
    import json
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    return json.loads((root / "results" / "published-bases.json").read_text())


FOREST_FIGURE = "book/figures/audit-forest.png"


def scale_text(results="results/audit") -> str:
    """The scale the stored audit base runs were trained at, read from their configs, per dataset:
    image size (image datasets), epochs, seeds and device, e.g. ``"UTKFace-DIR 32 px, 10 epochs,
    seeds 0-3, cpu"``."""
    from ..datasets import get
    runs = {}
    for path in sorted(Path(results).glob("*/*/seed*/run.json")):
        rec = records.read_json(path)
        cfg = rec.get("config") or {}
        if rec.get("status") != "completed" or cfg.get("method") != path.parts[-3]:
            continue        # base runs only (their folder is their method)
        ds = cfg["dataset"]
        size = f"{cfg['img_size']} px, " if get(ds).images else ""
        runs.setdefault(ds, set()).add((size, cfg["epochs"], rec.get("device"), cfg["seed"]))
    parts = []
    for ds in ordered(runs, DATASET_ORDER):
        recipes = sorted({r[:3] for r in runs[ds]})
        seeds = sorted({r[3] for r in runs[ds]})
        seed_text = (f"seed {seeds[0]}" if len(seeds) == 1
                     else f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
                     else "seeds " + ", ".join(map(str, seeds)))
        parts.append(f"{DATASET_NAMES.get(ds, ds)} " + " or ".join(
            f"{size}{epochs} epochs, {seed_text}, {device}" for size, epochs, device in recipes))
    return "; ".join(parts)


def summary_block(df: pd.DataFrame, image: str, root=None, results="results/audit") -> str:
    """The answer at a glance, for the README and the introduction: the forest plot (``image``:
    its path from the file that shows it), the paper's claim, and at most five bullets."""
    from .audit_primary import bullets, primary_table
    table = primary_table(df)
    m = len(table)
    lines = [f"![Every primary effect with its corrected interval]({image})", "",
             f"*The pre-registered primary effects (docs/audit-plan.md): paired differences, "
             f"method arm minus control arm, thick bars at the Bonferroni level over the {m} "
             f"primary cells, thin bars the uncorrected 95% interval, open diamonds the paper's "
             f"own effect where its tables have the base. Scale (from the records): "
             f"{scale_text(results)}.*", "",
             paper_claim(), ""]
    lines += [f"- {b}" for b in bullets(table, published_bases(root))]
    conf = _confirmatory_table(df, results)
    if conf is not None:
        from .confirmatory import front_bullet
        lines.append(f"- {front_bullet(conf)}")
    from .benchmark_report import front_bullet as benchmark_bullet
    bench = benchmark_bullet(Path(results).parent)
    if bench:
        lines.append(f"- {bench}")
    return "\n".join(lines)


ANSWER_BEGIN = "<!-- audit-answer:begin (generated by python -m dirlib audit tables; do not edit) -->"
ANSWER_END = "<!-- audit-answer:end -->"
#: the files whose answer block :func:`update_answer` regenerates, with the forest plot's path from
#: each (relative to the repository)
ANSWER_FILES = {"README.md": FOREST_FIGURE, "book/intro.md": "figures/audit-forest.png"}


def forest_table(df: pd.DataFrame, results="results/audit") -> pd.DataFrame:
    """What the forest plot draws: the primary family, then the confirmatory cells
    (:mod:`dirlib.paper.confirmatory`, their own family) when their records exist beside
    ``results`` (``results/confirmatory``)."""
    from .audit_primary import primary_table
    table = primary_table(df)
    conf = _confirmatory_table(df, results)
    if conf is None:
        return table
    from .confirmatory import forest_rows
    extra = forest_rows(conf)
    return pd.concat([table, extra], ignore_index=True) if len(extra) else table


def _confirmatory_table(df: pd.DataFrame, results="results/audit"):
    """The confirmatory table (:func:`dirlib.paper.confirmatory.table`) from the records in the
    ``confirmatory`` folder beside ``results``, or None when it holds none."""
    from . import confirmatory as conf
    root = Path(results).parent / "confirmatory"
    if not root.is_dir() or not any(root.rglob("run.json")):
        return None
    return conf.table(collect(root), conf.exploratory_table(df))


def forest_fingerprint(table: pd.DataFrame) -> str:
    """What the forest plot draws, hashed: stored in the PNG so that a stale figure is detected
    without comparing image bytes."""
    cols = ["question", "dataset", "base", "shot", "n", "mean", "lo", "hi", "lo95", "hi95",
            "paper"]
    return records.stable_hash([[r[c] if not isinstance(r[c], float) else round(r[c], 9)
                                 for c in cols] for _, r in table.iterrows()])


def write_forest(df: pd.DataFrame, path, results="results/audit") -> Path:
    """The forest plot of the primary family as a PNG, with :func:`forest_fingerprint` in its
    metadata."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .audit_primary import forest_plot
    table = forest_table(df, results)
    fig = forest_plot(table)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .plots import page_png
    path.write_bytes(page_png(fig, metadata={"Description": forest_fingerprint(table)}))
    plt.close(fig)
    return path


def forest_is_current(df: pd.DataFrame, path, results="results/audit") -> bool:
    from PIL import Image
    path = Path(path)
    if not path.exists():
        return False
    return Image.open(path).text.get("Description") == forest_fingerprint(forest_table(df, results))


def update_answer(results="results/audit", files=None, root=None, check=False) -> list:
    """Regenerate the answer block (:data:`ANSWER_BEGIN` ... :data:`ANSWER_END`) in ``files`` and
    the forest plot. Returns the files that were (``check``: would be) out of date."""
    from .record_tables import replace_block
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    files = ANSWER_FILES if files is None else files
    df = collect(results)
    stale = []
    fig = root / FOREST_FIGURE
    if not forest_is_current(df, fig, results):
        stale.append(fig)
        if not check:
            write_forest(df, fig, results)
    for f, image in files.items():
        path = root / f
        body = "\n" + summary_block(df, image, root, results) + "\n"
        if not replace_block(path, ANSWER_BEGIN, ANSWER_END, body, check=True):
            stale.append(path)
            if not check:
                replace_block(path, ANSWER_BEGIN, ANSWER_END, body)
    return stale


def conclusion(tables: dict) -> str:
    """A paragraph per (dataset, base) of decomposition tables ``{(dataset, base): DataFrame}``:
    which effects change median- or few-shot error beyond their interval, and in which direction,
    and which are indistinguishable from zero."""
    parts = []
    for (ds, base), t in tables.items():
        if t.empty:
            continue
        metric = main_metric(ds).upper()
        n = int(t["n"].max())
        carried, zero = [], []
        for effect, g in t[t["shot"].isin(["median", "few"])].groupby("effect", sort=False):
            moved = [f"{r.shot}-shot {metric} by {_ci(r)}"
                     for r in g.itertuples() if r.verdict in ("lower error", "higher error")]
            (carried if moved else zero).append((effect, moved))
        s = f"**{DATASET_NAMES.get(ds, ds)}, base {base_name(base)}** ({n} paired seeds): "
        if carried:
            s += "; ".join(f"{e} changes " + " and ".join(m) for e, m in carried) + ". "
        else:
            s += "no effect moves median- or few-shot error beyond its interval. "
        if zero and carried:
            s += ("No detectable effect on median- or few-shot error: "
                  + ", ".join(e for e, _ in zero) + ".")
        parts.append(s.strip())
    return "\n\n".join(parts)


def display_table(t: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A decomposition table for reading: one row per effect, one column per shot with
    ``mean [lo, hi]`` and its verdict, and the seeds; no index column."""
    out = []
    for effect, g in t.groupby("effect", sort=False):
        row = {"effect": effect, "difference": f"{g['a'].iloc[0]} - {g['b'].iloc[0]}"}
        for r in g.itertuples():
            mark = {"lower error": " ▼", "higher error": " ▲"}.get(r.verdict, "")
            row[f"{r.shot} ({metric.upper()})"] = _ci(r) + mark
        row["seeds"] = " ".join(map(str, g["seeds"].iloc[0]))
        out.append(row)
    return pd.DataFrame(out)


def _seed_text(seeds) -> str:
    """``[0, 1, 2, 3]`` -> ``"0-3"``; ``[0, 2]`` -> ``"0, 2"``."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def plot_decomposition(tables: dict, metric: str, title: str = ""):
    """The paired differences of ``tables`` (``{base: decomposition}``) as interval bars: one panel
    per base, one row per effect, one marker per shot with its 95% interval; zero is marked. Returns
    the figure. Two bases a row; each panel has its own x ticks, and each row of effects enough
    height that no two labels (wrapped to two lines at 9 pt) overlap."""
    import textwrap
    import matplotlib.pyplot as plt
    colors = {"all": "#7f7f7f", "many": "#1f77b4", "median": "#ff7f0e", "few": "#d62728"}
    bases = [b for b, t in tables.items() if not t.empty]
    effects = [e for e, _, _ in EFFECTS]
    ncols = min(2, max(len(bases), 1))
    nrows = -(-max(len(bases), 1) // ncols)
    row_in = 0.42 * len(effects) + 1.0          # two 9-pt label lines per effect, plus the axis
    height = 0.9 + row_in * nrows
    fig, axes = plt.subplots(nrows, ncols, figsize=(7.6, height), sharey=True, squeeze=False)
    for ax in axes.reshape(-1)[len(bases):]:
        ax.set_axis_off()
    for ax, b in zip(axes.reshape(-1), bases):
        t = tables[b]
        for k, shot in enumerate(SHOTS_ALL):
            g = t[t["shot"] == shot].set_index("effect")
            ys = [effects.index(e) + (k - 1.5) * 0.17 for e in g.index]
            ax.errorbar(g["mean"], ys, xerr=[g["mean"] - g["lo"], g["hi"] - g["mean"]], fmt="o",
                        ms=4, capsize=2, color=colors[shot], label=shot)
        ax.axvline(0, color="black", lw=0.8)
        seeds = sorted({int(x) for ss in t["seeds"] for x in ss})
        ax.set_title(f"{base_name(b)} (seed{'s' if len(seeds) > 1 else ''} "
                     f"{_seed_text(seeds)})", fontsize=10)
        ax.set_xlabel(f"paired difference in test {metric.upper()}\n(negative = lower error)",
                      fontsize=9)
        ax.tick_params(axis="x", labelsize=9, labelbottom=True)    # every panel keeps its ticks
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(effects)))
        ax.set_yticklabels([textwrap.fill(e, 30) for e in effects], fontsize=8.5)
        ax.set_ylim(len(effects) - 0.5, -0.5)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title="shot", loc="lower center", ncol=len(SHOTS_ALL), fontsize=9,
               title_fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.75 / height, 1, 1))
    return fig


def rules_table(df: pd.DataFrame, dataset: str, base: str, metric: str) -> pd.DataFrame:
    """The code-protocol effects under the three selection rules side by side: per effect and rule,
    the paired difference on all, median and few shots (``mean [lo, hi]``)."""
    labels = {"best_test": "(a) best test", "heldout": "(b) held-out half", "default": "(c) defaults"}
    keep = ("the balanced validation data alone", "the norm term under the code protocol",
            "the code protocol in total")
    out = []
    for rule in RULES:
        t = decomposition(df, dataset, base, rule)
        for effect in keep:
            g = t[t["effect"] == effect].set_index("shot")
            if g.empty:
                continue
            row = {"effect": effect, "rule": labels[rule]}
            for shot in ("all", "median", "few"):
                if shot in g.index:
                    row[f"{shot} ({metric.upper()})"] = _fmt_ci(*g.loc[shot, ["mean", "lo", "hi"]])
            out.append(row)
    return pd.DataFrame(out)


def _posthoc_records(results):
    """``(path, record)`` of every completed post-hoc record under ``results``."""
    from .record_tables import read_records
    root = Path(results)
    for path, rec in read_records(sorted(root.rglob("run.json"))):
        if rec.get("schema") == "dirlib.posthoc/1" and rec.get("status") == "completed":
            yield path, rec


def norm_fit_summary(fits: pd.DataFrame) -> pd.DataFrame:
    """:func:`norm_fit_table` as the chapter shows it: one row per dataset, base, arm and net, the
    mean RMSE and R^2 over its seeds (named), and the observed and predicted majority norms of
    its lowest seed (named)."""
    if not len(fits):
        return fits
    rows = []
    for key, g in fits.groupby(["dataset", "base", "arm", "norm net"], sort=False):
        first = g.loc[g["seed"].idxmin()]
        rows.append({"dataset": DATASET_NAMES.get(key[0], key[0]), "base": base_name(key[1]),
                     "arm": key[2], "norm net": key[3],
                     "seeds": ", ".join(map(str, sorted(g["seed"].unique()))),
                     "RMSE (mean)": f"{g['RMSE'].mean():.2f}", "R2 (mean)": f"{g['R2'].mean():.2f}",
                     "observed majority norms": f"{first['observed majority norms']} "
                                                 f"(seed {int(first['seed'])})",
                     "predicted": f"{first['predicted majority norms']} (seed {int(first['seed'])})"})
    return pd.DataFrame(rows)


def norm_fit_table(results="results/audit") -> pd.DataFrame:
    """How well each code-family norm net fits the majority labels' observed norms: per dataset,
    base, seed, arm and net (the code's after L epochs, or the fitted one), the RMSE and R^2 on
    those labels, and the range of the observed and the predicted norms."""
    rows = []
    for path, rec in _posthoc_records(results):
        norm = rec.get("norm")
        if not norm:
            continue
        obs = np.asarray(norm["observed_norm"], dtype=float)
        maj = np.asarray(norm["majority"], dtype=bool)
        for key, v in norm["by_linear_epochs"].items():
            pred = np.asarray(v["predicted_norm"], dtype=float)
            fit = v.get("fit") or {}
            if not fit:   # records made before the fit error was stored: computed here
                err = pred[maj] - obs[maj]
                sst = ((obs[maj] - obs[maj].mean()) ** 2).sum()
                fit = {"rmse": float(np.sqrt((err ** 2).mean())),
                       "r2": float(1 - (err ** 2).sum() / sst) if sst > 0 else math.nan}
            rows.append({"dataset": rec["config"]["dataset"], "base": rec["base"]["method"],
                         "seed": rec["config"]["seed"], "arm": rec["variant"],
                         "norm net": "fitted (L-BFGS)" if key == "fitted" else f"code, {key} epochs",
                         "RMSE": fit["rmse"], "R2": fit["r2"],
                         "observed majority norms": f"{np.nanmin(obs[maj]):.1f}-{np.nanmax(obs[maj]):.1f}",
                         "predicted majority norms": f"{np.nanmin(pred[maj]):.1f}-{np.nanmax(pred[maj]):.1f}"})
    return pd.DataFrame(rows)


def health_table(results="results/audit") -> pd.DataFrame:
    """Every held-out fine-tune of the code-family arms (:func:`dirlib.paper.posthoc.fine_tune_health`):
    the norm term / task loss in its first and last epoch, the held-out half's error at its start
    and after its last epoch, and whether it ended worse than it started. Records made before the
    start was stored use the base run's whole-validation error as the start (``start from``)."""
    from .posthoc import fine_tune_health
    rows = []
    for path, rec in _posthoc_records(results):
        if not rec["variant"].startswith("code"):
            continue
        ds = rec["config"]["dataset"]
        metric = main_metric(ds)
        base_path = (path.parent / rec["base"]["path"] / "run.json")
        base_val = None
        if base_path.exists():
            base_val = ((records.read_json(base_path).get("val") or {}).get("all") or {}).get(metric)
        for h in fine_tune_health(rec, metric, start_heldout=base_val):
            rows.append({"dataset": ds, "base": rec["base"]["method"], "seed": rec["config"]["seed"],
                         "arm": rec["variant"],
                         "norm-net epochs": "-" if h["linear_epochs"] is None else h["linear_epochs"],
                         "norm/task, first epoch": h["norm_to_task_first"],
                         "norm/task, last epoch": h["norm_to_task_last"],
                         "metric": metric.upper(),
                         "held-out error at start": h["start"],
                         "held-out error at end": h["end"],
                         "ended worse": h["worse"],
                         "start from": "the fine-tune's start" if h["start_stored"]
                         else "the base's whole validation split"})
    return pd.DataFrame(rows)


def tuning_table(results="results/audit") -> pd.DataFrame:
    """The tuned arms' choices (``tuned/<method>/choice.json``): per dataset and method, each trial's
    setting and validation score, and which was chosen."""
    import json
    rows = []
    for path in sorted(Path(results).glob("*/tuned/*/choice.json")):
        c = json.loads(path.read_text())
        for t in c["trials"]:
            rows.append({"dataset": c["dataset"], "method": c["method"],
                         "setting": ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in t["point"].items()),
                         c["metric"]: t["val"], "chosen": t["point"] == c["chosen"]})
    return pd.DataFrame(rows)


def compute_used(results="results/audit") -> pd.DataFrame:
    """Run time of the stored audit records per dataset and device: records, CPU or GPU hours."""
    rows = []
    for path in sorted(Path(results).rglob("run.json")):
        rec = records.read_json(path)
        if rec.get("status") != "completed":
            continue
        rows.append({"dataset": rec["config"]["dataset"],
                     "device": str(rec.get("versions", {}).get("cuda_device") or rec.get("device")),
                     "seconds": float(rec.get("wall_time_s") or 0.0)})
    df = pd.DataFrame(rows, columns=["dataset", "device", "seconds"])
    g = df.groupby(["dataset", "device"], as_index=False).agg(records=("seconds", "size"),
                                                              hours=("seconds", "sum"))
    g["hours"] = (g["hours"] / 3600).round(2)
    return g


def write_tables(results="results/audit", out="results/tables/audit") -> list:
    """Every decomposition table (rule (b); the code arms also under (a) and (c)) as CSV."""
    from .record_tables import write_table
    df = collect(results)
    out = Path(out)
    written = []
    for (ds, base), _ in df.groupby(["dataset", "base"]):
        for rule in RULES:
            t = decomposition(df, ds, base, rule)
            t = t.assign(seeds=t["seeds"].map(lambda s: " ".join(map(str, s))))
            written.append(write_table(t, out / f"{ds}_{base}_{rule}.csv"))
    conf = _confirmatory_table(df, results)      # the confirmatory test, when it has records
    if conf is not None:
        written.append(write_table(conf.assign(seeds=conf["seeds"].map(
            lambda s: " ".join(map(str, s)))), out / "confirmatory.csv"))
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and post-process every arm (resumable)")
    r.add_argument("--dataset", required=True, choices=sorted(PLANS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    r.add_argument("--bases", nargs="+", default=None)
    r.add_argument("--work", default="runs/audit", help="run folders with checkpoints")
    r.add_argument("--results", default="results/audit", help="where finished records are copied")
    r.add_argument("--data-dir", default=None)
    r.add_argument("--full-grid", action="store_true",
                   help="the published grid: 40 fine-tune epochs x norm-net epochs 1,3,...,19")
    r.add_argument("--replace-dirty", action="store_true",
                   help="rerun the stored records written from a dirty tree and replace them")
    r.add_argument("--verify-bases", action="store_true",
                   help="retrain every base; rerun the arms of one that does not reproduce")
    r.add_argument("--variants", nargs="+", default=None,
                   choices=BASE_VARIANTS + (SCRATCH_VARIANT,),
                   help="only these post-hoc arms of each base (default: every arm); e.g. "
                        "the confirmatory study's: text text-no-norm")
    r.add_argument("--no-phase1", action="store_true",
                   help="skip the phase-1 runs (BASE+frobenius_reg) and their text arm")
    tu = sub.add_parser("tune", help="the tuned arms (Q5): the base and the text's method, each "
                                     "tuned on validation data with the same budget (dirlib.tools.tune)")
    tu.add_argument("--dataset", required=True, choices=sorted(PLANS))
    tu.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    tu.add_argument("--trials", type=int, default=4)
    tu.add_argument("--methods", nargs="+", default=list(TUNED_METHODS))
    tu.add_argument("--results", default="results/audit")
    tu.add_argument("--data-dir", default=None)
    sub.add_parser("published-bases", help="rebuild and load the published bases as the "
                                           "post-hoc script does: the '0 of 122' check")
    c = sub.add_parser("confirmatory", help="the confirmatory test of the norm term "
                                            "(docs/confirmatory-plan.md): table and verdict")
    c.add_argument("--results", default="results/confirmatory")
    c.add_argument("--exploratory", default="results/audit")
    c.add_argument("--out", default="results/tables/audit/confirmatory.csv")
    t = sub.add_parser("tables", help="decomposition tables and the README/intro answer from the "
                                      "stored records")
    t.add_argument("--results", default="results/audit")
    t.add_argument("--out", default="results/tables/audit")
    t.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when the answer blocks are out of date")
    t.add_argument("--allow-dirty", action="store_true",
                   help="read records written from a dirty tree before diffs were stored")
    a = p.parse_args(argv)
    if a.cmd == "run":
        from .posthoc import PUBLISHED_LINEAR_EPOCHS
        opts = ({"regression_epochs": 40, "linear_epochs": PUBLISHED_LINEAR_EPOCHS}
                if a.full_grid else None)
        plan = {**PLANS[a.dataset], **({"phase1": ()} if a.no_phase1 else {})}
        run_audit(a.dataset, a.seeds, work=a.work, results=a.results, data_dir=a.data_dir,
                  bases=a.bases, variants=a.variants, posthoc=opts, plan=plan,
                  replace_dirty=a.replace_dirty, verify_bases=a.verify_bases,
                  log=lambda m: print(m, flush=True))
        return 0
    if a.cmd == "tune":
        run_tuned(a.dataset, a.seeds, trials=a.trials, methods=a.methods, results=a.results,
                  data_dir=a.data_dir, log=lambda m: print(m, flush=True))
        return 0
    if a.cmd == "published-bases":
        from . import published_bases
        return published_bases.main()
    if a.cmd == "confirmatory":
        from . import confirmatory
        return confirmatory.main(results=a.results, exploratory=a.exploratory, out=a.out)
    from .record_tables import load_records, refuse_dirty
    try:
        refuse_dirty(load_records(Path(a.results), status="completed"), a.allow_dirty)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.check:
        stale = update_answer(a.results, check=True)
        for path in stale:
            print(f"{path}: the audit answer is out of date; run python -m dirlib audit tables",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in write_tables(a.results, a.out):
        print(path)
    for path in update_answer(a.results):
        print(f"{path}: answer regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
