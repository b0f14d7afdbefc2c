"""Label binning, shot assignment and the dataset container every loader returns.

Conventions (shared by every loader, loss and metric of dirlib):

* A dataset item is ``(x, y, idx)``: ``x`` the input tensor (image ``(3, H, W)``, token ids
  ``(2, T)`` for sentence pairs, features ``(D,)`` for tabular data), ``y`` a float32 scalar
  tensor holding the *model-space* target (``label / target_scale``), ``idx`` the item's
  position in its split (so methods can look up per-sample weights).
* Labels kept on :class:`DIRData` (``train_labels`` ...) are in *label space* (ages in years,
  STS-B scores in 0..5). Metrics are always computed in label space.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

SHOTS = ("many", "median", "few")


# --------------------------------------------------------------------------------------------
# Binning
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binning:
    """Equal-width (or arbitrary) bins over the label axis.

    ``index(y)`` follows ``np.histogram``: bins are half-open ``[e_k, e_{k+1})`` except the last,
    which is closed, so the STS-B score 5.0 falls into bin 49 of ``uniform(0, 5, 0.1)`` exactly as
    the DIR benchmark does. Labels outside the edges are clipped into the first/last bin (the
    benchmark clamps ages >= 120 into bin 120); :meth:`outside` tells which ones were.
    """

    edges: np.ndarray
    float32: bool = False

    def __post_init__(self):
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0):
            raise ValueError("Binning edges must be a strictly increasing 1-d array of >= 2 values")
        object.__setattr__(self, "edges", e)

    @classmethod
    def integer(cls, lo: int, hi: int) -> "Binning":
        """One bin per integer label ``lo..hi`` (bin k holds label ``lo + k``)."""
        return cls(np.arange(lo, hi + 2, dtype=np.float64) - 0.5)

    @classmethod
    def uniform(cls, lo: float, hi: float, width: float, float32: bool = False) -> "Binning":
        """``n = (hi - lo) / width`` equal bins. ``float32=True`` compares labels and edges in float32,
        as STS-B-DIR's ``util.py::STSShotAverage._get_bin_idx`` does ("under np.float32 division"):
        it decides on which side of an edge a score such as 0.6 falls."""
        n = int(round((hi - lo) / width))
        return cls(np.linspace(lo, hi, n + 1), float32=float32)

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    def index(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if np.isnan(y).any():
            raise ValueError("cannot bin NaN labels")
        if self.float32:
            idx = np.searchsorted(self.edges.astype(np.float32), y.astype(np.float32), side="right") - 1
        else:
            idx = np.searchsorted(self.edges, y, side="right") - 1
        idx = np.where(y == self.edges[-1], self.n_bins - 1, idx)
        return np.clip(idx, 0, self.n_bins - 1).astype(np.int64)

    def outside(self, y) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return (y < self.edges[0]) | (y > self.edges[-1])

    def counts(self, labels) -> np.ndarray:
        return np.bincount(self.index(labels), minlength=self.n_bins)


# --------------------------------------------------------------------------------------------
# Shots
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShotSpec:
    """How test labels are split into many / median / few shots.

    Default (``lists=None``): the DIR benchmark rule (``agedb-dir/train.py::shot_metrics``): for
    each unique test label, count the training samples with that label (exactly equal labels when
    ``by == "label"``, same bin when ``by == "bin"``); ``> many_thr`` is many, ``< few_thr`` is few,
    anything else median. ``lists`` overrides that with explicit bin lists (STS-B-DIR's hard-coded
    ``util.py::STSShotAverage._shot_idx``): ``{"many": [...], "median": [...]}``, the rest few.
    """

    many_thr: int = 100
    few_thr: int = 20
    by: str = "label"  # "label" | "bin"
    lists: Optional[dict] = None

    def __post_init__(self):
        if self.by not in ("label", "bin"):
            raise ValueError(f"ShotSpec.by must be 'label' or 'bin', got {self.by!r}")
        if self.few_thr > self.many_thr:
            raise ValueError("few_thr must be <= many_thr")


# STS-B-DIR's hard-coded shot lists over 50 bins of width 0.1 (util.py::STSShotAverage)
STSB_MANY_BINS = (0, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 49)
STSB_MEDIAN_BINS = (2, 4, 6, 8, 27, 35, 37)


def stsb_shot_lists() -> dict:
    """The benchmark's hard-coded STS-B-DIR lists (22 many bins, 7 median bins, the other 21 few),
    to be used with ``Binning.uniform(0, 5, 0.1, float32=True)``. On Yang's split the many list is
    exactly the bins with > 100 training pairs; the median list corresponds to a few-threshold
    between 28 and 35, not 20 (checked in ``tests/data/test_real_loaders.py``)."""
    return {"many": list(STSB_MANY_BINS), "median": list(STSB_MEDIAN_BINS)}


def assign_shots(test_labels, train_labels, spec: ShotSpec = ShotSpec(),
                 binning: Optional[Binning] = None) -> np.ndarray:
    """Return an array of ``'many' | 'median' | 'few'`` for every test sample."""
    test_labels = np.asarray(test_labels, dtype=np.float64)
    train_labels = np.asarray(train_labels, dtype=np.float64)
    out = np.empty(len(test_labels), dtype=object)
    if spec.lists is not None:
        if binning is None:
            raise ValueError("explicit shot lists need a Binning")
        b = binning.index(test_labels)
        many, med = set(spec.lists.get("many", ())), set(spec.lists.get("median", ()))
        out[:] = ["many" if k in many else "median" if k in med else "few" for k in b]
        return out.astype(str)
    if spec.by == "bin":
        if binning is None:
            raise ValueError("ShotSpec(by='bin') needs a Binning")
        counts = binning.counts(train_labels)
        per_sample = counts[binning.index(test_labels)]
    else:
        uniq, cnt = np.unique(train_labels, return_counts=True)
        lookup = dict(zip(uniq.tolist(), cnt.tolist()))
        per_sample = np.array([lookup.get(v, 0) for v in test_labels.tolist()])
    out[:] = np.where(per_sample > spec.many_thr, "many",
                      np.where(per_sample < spec.few_thr, "few", "median"))
    return out.astype(str)


def label_shots(binning: Binning, train_labels, spec: ShotSpec = ShotSpec()) -> np.ndarray:
    """Shot of every *bin* (by its training count, or by the explicit lists)."""
    if spec.lists is not None:
        many, med = set(spec.lists.get("many", ())), set(spec.lists.get("median", ()))
        return np.array(["many" if k in many else "median" if k in med else "few"
                         for k in range(binning.n_bins)])
    counts = binning.counts(train_labels)
    return np.where(counts > spec.many_thr, "many", np.where(counts < spec.few_thr, "few", "median"))


# --------------------------------------------------------------------------------------------
# Data location and errors
# --------------------------------------------------------------------------------------------
class DataNotFoundError(FileNotFoundError):
    """A data file or directory is missing; the message says what, where and how to get it."""


def resolve_data_dir(data_dir=None) -> Path:
    """The data root: the argument, else ``$DIRLIB_DATA``; a clear error when neither exists."""
    if data_dir is None:
        data_dir = os.environ.get("DIRLIB_DATA")
    if not data_dir:
        raise DataNotFoundError(
            "No data directory given: pass --data-dir DIR (or data_dir=...) or set DIRLIB_DATA. "
            "Expected layout: DIR/sts-b-dir/{train,dev,test}_new.tsv, DIR/utkface/crop_part1/*.jpg, "
            "DIR/agedb-dir/agedb.csv (+ image root). See README.md#data.")
    p = Path(data_dir).expanduser()
    if not p.is_dir():
        raise DataNotFoundError(f"Data directory {p} does not exist (from --data-dir or DIRLIB_DATA).")
    return p


def require_file(path: Path, what: str, how: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"Missing {what}: {path} does not exist. {how}")
    return path


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def utf8_lines(path):
    """The lines of a text file (line endings kept), decoded as UTF-8 one by one: a byte that is not
    UTF-8 raises ``ValueError("FILE:LINE: ...")`` instead of a bare ``UnicodeDecodeError``."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line, "
                                 f"{raw[e.start:e.start + 1]!r}); save the file as UTF-8") from None


def check_labels(labels, name: str, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """Reject NaN / infinite / out-of-range labels with a message that says where."""
    labels = np.asarray(labels, dtype=np.float64)
    bad = ~np.isfinite(labels)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: {int(bad.sum())} non-finite label(s), first at row {i} "
                         f"(value {labels[i]})")
    out = (labels < lo) | (labels > hi)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(f"{name}: {int(out.sum())} label(s) outside [{lo}, {hi}], first at row {i} "
                         f"(value {labels[i]})")
    return labels


# --------------------------------------------------------------------------------------------
# The container every loader returns
# --------------------------------------------------------------------------------------------
@dataclass
class DIRData:
    """A loaded DIR dataset: three splits plus everything methods and metrics need.

    ``train/val/test`` are ``torch.utils.data.Dataset`` objects yielding ``(x, y, idx)``.
    ``*_labels`` are numpy float arrays in label space, aligned with the datasets' indices.
    ``target_scale``: the model regresses ``label / target_scale`` (STS-B: 5, as the benchmark).
    ``main_metric``: ``"mae"`` (ages) or ``"mse"`` (STS-B): model selection and the loss default.
    ``model``: default encoder name and kwargs for :func:`dirlib.models.build_model`.
    ``info``: provenance (file checksums, sizes, OOV rate, notes on deviations).
    """

    name: str
    train: Any
    val: Any
    test: Any
    train_labels: np.ndarray
    val_labels: np.ndarray
    test_labels: np.ndarray
    binning: Binning
    shot_spec: ShotSpec = field(default_factory=ShotSpec)
    target_scale: float = 1.0
    main_metric: str = "mae"
    gm_eps: float = 0.0
    pearson: bool = False
    model: str = "mlp"
    model_kwargs: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    # a version of ``train`` without augmentation (for prototype / FDS passes); defaults to train
    train_eval: Any = None
    # loader extras: "train_two_view" (a train dataset giving two augmented views), "two_view"...
    extra: dict = field(default_factory=dict)
    # labels that define the shots (None: train_labels); set by subset() to the full train labels
    shot_labels: Optional[np.ndarray] = None

    def __post_init__(self):
        for split in ("train", "val", "test"):
            labels = getattr(self, f"{split}_labels")
            setattr(self, f"{split}_labels", check_labels(labels, f"{self.name} {split} labels"))
        if self.train_eval is None:
            self.train_eval = self.train
        empty = np.flatnonzero(self.binning.counts(self.train_labels) == 0)
        self.info.setdefault("empty_train_bins", int(len(empty)))

    @property
    def train_bins(self) -> np.ndarray:
        return self.binning.index(self.train_labels)

    @property
    def shot_reference(self) -> np.ndarray:
        return self.train_labels if self.shot_labels is None else self.shot_labels

    def shots(self, labels: Sequence[float]) -> np.ndarray:
        return assign_shots(labels, self.shot_reference, self.shot_spec, self.binning)

    def bin_shots(self) -> np.ndarray:
        return label_shots(self.binning, self.shot_reference, self.shot_spec)

    def subset(self, n_train: Optional[int] = None, n_eval: Optional[int] = None,
               seed: int = 0) -> "DIRData":
        """A smaller copy for quick runs: ``n_train`` training samples drawn uniformly at random
        (the long tail is kept in proportion) and ``n_eval`` samples of each of val / test drawn
        per label as evenly as possible (they stay balanced). Shots are still defined by the FULL
        training label counts (``shot_labels``), so a quick run's shot metrics mean the same thing.
        """
        import copy

        rng = np.random.RandomState(seed)

        def pick_train(n):
            if n is None or n >= len(self.train_labels):
                return np.arange(len(self.train_labels))
            return np.sort(rng.choice(len(self.train_labels), n, replace=False))

        def pick_eval(labels, n):
            if n is None or n >= len(labels):
                return np.arange(len(labels))
            order = []
            groups = [list(rng.permutation(np.flatnonzero(labels == v))) for v in np.unique(labels)]
            while len(order) < n:
                for g in groups:
                    if g and len(order) < n:
                        order.append(g.pop())
            return np.sort(np.array(order))

        it = pick_train(n_train)
        iv, ie = pick_eval(self.val_labels, n_eval), pick_eval(self.test_labels, n_eval)
        out = copy.copy(self)
        out.train, out.train_eval = SubsetItems(self.train, it), SubsetItems(self.train_eval, it)
        out.val, out.test = SubsetItems(self.val, iv), SubsetItems(self.test, ie)
        out.train_labels = self.train_labels[it]
        out.val_labels, out.test_labels = self.val_labels[iv], self.test_labels[ie]
        out.shot_labels = self.shot_labels if self.shot_labels is not None else self.train_labels
        out.extra = dict(self.extra)
        if "train_two_view" in self.extra:
            out.extra["train_two_view"] = SubsetItems(self.extra["train_two_view"], it)
        out.info = {**self.info, "subset": {"n_train": len(it), "n_val": len(iv), "n_test": len(ie),
                                             "seed": seed}}
        return out

    def __repr__(self) -> str:
        s = self.summary()
        return (f"DIRData({s['name']!r}: {s['n_train']} train / {s['n_val']} val / {s['n_test']} "
                f"test, {s['n_bins']} bins, main metric {self.main_metric}, target_scale "
                f"{self.target_scale:g}, task family {s.get('task_family', '?')})")

    def summary(self) -> dict:
        return {"name": self.name, "n_train": len(self.train_labels), "n_val": len(self.val_labels),
                "n_test": len(self.test_labels), "n_bins": self.binning.n_bins,
                "test_shot_counts": {s: int((self.shots(self.test_labels) == s).sum()) for s in SHOTS},
                **{k: v for k, v in self.info.items() if not isinstance(v, (dict, list))}}


class SubsetItems:
    """Items ``(x, y, j)`` of ``dataset`` restricted to ``indices``, re-indexed ``0..len-1``."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        x, y, _ = self.dataset[int(self.indices[j])]
        return x, y, j


def warn_once(msg: str):
    warnings.warn(msg, stacklevel=2)
