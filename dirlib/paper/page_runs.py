"""Which run records a page shows, and where they came from.

Where numbers come from (:func:`get_runs`, the same logic on every page)
-------------------------------------------------------------------------
* ``source="cached"``: completed run records (``**/run.json``) under ``results_dir`` are used. For
  ``dataset="auto"`` the first dataset of ``prefer`` that has records for any of the requested runs
  is taken. Records of one run (method + base loss + method arguments) that differ in more than the
  seed are not mixed: the largest such group (most seeds) is kept, on the data hash that covers the
  most runs. A figure uses stored records only when every run it needs has some (``require="all"``,
  the default: a figure never mixes stored runs with runs trained now on other data); tables show
  what is stored (``"any"``), the rest listed in ``Runs.missing``.
* When the stored records do not cover the page (or ``source="rerun"``), the missing runs are
  trained as a grid of :mod:`dirlib.tools.sweep` jobs (the one grid runner): ``quick=True`` on synthetic
  data (``dataset="auto"``) or on small subsets of real data (:data:`QUICK_SUBSET`), with few
  epochs, into a scratch folder (:func:`scratch_dir`, ``book/_exec/quick_runs``: gitignored,
  shared by the pages of one build, so a run with the same configuration is trained once);
  ``quick=False`` with the dataset's recipe into ``results_dir/runs/<dataset>/<method>/seed<k>``
  (the sweep's layout), so full runs become records to commit. A completed record of the
  identical configuration in that folder is reused, not trained again.
* :meth:`Runs.describe` says in words which it was; every figure title carries :meth:`Runs.tag`.

Quick runs on synthetic data use one torch thread (:func:`torch_threads`): the tiny MLP is 30-50x
slower with two threads on a busy two-core machine (measured here).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..datasets import get as get_dataset
from ..datasets import is_spec
from .naming import dataset_name, display_name

#: the repository (the book's scratch folder and the paths pages show are relative to it)
ROOT = Path(__file__).resolve().parents[2]


#: the datasets the age figures (the paper's Figs. 1-3, 5 are on AgeDB-DIR) look for, in order
AGE_PREFER = ("agedb-dir", "utkface-dir", "imdb-wiki-dir", "sts-b-dir")


#: quick runs on real data: a random training subset and balanced evaluation subsets
QUICK_SUBSET = {"subset_train": 1500, "subset_eval": 300}


# ----------------------------------------------------------------------------------- page configs
def has_data(dataset: str, data_dir=None) -> bool:
    """Whether the files ``dataset`` needs are under ``data_dir`` (else ``$DIRLIB_DATA``); a
    dataset that needs none (synthetic) always has them."""
    info = get_dataset(dataset)
    if not info.files(Path(".")):
        return True
    d = data_dir or os.environ.get("DIRLIB_DATA")
    if not d or not Path(d).is_dir():
        return info.has_data(".") if is_spec(dataset) else False
    return info.has_data(d)


def resolve_dataset(dataset: str, data_dir=None, prefer: Sequence[str] = ("sts-b-dir", "utkface-dir")
                    ) -> str:
    """The dataset a notebook uses: ``dataset`` itself (its data must exist: a clear error
    otherwise), or for ``"auto"`` the first of ``prefer`` whose data is present, else
    ``"synthetic"``."""
    if dataset == "auto":
        for name in prefer:
            if has_data(name, data_dir):
                return name
        return "synthetic"
    try:
        get_dataset(dataset)
    except ValueError as e:
        raise ValueError(f"DATASET = {dataset!r} is not valid ({e}), or use 'auto'") from None
    if not has_data(dataset, data_dir):
        from ..data import DataNotFoundError
        raise DataNotFoundError(f"DATASET = {dataset!r} but its files are not under DATA_DIR = "
                                f"{data_dir or os.environ.get('DIRLIB_DATA')!r}; see README.md#data "
                                f"(or use DATASET = 'auto' / 'synthetic')")
    return dataset


#: quick settings on real data: a cap on training batches per epoch (a dataset file's ``QUICK``
#: may change the quick settings; a ``SMALL`` one trains uncapped)
QUICK_MAX_BATCHES = 20


def make_config(dataset: str, method: str, *, seed: int = 0, epochs: Optional[int] = None,
                quick: bool = True, device: str = "auto", **overrides):
    """A :class:`~dirlib.train.RunConfig` with the dataset's recipe defaults (``dirlib.cli``). Quick:
    ``epochs`` defaults to 5 on synthetic data and 1 elsewhere; on a dataset that is not ``small``
    (real data), training is capped at :data:`QUICK_MAX_BATCHES` batches per epoch and the splits
    are the :data:`QUICK_SUBSET` subsets (shots keep the full training counts); no progress bars.
    ``overrides`` win."""
    from ..train import RunConfig
    d = {}
    if quick:
        info = get_dataset(dataset)
        d.update({"epochs": 1, **info.quick})
        if not info.small:
            d.update({"max_batches": QUICK_MAX_BATCHES, **QUICK_SUBSET})
    if epochs is not None:
        d["epochs"] = int(epochs)
    d.update(overrides)
    d.setdefault("progress", False)
    return RunConfig.for_dataset(dataset, method=method, seed=seed, device=device, **d)



def default_loss(dataset: str) -> str:
    """The base loss a run gets when its config says ``loss=None`` (:func:`dirlib.methods.default_loss`:
    MSE on STS-B-DIR, L1 on the age datasets and synthetic data)."""
    return get_dataset(dataset).default_loss


def scratch_dir() -> Path:
    """The quick runs' folder: ``book/_exec/quick_runs`` (gitignored; ``make clean`` removes it)."""
    return ROOT / "book" / "_exec" / "quick_runs"


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
        """Folder name: the method (``+`` -> ``_``, as :func:`dirlib.tools.sweep.run_dir`), then a
        suffix for a non-default loss or method arguments."""
        s = self.method.replace("+", "_")
        ov = self.overrides(dataset)
        if "loss" in ov:
            s += f"__loss-{ov['loss']}"
        if "method_kwargs" in ov:
            from ..records import stable_hash
            s += f"__kw-{stable_hash(ov['method_kwargs'])[:8]}"
        return s


def run_spec(method: str, label: str = "", *, loss: Optional[str] = None,
             method_kwargs: Optional[dict] = None) -> RunSpec:
    """A :class:`RunSpec`; ``method`` is checked against dirlib.methods (clear error on a typo)."""
    from ..methods import parse_method
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


def record_datasets(results_dir, prefer: Sequence[str] = AGE_PREFER) -> List[str]:
    """The datasets with completed run records under ``results_dir``: those of ``prefer`` in that
    order, then synthetic. ``[]`` when there are none (or no such folder)."""
    from .record_tables import load_records
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


# ----------------------------------------------------------------------------------- stored records
def _group_key(rec: dict) -> str:
    from ..records import stable_hash
    from .record_tables import comparable_config
    return stable_hash(comparable_config(rec["config"]))


def _finished(rec: dict) -> str:
    return str(rec.get("finished") or "")


def select_records(records: Sequence[dict], specs: Sequence[RunSpec]) -> Tuple[Dict[str, list], list]:
    """Pick, for each spec, the completed records to show: among the records matching it, grouped
    by configuration up to the seed, the largest group (ties: the most recently finished) on the
    data hash that covers the most specs (ties: the most records) and, so that a table never mixes
    protocols, of the protocol :func:`dirlib.paper.record_tables.main_protocol` picks among the specs'
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
    from .record_tables import main_protocol, protocol_key
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

    def methods_by_label(self) -> Dict[str, str]:
        """``{label: method}`` of the runs with records (a non-default loss or method arguments
        make another run of a method: those are left out)."""
        return {s.label: s.method for s in self.present() if not s.loss and not s.method_kwargs}

    def first(self, label: str) -> dict:
        """The record of ``label`` with the lowest seed."""
        if label not in self.records:
            raise KeyError(f"no run records for {label!r}; present: {list(self.records)}")
        return self.records[label][0]

    @property
    def synthetic(self) -> bool:
        return get_dataset(self.dataset).small

    def seeds(self) -> list:
        return sorted({r["config"].get("seed") for rs in self.records.values() for r in rs},
                      key=lambda x: (x is None, x))

    def epochs(self) -> list:
        return sorted({r["config"].get("epochs") for rs in self.records.values() for r in rs},
                      key=lambda x: (x is None, x))

    def tag(self) -> str:
        """A short provenance label for figure titles."""
        name = dataset_name(self.dataset)
        if self.source == "none":
            return f"{name}: no run records"
        if self.source == "cached":
            return f"{name}: stored run records"
        if self.synthetic:
            return "synthetic data: quick CPU run" if self.quick else "synthetic data"
        return f"{name}: quick CPU subset run" if self.quick else f"{name}: trained"

    def describe(self) -> str:
        """Markdown: which numbers these are and where they come from."""
        folder = repo_relative(self.folder)
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


def repo_relative(path) -> str:
    """``path`` relative to the repository root when it lies inside it (pages show no build-machine
    paths), else as given."""
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
    from .record_tables import load_records
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
    any), of the protocol :func:`dirlib.paper.record_tables.main_protocol` picks. Returns
    ``(dataset or None, specs)``, specs ordered by ``order`` (method names) first."""
    from .record_tables import load_records
    results_dir = Path(results_dir)
    recs = [r for r in (load_records(results_dir) if results_dir.is_dir() else [])
            if r.get("status") == "completed"]
    candidates = list(prefer) + ["synthetic"] if dataset == "auto" else [dataset]
    ds = next((d for d in candidates if any(r["config"].get("dataset") == d for r in recs)), None)
    if ds is None:
        return None, []
    # only the protocol with the most distinct runs (then records): a page shows one protocol
    from .record_tables import main_protocol, protocol_key, run_key
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
                from ..records import stable_hash
                label += f" [{stable_hash(dict(kw))[:6]}]"
            seen[key] = RunSpec(c["method"], label, loss=loss, method_kwargs=kw)
    rank = {m: i for i, m in enumerate(order)}
    specs = sorted(seen.values(), key=lambda s: (rank.get(base_of(s.method), len(rank)),
                                                 base_of(s.method), s.method != base_of(s.method),
                                                 s.method, s.label))
    return ds, specs


def base_of(method: str) -> str:
    """The base a run of the paper's method is compared with, so that it sits right after it:
    ``"lds+frobenius"`` -> ``"lds"``, ``"frobenius"`` -> ``"vanilla"``; other methods are their own."""
    parts = method.split("+")
    if "frobenius" not in parts:
        return method
    return "+".join(p for p in parts if p != "frobenius") or "vanilla"


# ----------------------------------------------------------------------------------- training
def training_dataset(dataset: str, *, quick: bool, data_dir=None,
                     prefer: Sequence[str] = AGE_PREFER) -> str:
    """The dataset a page trains on: ``dataset`` itself (its files must exist), or for ``"auto"``
    synthetic data in quick mode and else the first of ``prefer`` whose data is present."""
    if dataset == "auto" and quick:
        return "synthetic"
    return resolve_dataset(dataset, data_dir, prefer=tuple(prefer))


def run_config(spec: RunSpec, dataset: str, seed: int, *, quick: bool, epochs: Optional[int] = None,
               device: str = "auto"):
    """The :class:`~dirlib.train.RunConfig` of one training run: :func:`make_config` plus the
    spec's overrides."""
    return make_config(dataset, spec.method, seed=seed, epochs=epochs, quick=quick, device=device,
                       **spec.overrides(dataset))


def train_runs(specs: Sequence[RunSpec], seeds: Sequence[int], *, dataset: str, folder, quick: bool,
               epochs: Optional[int] = None, device: str = "auto", data_dir=None, data=None,
               log: Optional[Callable[[str], None]] = None, reason: str = "") -> Runs:
    """Train every spec x seed on ``dataset`` into ``folder`` as :mod:`dirlib.tools.sweep` jobs
    (:func:`dirlib.tools.sweep.run_job`, the one grid runner), and collect their records.

    Layout: ``folder/<dataset>/<spec.slug>/seed<k>/run.json``, with a ``-<config hash>`` suffix on
    the spec folder in quick mode (the scratch folder holds runs of several pages; two configurations
    never share a folder). A completed record of the same configuration and data is reused; a record
    of another run in the folder is refused untouched. A failed run raises ``RuntimeError`` naming
    it (its record keeps the traceback). A run that another process is training (its folder is
    locked: two pages of a parallel book build) is waited for, then reused. Checkpoints of completed
    runs are deleted. Warnings raised
    while training are collected into ``Runs.notes`` (deduplicated) instead of cluttering the page.
    """
    from .. import records as R
    from ..experiment import load_for_config
    from ..tools.sweep import Job, run_job
    specs = list(specs)
    folder = Path(folder)
    out = Runs(dataset=dataset, source="trained", folder=str(folder), quick=quick, specs=specs,
               reason=reason)
    seen_warn = {}
    threads = 1 if get_dataset(dataset).small else None
    for s in specs:
        recs = []
        for seed in seeds:
            cfg = run_config(s, dataset, seed, quick=quick, epochs=epochs, device=device)
            slug = s.slug(dataset)
            if quick:
                slug += "-" + _group_key({"config": cfg.to_dict()})[:8]
            fields = {k: v for k, v in cfg.to_dict().items() if k not in ("dataset", "method", "seed")}
            job = Job(dataset, s.method, int(seed), str(folder), tuple(sorted(fields.items())),
                      None if data_dir is None else str(data_dir), delete_ckpt=True, slug=slug)
            if data is None:
                data = load_for_config(dataclasses.replace(cfg, subset_train=None, subset_eval=None),
                                       data_dir)
            if log:
                log(f"training {s.label} ({s.method}) seed {seed} on {dataset} ...")
            t0 = time.time()
            with warnings.catch_warnings(record=True) as caught, torch_threads(threads):
                warnings.simplefilter("always")
                res = run_job(job, data=data)
                if res["status"] == "failed" and res["message"].startswith("RunLocked"):
                    # another page of a parallel book build trains this very run: wait, then reuse
                    R.wait_unlocked(job.folder)
                    res = run_job(job, data=data)
            if res["status"] == "failed":
                raise RuntimeError(f"training {s.label} ({s.method}) seed {seed} on {dataset} failed: "
                                   f"{res['message']} (record: {job.folder / 'run.json'})")
            for w in caught:
                seen_warn.setdefault(f"{w.category.__name__}: {w.message}", set()).add(s.label)
            if res["status"] == "skipped":
                out.reused += 1
            else:
                out.trained += 1
                if log:
                    log(f"  done in {time.time() - t0:.1f} s")
            recs.append(R.read_json(job.folder / "run.json"))
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
            reason = (f"SOURCE = cached, but `{repo_relative(results_dir)}` holds {runs.dataset} records of "
                      f"only {', '.join(s.label for s in runs.present())}; this page needs all of "
                      f"its runs ({', '.join(runs.missing)} missing)")
        else:
            reason = f"SOURCE = cached, but `{repo_relative(results_dir)}` has no run records for these runs"
    else:
        if not train:
            raise ValueError("train=False with SOURCE='rerun'")
        reason = "SOURCE = rerun"
    ds = training_dataset(dataset, quick=quick, data_dir=data_dir, prefer=prefer)
    if epochs is None and quick and get_dataset(ds).small and quick_epochs is not None:
        epochs = quick_epochs
    folder = Path(scratch) if scratch is not None else (
        scratch_dir() if quick else Path(results_dir) / "runs")
    return train_runs(specs, list(seeds), dataset=ds, folder=folder, quick=quick, epochs=epochs,
                      device=device, data_dir=data_dir, log=log, reason=reason)

