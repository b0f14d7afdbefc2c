"""Figures and tables of the book: where the numbers come from, how they are aggregated, how they
are drawn. The notebooks under ``notebooks/`` stay thin and call these functions.

Where numbers come from (:func:`get_runs`, the same logic on every page)
-------------------------------------------------------------------------
* ``source="cached"``: completed run records (``**/run.json``) under ``results_dir`` are used. For
  ``dataset="auto"`` the first dataset of ``prefer`` that has records for any of the requested runs
  is taken. Records of one run (method + base loss + method arguments) that differ in more than the
  seed are not mixed: the largest such group (most seeds) is kept, on the data hash that covers the
  most runs. A figure uses stored records only when every run it needs has some (``require="all"``,
  the default: a figure never mixes stored runs with runs trained now on other data); tables show
  what is stored (``"any"``), the rest listed in ``Runs.missing``.
* When the stored records do not cover the page (or ``source="rerun"``), it trains what it needs through
  :func:`dirlib.experiment.run_experiment`: ``quick=True`` on synthetic data (``dataset="auto"``)
  or on small subsets of real data (:data:`QUICK_SUBSET`), with few epochs, into a scratch folder
  (:func:`scratch_dir`, ``book/_exec/quick_runs``: gitignored, shared by the pages of one build, so a
  run with the same configuration hash is trained once); ``quick=False`` with the dataset's recipe
  into ``results_dir/runs/<dataset>/<method>/seed<k>`` (the layout of :mod:`dirlib.sweep`), so full
  runs become records to commit. A completed record of the identical configuration in that folder is
  reused, not trained again.
* :meth:`Runs.describe` says in words which it was; every figure title carries :meth:`Runs.tag`.

Choices (not in the paper):

* Fig. 1 error bars are the sample standard deviation over seeds (``ddof=1``,
  :func:`dirlib.results.summary_table`); a single seed has no bar.
* Figs. 2/5 and 3 show one run (the lowest seed present), as the paper's figures show one model.
  The bars are per-label training MAE and the line the per-label prototype norm
  ``||mean_i z_i||`` of the un-augmented training set (``train_per_label`` of the run record, from
  :func:`dirlib.train.train_diagnostics`). For a frobenius run the final phase (fine-tuned) is drawn
  and phase 2's predicted norms ``l_hat`` are overlaid as a dashed line.
* Shot regions follow the 100 / 20 rule on the training counts of the full training set.
* Quick runs on synthetic data use one torch thread (:func:`torch_threads`): the tiny MLP is
  30-50x slower with two threads on a busy two-core machine (measured here).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .data import main_metric  # noqa: F401  (pages call figs.main_metric)
from .naming import (DISPLAY, LOSS_NAMES, METRIC_DIGITS, METRIC_NAMES, SHOT_NAMES,  # noqa: F401
                     display_name, format_mean_std)
from .train import Callback

SHOTS = ("many", "median", "few")
SHOTS_ALL = ("all",) + SHOTS
SHOT_COLORS = {"all": "#555555", "many": "#2b6ca3", "median": "#e08a00", "few": "#c0392b"}
#: the datasets the age figures (the paper's Figs. 1-3, 5 are on AgeDB-DIR) look for, in order
AGE_PREFER = ("agedb-dir", "utkface-dir", "imdb-wiki-dir", "sts-b-dir")
#: quick runs on real data: a random training subset and balanced evaluation subsets
QUICK_SUBSET = {"subset_train": 1500, "subset_eval": 300}


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


# ----------------------------------------------------------------------------------- basics
def default_loss(dataset: str) -> str:
    """The base loss a run gets when its config says ``loss=None`` (:func:`dirlib.methods.default_loss`:
    MSE on STS-B-DIR, L1 on the age datasets and synthetic data)."""
    return "mse" if dataset == "sts-b-dir" else "l1"


def scratch_dir() -> Path:
    """The quick runs' folder: ``book/_exec/quick_runs`` (gitignored; ``make clean`` removes it)."""
    from .book import EXEC
    return EXEC / "quick_runs"


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Set ``torch.set_num_threads(n)`` inside the block (``None``: leave it), restore after."""
    import torch
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------- run specs
@dataclass(frozen=True)
class RunSpec:
    """One curve / bar group / table row: a dirlib method, an optional base loss and optional
    method arguments (``{"frobenius_reg.beta": 1.0}``), and the label shown."""

    method: str
    label: str = ""
    loss: Optional[str] = None
    method_kwargs: Tuple[Tuple[str, object], ...] = ()

    def __post_init__(self):
        if not self.label:
            object.__setattr__(self, "label", display_name(self.method, self.loss))

    def loss_for(self, dataset: str) -> str:
        return self.loss or default_loss(dataset)

    def overrides(self, dataset: str) -> dict:
        """RunConfig fields this run sets. A loss equal to the dataset's default is left ``None``,
        so the run shares its configuration (hash) with the plain method's."""
        out = {}
        if self.loss and self.loss != default_loss(dataset):
            out["loss"] = self.loss
        if self.method_kwargs:
            out["method_kwargs"] = dict(self.method_kwargs)
        return out

    def matches(self, config: dict) -> bool:
        """Whether a run record's ``config`` is a run of this spec."""
        ds = config.get("dataset")
        if config.get("method") != self.method:
            return False
        if (config.get("loss") or default_loss(ds)) != self.loss_for(ds):
            return False
        return dict(config.get("method_kwargs") or {}) == dict(self.method_kwargs)

    def slug(self, dataset: str) -> str:
        """Folder name: the method (``+`` -> ``_``, as :func:`dirlib.sweep.run_dir`), then a
        suffix for a non-default loss or method arguments."""
        s = self.method.replace("+", "_")
        ov = self.overrides(dataset)
        if "loss" in ov:
            s += f"__loss-{ov['loss']}"
        if "method_kwargs" in ov:
            from .records import stable_hash
            s += f"__kw-{stable_hash(ov['method_kwargs'])[:8]}"
        return s


def run_spec(method: str, label: str = "", *, loss: Optional[str] = None,
             method_kwargs: Optional[dict] = None) -> RunSpec:
    """A :class:`RunSpec`; ``method`` is checked against the registry (clear error on a typo)."""
    from .methods import parse_method
    parse_method(method)
    if loss is not None:
        valid = ("mse", "l1", "huber", "focal_l1", "focal_mse")
        if loss not in valid:
            raise ValueError(f"loss {loss!r} is not valid; use one of {', '.join(valid)}")
    kw = tuple(sorted((method_kwargs or {}).items()))
    return RunSpec(method=method, label=label, loss=loss, method_kwargs=kw)


def parse_specs(methods: Sequence[str]) -> List[RunSpec]:
    """The book's ``METHODS`` parameter -> run specs. An entry is a method name, optionally with a
    base loss after ``@``: ``"vanilla@mse"`` is plain regression with the MSE loss."""
    out = []
    for m in methods:
        if not isinstance(m, str) or not m.strip():
            raise ValueError(f"METHODS entries must be method names, got {m!r}")
        name, _, loss = m.partition("@")
        out.append(run_spec(name.strip(), loss=loss.strip() or None))
    labels = [s.label for s in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"METHODS lists the same run twice: {dup}")
    return out


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


def record_datasets(results_dir, prefer: Sequence[str] = AGE_PREFER) -> List[str]:
    """The datasets with completed run records under ``results_dir``: those of ``prefer`` in that
    order, then synthetic. ``[]`` when there are none (or no such folder)."""
    from .results import load_records
    results_dir = Path(results_dir)
    recs = load_records(results_dir, status="completed") if results_dir.is_dir() else []
    have = {r["config"].get("dataset") for r in recs}
    return [d for d in list(prefer) + ["synthetic"] if d in have]


def page_datasets(results_dir, dataset: str = "auto", source: str = "cached") -> List[str]:
    """The datasets a figure page draws: with ``dataset="auto"`` and ``source="cached"``, every
    dataset with stored records (:func:`record_datasets`); otherwise (or with none stored) just
    ``[dataset]``, which :func:`get_runs` resolves."""
    stored = record_datasets(results_dir) if dataset == "auto" and source == "cached" else []
    return stored or [dataset]


def fig25_specs(results_dir, dataset: str):
    """``(fig2_specs, fig5_specs, fig5_base)`` for Figs. 2 and 5 drawn from stored records on
    ``dataset``: the paper's panels (:data:`FIG2_SPECS`, :data:`FIG5_SPECS`) when records cover
    them all, else the reproduction's panels (:data:`REPRO_FIG2_SPECS`, :data:`REPRO_FIG5_SPECS`)
    that have records."""
    from .results import load_records
    results_dir = Path(results_dir)
    recs = load_records(results_dir, dataset=dataset, status="completed") if results_dir.is_dir() else []

    def have(spec):
        return any(spec.matches(r["config"]) for r in recs)
    if all(have(s) for s in FIG2_SPECS + FIG5_SPECS):
        return list(FIG2_SPECS), list(FIG5_SPECS), dict(FIG5_BASE)
    f2 = [s for s in REPRO_FIG2_SPECS if have(s)]
    f5 = [s for s in REPRO_FIG5_SPECS if have(s)]
    return f2, f5, {k: v for k, v in REPRO_FIG5_BASE.items() if any(s.label == k for s in f5)}


# ----------------------------------------------------------------------------------- records
def _group_key(rec: dict) -> str:
    from .records import stable_hash
    from .results import comparable_config
    return stable_hash(comparable_config(rec["config"]))


def _finished(rec: dict) -> str:
    return str(rec.get("finished") or "")


def select_records(records: Sequence[dict], specs: Sequence[RunSpec]) -> Tuple[Dict[str, list], list]:
    """Pick, for each spec, the completed records to show: among the records matching it, grouped
    by configuration up to the seed, the largest group (ties: the most recently finished) on the
    data hash that covers the most specs (ties: the most records) and, so that a table never mixes
    protocols, of the protocol :func:`dirlib.results.main_protocol` picks among the specs'
    records. Returns
    ``({label: records sorted by seed}, notes)``; ``notes`` names what was left out."""
    done = [r for r in records if r.get("status") == "completed"]
    cands = {}
    for s in specs:
        groups = {}
        for r in done:
            if s.matches(r["config"]):
                groups.setdefault((r.get("data_hash"), _group_key(r)), []).append(r)
        cands[s.label] = groups
    cover, nrec = {}, {}
    for s in specs:
        for (dh, _), rs in cands[s.label].items():
            nrec[dh] = nrec.get(dh, 0) + len(rs)
        for dh in {k[0] for k in cands[s.label]}:
            cover[dh] = cover.get(dh, 0) + 1
    notes = []
    if not cover:
        return {}, notes
    best_dh = max(cover, key=lambda d: (cover[d], nrec[d], str(d)))
    if len(cover) > 1:
        notes.append(f"records on {len(cover)} different data hashes; shown: data_hash {best_dh} "
                     f"(covers {cover[best_dh]} of {len(specs)} runs)")
    # one protocol (epochs, image size, model ...) for the whole figure/table
    from .results import main_protocol, protocol_key
    on_best = [(s.label, r) for s in specs for (dh, _), rs in cands[s.label].items() if dh == best_dh
               for r in rs]
    best_pk = main_protocol(on_best)
    n_protocols = len({protocol_key(r["config"]) for _, r in on_best})
    if n_protocols > 1:
        covered = len({label for label, r in on_best if protocol_key(r["config"]) == best_pk})
        notes.append(f"records of {n_protocols} protocols; shown: protocol {best_pk} (covers "
                     f"{covered} of {len(specs)} runs)")
    out = {}
    for s in specs:
        on_dh = {k: v for k, v in cands[s.label].items() if k[0] == best_dh}
        groups = {k: v for k, v in on_dh.items() if protocol_key(v[0]["config"]) == best_pk}
        if not groups:
            if on_dh:
                notes.append(f"{s.label}: its {len(on_dh)} configuration(s) are of other protocols; "
                             "left out")
            continue
        key = max(groups, key=lambda k: (len({r['config'].get('seed') for r in groups[k]}),
                                          max(_finished(r) for r in groups[k])))
        chosen = groups[key]
        by_seed = {}
        for r in sorted(chosen, key=_finished):
            by_seed[r["config"].get("seed")] = r   # the same config and seed twice: the latest
        if len(by_seed) < len(chosen):
            notes.append(f"{s.label}: {len(chosen) - len(by_seed)} duplicate record(s) of one seed; "
                         "the latest kept")
        if len(on_dh) > 1:
            notes.append(f"{s.label}: {len(on_dh) - 1} other configuration(s) left out (shown: "
                         f"{len(by_seed)} seed(s) of configuration {key[1]})")
        out[s.label] = [by_seed[k] for k in sorted(by_seed, key=lambda x: (x is None, x))]
    return out, notes


@dataclass
class Runs:
    """The run records behind one figure or table, and where they came from."""

    dataset: str
    source: str                      # "cached" | "trained" | "none"
    folder: str
    quick: bool
    specs: List[RunSpec]
    records: Dict[str, List[dict]] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    reused: int = 0                  # trained mode: identical records found in the folder
    trained: int = 0
    reason: str = ""

    def __bool__(self):
        return bool(self.records)

    def present(self) -> List[RunSpec]:
        return [s for s in self.specs if s.label in self.records]

    def first(self, label: str) -> dict:
        """The record of ``label`` with the lowest seed."""
        if label not in self.records:
            raise KeyError(f"no run records for {label!r}; present: {list(self.records)}")
        return self.records[label][0]

    @property
    def synthetic(self) -> bool:
        return self.dataset == "synthetic"

    def seeds(self) -> list:
        return sorted({r["config"].get("seed") for rs in self.records.values() for r in rs},
                      key=lambda x: (x is None, x))

    def epochs(self) -> list:
        return sorted({r["config"].get("epochs") for rs in self.records.values() for r in rs},
                      key=lambda x: (x is None, x))

    def tag(self) -> str:
        """A short provenance label for figure titles."""
        if self.source == "none":
            return f"{self.dataset}: no run records"
        if self.source == "cached":
            return f"{self.dataset}: stored run records"
        if self.synthetic:
            return "synthetic data: quick CPU run" if self.quick else "synthetic data"
        return f"{self.dataset}: quick CPU subset run" if self.quick else f"{self.dataset}: trained"

    def describe(self) -> str:
        """Markdown: which numbers these are and where they come from."""
        folder = _rel(self.folder)
        present = self.present()
        names = ", ".join(s.label for s in present) or "none"
        seeds = ", ".join(str(s) for s in self.seeds())
        epochs = ", ".join(str(e) for e in self.epochs())
        lines = []
        if self.source == "none":
            lines.append(f"**No run records** for {self.dataset} under `{folder}`"
                         + (f" ({self.reason})" if self.reason else "") + ".")
        elif self.source == "cached":
            commits = sorted({(r.get("git") or {}).get("commit") or "?" for rs in self.records.values()
                              for r in rs})
            lines.append(f"**Source: stored run records** under `{folder}`: dataset "
                         f"`{self.dataset}`, runs {names}; seeds {seeds} (every stored seed: the `SEEDS` "
                         f"parameter only chooses the seeds a page trains); epochs {epochs}; "
                         f"git commit(s) {', '.join(c[:10] for c in commits)}.")
        else:
            what = ("**synthetic data** (`dirlib.data.synthetic`: 50 integer labels, long-tailed "
                    "training counts, balanced val/test)" if self.synthetic
                    else f"dataset `{self.dataset}`")
            sub = ""
            r0 = next(iter(self.records.values()))[0] if self.records else None
            if r0 is not None and (r0["config"].get("subset_train") or r0["config"].get("subset_eval")):
                sub = (f", subsets of {r0['config'].get('subset_train')} training / "
                       f"{r0['config'].get('subset_eval')} val and test samples")
            lines.append(f"**Source: trained by this page** ({self.reason or 'SOURCE = rerun'}) on "
                         f"{what}{sub}: runs {names}; seeds {seeds}; epochs {epochs}"
                         + (" (quick CPU settings)" if self.quick else "") + f". Run records in "
                         f"`{folder}` ({self.trained} trained now, {self.reused} reused: same "
                         f"configuration hash, trained earlier in this build).")
            if self.quick:
                lines.append("These numbers come from a quick CPU run: they show what the pipeline "
                             "computes, **not** the paper's setting, and are not comparable with the "
                             "paper's numbers.")
        if self.missing and self.source != "none":
            lines.append(f"No records for: {', '.join(self.missing)} (left out).")
        if self.notes:   # one dropdown: a page can have a dozen of them
            items = "\n".join(f"- {n}." for n in self.notes)
            lines.append(f'<details class="record-notes"><summary>{len(self.notes)} note(s) on the '
                         f"records chosen and left out</summary>\n\n{items}\n\n</details>")
        return "\n\n".join(lines)


def _rel(path) -> str:
    """``path`` relative to the repository root when it lies inside it (pages show no build-machine
    paths), else as given."""
    from .book import ROOT
    p = Path(path)
    try:
        return p.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(p)


def _datasets_with_records(records, specs, candidates):
    for ds in candidates:
        if any(s.matches(r["config"]) for r in records if r["config"].get("dataset") == ds
               and r.get("status") == "completed" for s in specs):
            return ds
    return None


def cached_runs(specs: Sequence[RunSpec], *, dataset: str, results_dir,
                prefer: Sequence[str] = AGE_PREFER) -> Runs:
    """The stored records for ``specs`` (``source="cached"``; ``source="none"`` when there are
    none). ``dataset="auto"``: the first of ``prefer`` (then ``synthetic``) with records."""
    from .results import load_records
    specs = list(specs)
    results_dir = Path(results_dir)
    recs = load_records(results_dir) if results_dir.is_dir() else []
    candidates = list(prefer) + ["synthetic"] if dataset == "auto" else [dataset]
    ds = _datasets_with_records(recs, specs, candidates)
    if ds is None:
        shown = dataset if dataset != "auto" else "/".join(candidates)
        return Runs(dataset=shown, source="none", folder=str(results_dir), quick=False, specs=specs,
                    missing=[s.label for s in specs],
                    reason="none of the requested runs has a completed record")
    chosen, notes = select_records([r for r in recs if r["config"].get("dataset") == ds], specs)
    return Runs(dataset=ds, source="cached", folder=str(results_dir), quick=False, specs=specs,
                records=chosen, missing=[s.label for s in specs if s.label not in chosen],
                notes=notes)


def stored_specs(results_dir, *, dataset: str = "auto", prefer: Sequence[str] = AGE_PREFER,
                 order: Sequence[str] = ()) -> Tuple[Optional[str], List[RunSpec]]:
    """Every run (method, base loss, method arguments) with a completed record under
    ``results_dir`` on ``dataset`` (``"auto"``: the first of ``prefer``, then synthetic, that has
    any), of the protocol :func:`dirlib.results.main_protocol` picks. Returns
    ``(dataset or None, specs)``, specs ordered by ``order`` (method names) first."""
    from .results import load_records
    results_dir = Path(results_dir)
    recs = [r for r in (load_records(results_dir) if results_dir.is_dir() else [])
            if r.get("status") == "completed"]
    candidates = list(prefer) + ["synthetic"] if dataset == "auto" else [dataset]
    ds = next((d for d in candidates if any(r["config"].get("dataset") == d for r in recs)), None)
    if ds is None:
        return None, []
    # only the protocol with the most distinct runs (then records): a page shows one protocol
    from .results import main_protocol, protocol_key, run_key
    recs = [r for r in recs if r["config"].get("dataset") == ds]
    best = main_protocol((run_key(r["config"]), r) for r in recs)
    seen = {}
    for r in recs:
        c = r["config"]
        if protocol_key(c) != best:
            continue
        loss = c.get("loss")
        loss = None if loss in (None, default_loss(ds)) else loss
        kw = tuple(sorted((c.get("method_kwargs") or {}).items()))
        key = (c["method"], loss, kw)
        if key not in seen:
            label = display_name(c["method"], loss)
            if kw:
                from .records import stable_hash
                label += f" [{stable_hash(dict(kw))[:6]}]"
            seen[key] = RunSpec(c["method"], label, loss=loss, method_kwargs=kw)
    rank = {m: i for i, m in enumerate(order)}
    specs = sorted(seen.values(), key=lambda s: (rank.get(s.method, len(rank)), s.method, s.label))
    return ds, specs


def training_dataset(dataset: str, *, quick: bool, data_dir=None,
                     prefer: Sequence[str] = AGE_PREFER) -> str:
    """The dataset a page trains on: ``dataset`` itself (its files must exist), or for ``"auto"``
    synthetic data in quick mode and else the first of ``prefer`` whose data is present."""
    from .book import resolve_dataset
    if dataset == "auto" and quick:
        return "synthetic"
    return resolve_dataset(dataset, data_dir, prefer=tuple(prefer))


def run_config(spec: RunSpec, dataset: str, seed: int, *, quick: bool, epochs: Optional[int] = None,
               device: str = "auto"):
    """The :class:`~dirlib.train.RunConfig` of one training run (:func:`dirlib.book.make_config`
    plus the spec's overrides; quick runs on real data also get :data:`QUICK_SUBSET`)."""
    from .book import make_config
    over = spec.overrides(dataset)
    if quick and dataset != "synthetic":
        over = {**QUICK_SUBSET, **over}
    return make_config(dataset, spec.method, seed=seed, epochs=epochs, quick=quick, device=device,
                       **over)


def train_runs(specs: Sequence[RunSpec], seeds: Sequence[int], *, dataset: str, folder, quick: bool,
               epochs: Optional[int] = None, device: str = "auto", data_dir=None, data=None,
               reuse: bool = True, log: Optional[Callable[[str], None]] = None,
               reason: str = "") -> Runs:
    """Train every spec x seed on ``dataset`` into ``folder`` with :func:`run_experiment`.

    Layout: ``folder/<dataset>/<spec.slug>/seed<k>/run.json``, with a ``-<config hash>`` suffix on
    the spec folder in quick mode (the scratch folder holds runs of several pages; two configurations
    never share a folder). A completed record with the same configuration hash there is reused
    (``reuse``); a record of another configuration in a full-mode folder is an error (as
    :mod:`dirlib.sweep`). A failed run raises ``RuntimeError`` naming it (its record keeps the
    traceback). Checkpoints of completed runs are deleted. Warnings raised while training are
    collected into ``Runs.notes`` (deduplicated) instead of cluttering the page.
    """
    import shutil
    from . import records as R
    from .experiment import load_for_config, run_experiment
    specs = list(specs)
    folder = Path(folder)
    out = Runs(dataset=dataset, source="trained", folder=str(folder), quick=quick, specs=specs,
               reason=reason)
    seen_warn = {}
    threads = 1 if dataset == "synthetic" else None
    for s in specs:
        recs = []
        for seed in seeds:
            cfg = run_config(s, dataset, seed, quick=quick, epochs=epochs, device=device)
            h = R.stable_hash(cfg.to_dict())
            slug = s.slug(dataset)
            if quick:
                slug += "-" + _group_key({"config": cfg.to_dict()})[:8]
            rd = folder / dataset / slug / f"seed{seed}"
            path = rd / "run.json"
            if path.exists():
                old = R.read_json(path)
                if reuse and old.get("status") == "completed" and old.get("config_hash") == h:
                    recs.append(old)
                    out.reused += 1
                    continue
                if old.get("config_hash") != h and not quick:
                    raise RuntimeError(f"{path} holds a run of another configuration (config_hash "
                                       f"{old.get('config_hash')} != {h}); choose another "
                                       f"RESULTS_DIR or remove it")
                shutil.rmtree(rd / "ckpt", ignore_errors=True)   # a stale or other config's state
            if data is None:
                base = dataclasses.replace(cfg, subset_train=None, subset_eval=None)
                data = load_for_config(base, data_dir)
            if log:
                log(f"training {s.label} ({s.method}) seed {seed} on {dataset} ...")
            t0 = time.time()
            with warnings.catch_warnings(record=True) as caught, torch_threads(threads):
                warnings.simplefilter("always")
                try:
                    rec = run_experiment(cfg, rd, data=data)
                except Exception as e:
                    raise RuntimeError(f"training {s.label} ({s.method}) seed {seed} on {dataset} "
                                       f"failed: {type(e).__name__}: {e} (record: {path})") from e
            for w in caught:
                msg = f"{w.category.__name__}: {w.message}"
                seen_warn.setdefault(msg, set()).add(s.label)
            shutil.rmtree(rd / "ckpt", ignore_errors=True)
            out.trained += 1
            if log:
                log(f"  done in {time.time() - t0:.1f} s")
            recs.append(rec)
        out.records[s.label] = recs
    for msg, labels in seen_warn.items():
        out.notes.append(f"while training {', '.join(sorted(labels))}: {msg}")
    return out


def get_runs(specs: Sequence[RunSpec], seeds: Sequence[int], *, dataset: str = "auto",
             source: str = "cached", results_dir="results", quick: bool = True,
             epochs: Optional[int] = None, quick_epochs: Optional[int] = None, device: str = "auto",
             data_dir=None, prefer: Sequence[str] = AGE_PREFER, scratch=None, train: bool = True,
             require: str = "all", log: Optional[Callable[[str], None]] = None) -> Runs:
    """The records behind a page (see the module docstring): cached ones, else trained now.

    ``epochs``: the ``EPOCHS`` parameter (``None``: quick default / recipe); ``quick_epochs``: the
    epochs of a quick run on synthetic data when ``epochs`` is ``None`` (e.g. more for Fig. 3).
    ``require="all"``: stored records are used only when every spec has some (a figure never mixes
    stored runs with runs trained now on other data); otherwise the page trains all of them and says
    which partial records it found. ``"any"``: use whatever is stored, list the rest as missing.
    ``train=False``: never train (a page that only shows what exists). Returns :class:`Runs`."""
    if require not in ("all", "any"):
        raise ValueError(f"require must be 'all' or 'any', got {require!r}")
    if source not in ("cached", "rerun"):
        raise ValueError(f"SOURCE must be 'cached' or 'rerun', got {source!r}")
    specs = list(specs)
    if not specs:
        raise ValueError("no runs requested")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs share a label: {labels}")
    if source == "cached":
        runs = cached_runs(specs, dataset=dataset, results_dir=results_dir, prefer=prefer)
        complete = runs.source == "cached" and (require == "any" or not runs.missing)
        if complete or not train:
            return runs
        if runs.source == "cached":
            reason = (f"SOURCE = cached, but `{_rel(results_dir)}` holds {runs.dataset} records of "
                      f"only {', '.join(s.label for s in runs.present())}; this page needs all of "
                      f"its runs ({', '.join(runs.missing)} missing)")
        else:
            reason = f"SOURCE = cached, but `{_rel(results_dir)}` has no run records for these runs"
    else:
        if not train:
            raise ValueError("train=False with SOURCE='rerun'")
        reason = "SOURCE = rerun"
    ds = training_dataset(dataset, quick=quick, data_dir=data_dir, prefer=prefer)
    if epochs is None and quick and ds == "synthetic" and quick_epochs is not None:
        epochs = quick_epochs
    folder = Path(scratch) if scratch is not None else (
        scratch_dir() if quick else Path(results_dir) / "runs")
    return train_runs(specs, list(seeds), dataset=ds, folder=folder, quick=quick, epochs=epochs,
                      device=device, data_dir=data_dir, log=log, reason=reason)


# ----------------------------------------------------------------------------------- Fig. 1
def shot_table(runs: Runs, metrics: Optional[Sequence[str]] = None, split: str = "test"
               ) -> pd.DataFrame:
    """Mean and sample std over seeds per run x shot (:func:`dirlib.results.summary_table` on each
    run's records). Columns ``label, method, shot, n_seeds, seeds, n, <metric>_mean, <metric>_std``;
    rows in the order of ``runs.specs``, shots all/many/median/few."""
    from .results import summary_table
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


def plain_table(df: pd.DataFrame, digits: int = 3):
    """``df`` as a page shows a table: the index folded into columns and hidden, floats rounded."""
    named = [n for n in (df.index.names or []) if n is not None]
    if named:
        df = df.reset_index()
    return df.style.hide(axis="index").format(precision=digits, na_rep="–")


def caption(text: str) -> str:
    """A figure caption as a page shows it under a figure drawn in a cell (HTML, class ``caption``),
    so that it can be generated from the panels it describes."""
    import html
    return f'<p class="caption figure-caption"><span class="caption-text">{html.escape(text)}</span></p>'


def shot_table_display(table: pd.DataFrame, metric: str, digits: Optional[int] = None) -> pd.DataFrame:
    """Rows = runs, columns = shots, cells ``mean ± std`` (and the number of seeds)."""
    digits = METRIC_DIGITS.get(metric, 3) if digits is None else digits
    out = {}
    for _, r in table.iterrows():
        row = out.setdefault(r["label"], {"seeds": r["n_seeds"]})
        row[SHOT_NAMES[r["shot"]]] = format_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"], digits)
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = f"test {METRIC_NAMES.get(metric, metric)}"
    return df[[c for c in ["All", "Many", "Med.", "Few", "seeds"] if c in df.columns]]


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


def plot_shot_errors(table: pd.DataFrame, metric: str, *, title: Optional[str] = None, ax=None):
    """The paper's Fig. 1: one group of bars per run (All / Many / Median / Few test error), error
    bars = std over seeds. Returns the figure."""
    import matplotlib.pyplot as plt
    if table.empty:
        raise ValueError("no rows to plot (no run records)")
    labels = list(dict.fromkeys(table["label"]))
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(10.0, max(6.0, 0.85 * len(labels) + 2.5)), 4.0))
    else:
        fig = ax.figure
    width = 0.8 / len(SHOTS_ALL)
    x = np.arange(len(labels))
    for j, shot in enumerate(SHOTS_ALL):
        sub = table[table["shot"] == shot].set_index("label").reindex(labels)
        mean = sub[f"{metric}_mean"].to_numpy(dtype=float)
        std = sub[f"{metric}_std"].to_numpy(dtype=float)
        ax.bar(x + (j - 1.5) * width, mean, width, color=SHOT_COLORS[shot], label=SHOT_NAMES[shot],
               yerr=np.where(np.isnan(std), 0.0, std), capsize=2.5, error_kw={"lw": 1, "alpha": 0.8},
               edgecolor="white", linewidth=0.5)
    ax.set_xticks(x)
    tilt = len(labels) > 6
    ax.set_xticklabels(labels, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(f"test {METRIC_NAMES.get(metric, metric)}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(ncol=4, fontsize=9, frameon=False, loc="upper left")
    ymax = np.nanmax((table[f"{metric}_mean"] + table[f"{metric}_std"].fillna(0)).to_numpy(dtype=float))
    if np.isfinite(ymax) and ymax > 0:
        ax.set_ylim(0, ymax * 1.18)
    if title:
        ax.set_title(title, fontsize=10.5)
    fig.tight_layout()
    return fig


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


def format_ordinality(score: dict) -> str:
    """One line: overall and per-shot Spearman, adjacent violations."""
    def f(v):
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
    per = " · ".join(f"{SHOT_NAMES[s].lower().rstrip('.')} {f(score.get(f'spearman_{s}'))}"
                     for s in SHOTS if f"spearman_{s}" in score)
    line = f"Spearman {f(score.get('spearman'))}"
    if per:
        line += f" ({per})"
    line += f"; violations {score.get('adjacent_violations')}/{score.get('adjacent_pairs')}"
    return line


def shot_spans(labels, shots) -> List[Tuple[float, float, str]]:
    """Contiguous label ranges of one shot: ``[(lo, hi, shot)]`` with edges half-way between
    neighbouring labels (half the median spacing beyond the ends)."""
    labels = np.asarray(labels, dtype=np.float64)
    shots = np.asarray(shots).astype(str)
    if labels.shape != shots.shape:
        raise ValueError("labels and shots differ in length")
    if len(labels) == 0:
        return []
    o = np.argsort(labels, kind="stable")
    labels, shots = labels[o], shots[o]
    step = float(np.median(np.diff(labels))) if len(labels) > 1 else 1.0
    mids = (labels[1:] + labels[:-1]) / 2
    edges = np.concatenate([[labels[0] - step / 2], mids, [labels[-1] + step / 2]])
    spans = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or shots[i] != shots[start]:
            spans.append((float(edges[start]), float(edges[i]), str(shots[start])))
            start = i
    return spans


def shot_mae(df: pd.DataFrame) -> Dict[str, float]:
    """Count-weighted training MAE per shot (and all) from a :func:`per_label` frame."""
    out = {}
    w = df["count"].to_numpy(dtype=float)
    e = df["mae"].to_numpy(dtype=float)
    for s in SHOTS_ALL:
        m = np.ones(len(df), bool) if s == "all" else (df["shot"].to_numpy() == s)
        out[s] = float(np.sum(w[m] * e[m]) / np.sum(w[m])) if m.any() and np.sum(w[m]) > 0 else float("nan")
    return out


def plot_norm_mae(ax, df: pd.DataFrame, *, title: str = "", score: Optional[dict] = None,
                  targets: Optional[pd.DataFrame] = None, line_color: str = "#c0392b",
                  norm_max: Optional[float] = None, mae_max: Optional[float] = None):
    """One panel of Fig. 2 / 5: bars = per-label training MAE (left axis), line = per-label
    prototype norm (right axis), shot regions shaded, the ordinality score under the title,
    phase 2's predicted norms dashed (``targets``). Returns the right axis."""
    for lo, hi, s in shot_spans(df["label"], df["shot"]):
        ax.axvspan(lo, hi, color=SHOT_COLORS.get(s, "#999999"), alpha=0.11, lw=0)
    widths = float(np.median(np.diff(df["label"]))) if len(df) > 1 else 1.0
    ax.bar(df["label"], df["mae"], width=widths * 0.85, color="#8c8c8c", alpha=0.75, zorder=2)
    ax.set_ylabel("training MAE per label", fontsize=8.5)
    if mae_max is not None and np.isfinite(mae_max) and mae_max > 0:
        ax.set_ylim(0, mae_max)
    ax2 = ax.twinx()
    ax2.plot(df["label"], df["proto_norm"], color=line_color, lw=1.6, zorder=3)
    if targets is not None and "predicted_norm" in targets:
        t = targets[np.asarray(targets["count"]) > 0] if "count" in targets else targets
        ax2.plot(t["label"], t["predicted_norm"], color=line_color, lw=1.1, ls="--", zorder=3)
    ax2.set_ylabel("prototype norm", fontsize=8.5, color=line_color)
    ax2.tick_params(axis="y", colors=line_color, labelsize=8)
    ax.tick_params(labelsize=8)
    if norm_max is not None and np.isfinite(norm_max) and norm_max > 0:
        ax2.set_ylim(0, norm_max)
    else:
        ax2.set_ylim(bottom=0)
    ax.set_xlabel("training label", fontsize=8.5)
    head = title
    if score is not None:
        # two short lines: one long line runs into the neighbouring panels' titles
        head += ("\n" if head else "") + format_ordinality(score).replace("; ", "\n")
    ax.set_title(head, fontsize=9)
    return ax2


def plot_panel_grid(items: Sequence[tuple], *, ncols: int = 3, line_color: str = "#c0392b",
                    suptitle: Optional[str] = None, shared_scale: bool = False, panel_size=(5.0, 3.5)):
    """A grid of :func:`plot_norm_mae` panels from ``(title, per_label frame, ordinality score,
    phase-2 targets or None)`` items, with one legend below."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    if not items:
        raise ValueError("no panels to plot (no run records)")
    n = len(items)
    ncols = min(ncols, n)
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.7),
                             squeeze=False)
    nmax = mmax = None
    if shared_scale:
        nmax = 1.08 * max(float(np.nanmax(f["proto_norm"])) for _, f, _, _ in items)
        mmax = 1.08 * max(float(np.nanmax(f["mae"])) for _, f, _, _ in items)
    for k, (t, df, sc, tg) in enumerate(items):
        plot_norm_mae(axes[k // ncols][k % ncols], df, title=t, score=sc, targets=tg,
                      line_color=line_color, norm_max=nmax, mae_max=mmax)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    handles = [Patch(color="#8c8c8c", alpha=0.75, label="training MAE (left)"),
               Line2D([], [], color=line_color, lw=1.6, label="prototype norm (right)")]
    if any(tg is not None for _, _, _, tg in items):
        handles.append(Line2D([], [], color=line_color, lw=1.1, ls="--",
                              label="phase-2 predicted norm $\\hat{l}$"))
    handles += [Patch(color=SHOT_COLORS[s], alpha=0.25, label=f"{s}-shot labels") for s in SHOTS]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8.5, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout(rect=(0, 0.42 / (panel_size[1] * nrows + 0.7), 1, 0.97 if suptitle else 1))
    return fig


def plot_norm_grid(panels: Sequence[Tuple[str, dict]], *, phase: Optional[str] = None, ncols: int = 3,
                   line_color: str = "#c0392b", suptitle: Optional[str] = None, show_targets: bool = True,
                   shared_scale: bool = False):
    """Figs. 2 and 5: a grid of :func:`plot_norm_mae` panels, one per ``(title, run record)``
    (the record's final phase unless ``phase``; phase 2's targets dashed when ``show_targets``)."""
    items = [(t, per_label(r, phase), ordinality(r, phase), norm_targets(r) if show_targets else None)
             for t, r in panels]
    return plot_panel_grid(items, ncols=ncols, line_color=line_color, suptitle=suptitle,
                           shared_scale=shared_scale)


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


def log_ticks(ax, nbins: int = 7) -> None:
    """A logarithmic y axis labelled in plain numbers. Over less than ~1.5 decades the labels are
    evenly spaced round numbers (matplotlib's default would label one or two decade marks only);
    call it after the data are drawn."""
    from matplotlib import ticker
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 30:
        ticks = [t for t in ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
                 if lo <= t <= hi and t > 0]
        ax.yaxis.set_major_locator(ticker.FixedLocator(ticks))
        ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_training_curves(curves: pd.DataFrame, *, title: Optional[str] = None, tol: float = 0.1,
                         log: bool = True):
    """Fig. 3: per-shot training MAE over epochs (left) and validation MAE (right); a marker at
    the epoch each shot's training curve settles (:func:`convergence_epoch`). ``log``: logarithmic
    MAE axis (default; the first epochs' errors would otherwise flatten the late gap between the
    shots that the figure is about)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), sharex=True)
    for s in SHOTS:
        c = curves[curves["shot"] == s].sort_values("epoch")
        axes[0].plot(c["epoch"], c["train_mae"], color=SHOT_COLORS[s], lw=1.8, label=f"{s}-shot")
        e = convergence_epoch(c["train_mae"].to_numpy(), tol)
        if e is not None:
            y = c["train_mae"].to_numpy()[e - 1]
            axes[0].plot([c["epoch"].to_numpy()[e - 1]], [y], "o", color=SHOT_COLORS[s], ms=6,
                         mfc="white", mew=1.6)
        axes[1].plot(c["epoch"], c["val_mae"], color=SHOT_COLORS[s], lw=1.8, label=f"{s}-shot")
    axes[0].set_title("training MAE per shot (running, during each epoch)", fontsize=10)
    axes[1].set_title("validation MAE per shot", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("MAE")
        ax.grid(alpha=0.3, which="both")
        if log:
            log_ticks(ax)
        else:
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------- Tables 1-3
def paper_rows(table: int) -> List[str]:
    """The method rows of a paper table, in the paper's order."""
    from .results import paper_table
    return list(dict.fromkeys(paper_table(table)["method"]))


def table_specs(table: int, methods: Optional[Sequence[str]] = None) -> List[RunSpec]:
    """The dirlib runs behind a paper table: one per row that dirlib implements
    (:data:`PAPER_METHODS`), in the paper's order; ``methods`` (dirlib names) restricts them."""
    from .methods import catalog
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
    from .results import paper_table
    df = paper_table(table)
    return {(r.method, r.metric.lower(), r.shot): r.value for r in df.itertuples()}


def table_frame(table: int, runs: Optional[Runs] = None, *, paper: bool = True,
                digits: Optional[Dict[str, int]] = None) -> pd.DataFrame:
    """A paper table's layout with each cell's source: rows ``(method, source)`` where source is
    ``paper`` (transcribed, ``results/paper_tables.csv``) or ``dirlib`` (mean ± std over the seeds
    of ``runs``, test split), columns ``(metric, shot)``. Paper rows without dirlib records get
    only their paper line; dirlib runs that are not a paper row come last. ``paper=False``: only
    the dirlib lines (e.g. UTKFace-DIR, synthetic data)."""
    from .results import summary_table
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
    from .book import has_data
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
    reason = "SOURCE = rerun" if source == "rerun" else f"no run records under `{_rel(results_dir)}`"
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
    the paired differences per shot of :func:`dirlib.results.paired_effects`."""
    from .results import paired_effects
    metric = metric or main_metric(runs.dataset)
    by_method = {s.method: runs.records[s.label] for s in runs.present() if s.loss is None}
    return [(m, b, paired_effects(by_method[m], by_method[b], metric, shots=shots))
            for m, b in pairs if m in by_method and b in by_method]


def base_comparison(runs: "Runs", metric: Optional[str] = None, pairs=BASE_PAIRS,
                    shots=("all", "many", "median", "few")) -> pd.DataFrame:
    """:func:`base_effects` as one display table with plain columns: the base's and the method's
    mean ± std, the paired difference (method - base) with its 95% t interval, and the verdict."""
    from .results import HIGHER_IS_BETTER, summary_table
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


def style_table(df: pd.DataFrame):
    """A pandas Styler of a :func:`table_frame` table: the method and source as plain columns (no
    index column), the ``dirlib`` rows shaded when the table mixes sources."""
    if any(n is not None for n in (df.index.names or [])):
        df = df.reset_index()
    src = next((c for c in df.columns if (c[0] if isinstance(c, tuple) else c) == "source"), None)
    mixed = src is not None and df[src].nunique() > 1

    def shade(row):
        on = mixed and row[src] == "dirlib"
        return ["background-color: #eaf2fb; font-weight: 600" if on else ""] * len(row)
    cells = [("padding", "0.25em 0.6em"), ("text-align", "right"), ("white-space", "nowrap")]
    return (df.style.apply(shade, axis=1).hide(axis="index")
            .set_table_attributes('class="dataframe table"')
            .set_table_styles([{"selector": "td", "props": cells},
                               {"selector": "th", "props": cells + [("font-weight", "600")]},
                               {"selector": "th.col_heading.level0", "props": [("text-align", "center")]}]))


# ----------------------------------------------------------------------------------- section 3.2
def ridge_weight(z, y: float, lam: float) -> np.ndarray:
    """The paper's closed form (section 3.2) of ``argmin_w (z^T w - y)^2 + lam ||w||^2`` for one
    feature vector ``z``: ``w = y z / (||z||^2 + lam)``. ``lam >= 0``; ``z = 0`` with ``lam = 0``
    has no unique minimiser (error)."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    d = float(z @ z) + lam
    if d == 0:
        raise ValueError("z = 0 with lambda = 0: the ridge objective has no unique minimiser")
    return y * z / d


def ridge_weight_norm(y, znorm, lam: float):
    """``||w|| = |y| ||z|| / (||z||^2 + lam)`` (elementwise over arrays): the size of the closed-form
    weight as a function of the feature norm. It peaks at ``||z||^2 = lam`` and falls beyond."""
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(znorm, dtype=np.float64)
    if lam < 0 or np.any(s < 0):
        raise ValueError("lambda and the norms must be >= 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(y) * s / (s ** 2 + lam)


def label_norms(labels, slope: float, base: float = 1.0) -> np.ndarray:
    """A feature-norm profile over labels: ``||z_y|| = base + slope * (y - min y)`` (``slope = 0``:
    the same norm for every label; larger ``slope``: the norm grows with the label)."""
    y = np.asarray(labels, dtype=np.float64)
    s = base + slope * (y - y.min())
    if np.any(s < 0):
        raise ValueError("the norm profile goes negative; use a non-negative base and slope")
    return s


def shared_ridge_fit(labels, norms, lam: float) -> Dict[str, np.ndarray]:
    """One regressor ``w`` for all labels when every label's feature is ``z_y = ||z_y|| u`` along one
    unit direction ``u``: the ridge solution over all labels is ``w = u * sum(s y) / (sum(s^2) + lam)``
    and predicts ``y_hat = s_y * w``. Returns ``w`` (scalar along ``u``), ``pred``, the per-label
    closed-form weights ``w_y = y s_y / (s_y^2 + lam)`` and the RMSE of the shared fit."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(norms, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError("labels and norms differ in length")
    den = float(s @ s) + lam
    if den == 0:
        raise ValueError("all norms are 0 with lambda = 0: no unique minimiser")
    w = float(s @ y) / den
    pred = s * w
    per = ridge_weight_norm(y, s, lam) * np.sign(y)
    return {"w": w, "pred": pred, "per_label_w": per, "rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}


def plot_ridge(lam: float, slope: float, *, labels=None, base: float = 1.0, figsize=(10.5, 3.6), dpi=None):
    """Section 3.2 as two panels: (left) ``||w|| = |y| ||z|| / (||z||^2 + lam)`` against the feature
    norm for a few labels; (right) one shared ridge regressor over labels whose feature norms follow
    :func:`label_norms` with ``slope``: its predictions against the labels, and the per-label
    closed-form weights."""
    import matplotlib.pyplot as plt
    labels = np.arange(1, 11, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    fig, (a, b) = plt.subplots(1, 2, figsize=figsize, dpi=dpi)
    s = np.linspace(0.0, 6.0, 301)
    cmap = plt.get_cmap("viridis")
    for k, y in enumerate((1.0, 2.0, 4.0, 8.0)):
        a.plot(s, ridge_weight_norm(y, s, lam), color=cmap(k / 3.5), lw=1.7, label=f"y = {y:g}")
    if lam > 0:
        a.axvline(math.sqrt(lam), color="#888888", ls=":", lw=1)
        a.text(math.sqrt(lam), a.get_ylim()[1] * 0.95, r" $\|z\|^2=\lambda$", fontsize=8, va="top")
    a.set_xlabel(r"feature norm $\|z\|$")
    a.set_ylabel(r"$\|w\| = |y|\,\|z\| / (\|z\|^2+\lambda)$")
    a.set_title(f"closed-form weight of one sample, λ = {lam:g}", fontsize=9.5)
    a.set_ylim(0, min(a.get_ylim()[1], 8.5))
    a.legend(fontsize=8, frameon=False)
    norms = label_norms(labels, slope, base)
    fit = shared_ridge_fit(labels, norms, lam)
    b.plot(labels, labels, color="#999999", ls="--", lw=1, label="perfect fit")
    b.plot(labels, fit["pred"], "o-", color="#c0392b", lw=1.5, ms=4,
           label=r"shared $w$: $\hat y = \|z_y\| w$")
    b.set_xlabel("label y")
    b.set_ylabel("prediction")
    b2 = b.twinx()
    b2.bar(labels, norms, width=0.6, color="#2b6ca3", alpha=0.18)
    b2.set_ylabel(r"feature norm $\|z_y\|$", color="#2b6ca3")
    b2.tick_params(axis="y", colors="#2b6ca3")
    b2.set_ylim(0, max(1.0, norms.max() * 1.6))
    b.set_zorder(b2.get_zorder() + 1)
    b.patch.set_visible(False)
    b.set_title(f"one regressor for all labels: norm slope {slope:g}, RMSE {fit['rmse']:.2f}",
                fontsize=9.5)
    b.legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------- exploration
class SnapshotCallback(Callback):
    """A trainer callback that records the per-label diagnostics (prototype norms, training MAE,
    ordinality; :func:`dirlib.train.train_diagnostics`) at the end of the given epochs (1-based)."""

    name = "snapshot"

    def __init__(self, epochs: Iterable[int]):
        super().__init__()
        self.epochs = sorted({int(e) for e in epochs})
        if not self.epochs or self.epochs[0] < 1:
            raise ValueError(f"snapshot epochs must be >= 1, got {self.epochs}")
        self.snaps: Dict[int, dict] = {}

    def on_epoch_end(self, st):
        e = st.epoch + 1
        if e in self.epochs:
            from .train import train_diagnostics
            was = st.model.training
            self.snaps[e] = train_diagnostics(st.model, st.data, st.cfg, st.device)
            st.model.train(was)


def explore_method(method: str, beta: float) -> Tuple[str, dict]:
    """``method`` with the ordinal Frobenius-norm regulariser (phase 1 of the paper,
    ``frobenius_reg``) at weight ``beta``; ``beta = 0`` is the method alone."""
    if beta < 0:
        raise ValueError(f"the regulariser weight must be >= 0, got {beta}")
    if beta == 0:
        return method, {}
    name = "frobenius_reg" if method == "vanilla" else f"{method}+frobenius_reg"
    return name, {"frobenius_reg.beta": float(beta)}


def explore_data(dataset: str, data_dir=None, *, quick: bool = True, seed: int = 0):
    """The data an explorer trains on: the whole set for synthetic data, else (quick) the
    :data:`QUICK_SUBSET` subsets."""
    from .data import load_dataset
    from .cli import DATASET_DEFAULTS
    kwargs = {}
    if dataset in ("utkface-dir", "agedb-dir", "imdb-wiki-dir"):
        kwargs["img_size"] = DATASET_DEFAULTS[dataset]["img_size"]
    data = load_dataset(dataset, data_dir=data_dir, **kwargs)
    if quick and dataset != "synthetic":
        data = data.subset(QUICK_SUBSET["subset_train"], QUICK_SUBSET["subset_eval"], seed=seed)
    return data


def explore_run(data, method: str, *, beta: float = 0.0, epochs: int = 10,
                snapshots: Optional[Sequence[int]] = None, seed: int = 0, device: str = "cpu",
                threads: Optional[int] = 1) -> dict:
    """Train ``method`` (+ the ordinal regulariser at ``beta``) on ``data`` for ``epochs``. Returns
    ``{"snapshots": {epoch: {"per_label": DataFrame, "ordinality": dict}}, "test": metrics,
    "method": name, "method_kwargs": {...}}`` with snapshots at the ``snapshots`` epochs (default:
    the last). Single-phase methods only (``frobenius``, ``rrt`` ... have their own phases)."""
    from .book import make_config
    from .methods import build_method
    from .train import fit
    name, mk = explore_method(method, beta)
    snaps = sorted(set(snapshots or [epochs]))
    if snaps[-1] > epochs:
        raise ValueError(f"snapshot epoch {snaps[-1]} > epochs {epochs}")
    cfg = make_config(data.name, name, seed=seed, epochs=epochs, quick=True, device=device,
                      method_kwargs=mk, diagnostics=False, max_batches=None)
    spec = build_method(cfg, data)
    if spec.phases is not None:
        raise ValueError(f"{method!r} is a multi-phase method; the explorer trains single-phase "
                         "methods (the regulariser slider adds the paper's phase 1)")
    cb = SnapshotCallback(snaps)
    spec.callbacks.append(cb)
    with torch_threads(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = fit(cfg, data, spec)
    out = {}
    for e, d in cb.snaps.items():
        df = pd.DataFrame(d["per_label"]).sort_values("label").reset_index(drop=True)
        out[e] = {"per_label": df, "ordinality": d["ordinality"]}
    return {"snapshots": out, "test": res["test"], "method": name, "method_kwargs": mk}


def plot_snapshot(snap: dict, *, title: str = "", norm_max=None, mae_max=None, figsize=(6.4, 3.4),
                  dpi=None, line_color="#c0392b"):
    """One explorer state as a figure (a :func:`plot_norm_mae` panel)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    plot_norm_mae(ax, snap["per_label"], title=title, score=snap["ordinality"], norm_max=norm_max,
                  mae_max=mae_max, line_color=line_color)
    fig.tight_layout()
    return fig


def png_bytes(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def linked_explorer(images: Dict[tuple, bytes], axes: Sequence[Tuple[str, Sequence]], *,
                    width: str = "640px", description_width: str = "150px"):
    """Precomputed states switched in the browser without a kernel: one control per axis
    (``(description, values)``: a dropdown for text values, a selection slider for numbers), each
    ``jslink``-ed to the ``selected_index`` of the ``Stack`` level it selects; the leaves are
    ``Image`` widgets of ``images[(v1, v2, ...)]``. Works in the static page (saved widget state +
    the widget manager JS) and with a live kernel alike. Returns a ``VBox``."""
    import ipywidgets as W
    axes = [(d, list(v)) for d, v in axes]
    if not axes:
        raise ValueError("no axes")
    for d, vals in axes:
        if not vals:
            raise ValueError(f"axis {d!r} has no values")
    keys = [()]
    for _, vals in axes:
        keys = [k + (v,) for k in keys for v in vals]
    missing = [k for k in keys if k not in images]
    if missing:
        raise ValueError(f"{len(missing)} state(s) without an image, e.g. {missing[0]}")
    style = {"description_width": description_width}
    controls = []
    for d, vals in axes:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            c = W.SelectionSlider(options=[(f"{v:g}", v) for v in vals], value=vals[0],
                                  description=d, style=style, continuous_update=True,
                                  layout=W.Layout(width="100%", max_width=width))
        else:
            c = W.Dropdown(options=[(str(v), v) for v in vals], value=vals[0], description=d,
                           style=style, layout=W.Layout(width="100%", max_width=width))
        controls.append(c)
    levels: List[list] = [[] for _ in axes]

    def build(depth, prefix):
        if depth == len(axes):
            return W.Image(value=images[prefix], format="png", layout=W.Layout(width="100%", max_width=width))
        kids = [build(depth + 1, prefix + (v,)) for v in axes[depth][1]]
        st = W.Stack(children=kids, selected_index=0)
        levels[depth].append(st)
        return st

    root = build(0, ())
    links = []
    for c, stacks in zip(controls, levels):
        for st in stacks:
            links.append(W.jslink((c, "index"), (st, "selected_index")))
    box = W.VBox(controls + [root], layout=W.Layout(width="100%", max_width=width))
    box._dirlib_links = links   # keep the link widgets referenced (their models are in the state)
    return box


def plot_ridge_slopes(lam: float, slopes: Sequence[float] = (0.0, 0.5, 2.0), *, labels=None,
                      base: float = 1.0, figsize=(10.5, 3.6)):
    """Section 3.2, static summary: for each norm ``slope`` (:func:`label_norms`), the feature norm
    per label (left) and the predictions of the one shared ridge regressor (right)."""
    import matplotlib.pyplot as plt
    labels = np.arange(1, 11, dtype=float) if labels is None else np.asarray(labels, dtype=float)
    fig, (a, b) = plt.subplots(1, 2, figsize=figsize)
    cmap = plt.get_cmap("viridis")
    b.plot(labels, labels, color="#999999", ls="--", lw=1, label="perfect fit")
    for k, sl in enumerate(slopes):
        c = cmap(k / max(1, len(slopes) - 1) * 0.85)
        norms = label_norms(labels, sl, base)
        fit = shared_ridge_fit(labels, norms, lam)
        a.plot(labels, norms, "o-", color=c, ms=3.5, lw=1.5, label=f"slope {sl:g}")
        b.plot(labels, fit["pred"], "o-", color=c, ms=3.5, lw=1.5,
               label=f"slope {sl:g}: RMSE {fit['rmse']:.2f}")
    a.set_xlabel("label y")
    a.set_ylabel(r"feature norm $\|z_y\|$")
    a.set_title("feature norm per label", fontsize=9.5)
    a.set_ylim(bottom=0)
    a.legend(fontsize=8, frameon=False)
    b.set_xlabel("label y")
    b.set_ylabel(r"prediction $\|z_y\|\,w$")
    b.set_title(f"one shared ridge regressor (λ = {lam:g})", fontsize=9.5)
    b.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def live_explorer(load_data: Callable[[str], object], datasets: Sequence[str], methods: Sequence[str],
                  *, epochs: int = 10, betas: Sequence[float] = (0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0),
                  seed: int = 0, device: str = "cpu", width: str = "420px"):
    """Controls that train for real (a live kernel is needed: the button calls Python): dataset,
    method, epochs and regulariser weight, a *train* button and an output area that shows the
    resulting :func:`plot_snapshot` and test MAE. ``load_data(name)`` returns the data (cache it).
    The returned ``VBox`` has ``.run()``: train with the current settings, draw into the output,
    return the :func:`explore_run` result (the button calls it)."""
    import ipywidgets as W
    style = {"description_width": "150px"}
    lay = W.Layout(width="100%", max_width=width)   # shrinks with a narrow column
    ds = W.Dropdown(options=list(datasets), value=datasets[0], description="dataset", style=style, layout=lay)
    me = W.Dropdown(options=list(methods), value=methods[0], description="method", style=style, layout=lay)
    ep = W.IntSlider(value=epochs, min=1, max=max(50, epochs), description="epochs", style=style, layout=lay)
    be = W.SelectionSlider(options=[(f"{b:g}", b) for b in betas], value=betas[0],
                           description="regulariser weight β", style=style, layout=lay)
    btn = W.Button(description="train", button_style="primary", icon="play")
    status = W.HTML(value="<i>needs a live kernel: press train</i>")
    out = W.Output()
    box = W.VBox([ds, me, ep, be, W.HBox([btn, status]), out], layout=W.Layout(width="100%", max_width=width))

    def run(*_):
        import matplotlib.pyplot as plt
        status.value = "<i>training ...</i>"
        t0 = time.time()
        try:
            data = load_data(ds.value)
            res = explore_run(data, me.value, beta=float(be.value), epochs=int(ep.value), seed=seed,
                              device=device)
        except Exception as e:  # shown in the widget, not swallowed
            status.value = f"<b>error:</b> {type(e).__name__}: {e}"
            raise
        e = max(res["snapshots"])
        snap = res["snapshots"][e]
        out.clear_output(wait=True)
        with out:
            plot_snapshot(snap, title=f"{ds.value}: {res['method']} (β = {float(be.value):g}), epoch {e}")
            plt.show()
        status.value = (f"done in {time.time() - t0:.1f} s; test MAE {res['test']['all']['mae']:.3f}; "
                        f"Spearman {snap['ordinality']['spearman']:.3f}")
        return res

    btn.on_click(run)
    box.run = run
    box.controls = {"dataset": ds, "method": me, "epochs": ep, "beta": be}
    return box
