"""The named datasets, one file per dataset, found by :func:`catalog` (as ``dirlib/methods/``).

Each file of this package declares:

* ``NAME`` (the id runs and records use) and ``TITLE`` (how prose names it);
* ``FAMILY``: whose published method defaults apply, ``"age"`` (AgeDB/IMDB-WIKI) or ``"sts"``;
* ``MAIN_METRIC``: the error it is judged and selected by (``"mae"`` or ``"mse"``), which also
  picks the default loss (L1 or MSE); ``TABLE_METRICS``: what its tables report;
* ``IMAGES``: whether it holds images (``--img-size`` applies);
* ``RECIPE``: its training recipe (:class:`~dirlib.train.RunConfig` fields);
* ``files(root)``: the paths it needs under the data root (what ``has_data`` checks);
* ``load(data_dir=None, **kwargs)``: its :class:`~dirlib.data.base.DIRData`, with its bins and
  shots;
* optionally ``BUCKETS`` (the benchmark's FDS bucket layout, ``dict(first, last, start)``) and
  ``LABEL_GRID`` (``(low, high, step)`` of label grids such as Dist Loss's pseudo-labels);
* optionally ``QUICK`` (settings of the book's quick runs) and ``SMALL = True`` (quick runs use
  all of it, not the :data:`dirlib.paper.page_runs.QUICK_SUBSET` subsets).

Adding a dataset is adding one such file (README, "Add a dataset"). A table of your own (CSV or
Parquet) needs no file here: a dataset file in TOML names it (:mod:`dirlib.datasets.table`), and
``--dataset path/to/spec.toml`` reads it wherever a dataset name is taken.

>>> main_metric("sts-b-dir"), main_metric("utkface-dir"), get("sts-b-dir").title
('mse', 'mae', 'STS-B-DIR')
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Optional

#: the modules of this package that hold no dataset
_INFRASTRUCTURE = {"table"}
#: the files that describe a dataset of your own (:mod:`dirlib.datasets.table`)
SPEC_SUFFIXES = (".toml",)


@dataclass(frozen=True)
class Dataset:
    """What dirlib knows about one dataset (its file's declarations)."""
    name: str
    title: str
    family: str
    main_metric: str
    images: bool
    recipe: dict
    table_metrics: tuple
    files: Callable[[Path], list]
    loader: Callable
    quick: dict = field(default_factory=dict)
    small: bool = False
    buckets: Optional[dict] = None       # FDS/PRM bucket layout: integer labels first..last, from start
    label_grid: Optional[tuple] = None   # (low, high, step) of label-space grids (Dist Loss)
    module: Optional[ModuleType] = None

    def load(self, data_dir=None, **kwargs):
        """The dataset as a :class:`~dirlib.data.base.DIRData`; ``kwargs`` go to its loader."""
        if not self.images:
            kwargs.pop("img_size", None)
        return self.loader(data_dir=data_dir, **kwargs)

    def has_data(self, data_dir=None) -> bool:
        """Whether the files it needs are under ``data_dir`` (else ``$DIRLIB_DATA``)."""
        needed = self.files(Path(data_dir or os.environ.get("DIRLIB_DATA") or "."))
        return all(Path(p).exists() for p in needed)

    @property
    def default_loss(self) -> str:
        return "mse" if self.main_metric == "mse" else "l1"


def _from_module(mod: ModuleType) -> Dataset:
    return Dataset(name=mod.NAME, title=mod.TITLE, family=mod.FAMILY, main_metric=mod.MAIN_METRIC,
                   images=mod.IMAGES, recipe=dict(mod.RECIPE),
                   table_metrics=tuple(getattr(mod, "TABLE_METRICS", (mod.MAIN_METRIC, "gm"))),
                   files=mod.files, loader=mod.load, quick=dict(getattr(mod, "QUICK", {})),
                   small=bool(getattr(mod, "SMALL", False)), buckets=getattr(mod, "BUCKETS", None),
                   label_grid=getattr(mod, "LABEL_GRID", None), module=mod)


@functools.lru_cache(maxsize=None)
def catalog() -> Dict[str, Dataset]:
    """Every dataset file of the package, by name."""
    out = {}
    for m in pkgutil.iter_modules(__path__):
        if m.name in _INFRASTRUCTURE:
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        ds = _from_module(mod)
        if ds.name in out:
            raise RuntimeError(f"dataset name {ds.name!r} is declared by {out[ds.name].module.__name__} "
                               f"and {mod.__name__}")
        out[ds.name] = ds
    return out


def names() -> list:
    """The named datasets (a dataset file's path is accepted too wherever a name is)."""
    return list(catalog())


def is_spec(name: str) -> bool:
    return str(name).endswith(SPEC_SUFFIXES)


def locate_spec(name: str) -> Path:
    """A dataset file's path: as given (from the working folder), else from the repository's root
    (the book's pages run in ``notebooks/``)."""
    p = Path(name)
    if p.is_absolute() or p.exists():
        return p
    root = Path(__file__).resolve().parent.parent.parent / p
    return root if root.exists() else p


def get(name: str) -> Dataset:
    """The dataset called ``name``, or the table a dataset file ``name`` describes; an unknown
    name is an error listing the valid ones."""
    if is_spec(name):
        from .table import dataset_from_spec
        return dataset_from_spec(name, locate_spec(name))
    try:
        return catalog()[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(names())}, or a dataset "
                         f"file (*.toml) describing a table of your own") from None


def find(name: str) -> Optional[Dataset]:
    """The dataset called ``name``, or None for data dirlib does not know (``from_arrays``)."""
    try:
        return get(name)
    except (ValueError, OSError):
        return None


def main_metric(name: str) -> str:
    """The error ``name`` is judged by: MSE on STS-B-DIR, MAE otherwise (its file's
    ``MAIN_METRIC``; a name dirlib does not know is judged by MAE)."""
    try:
        return get(name).main_metric
    except (ValueError, OSError):
        return "mae"


def title(name: str) -> str:
    """How prose names the dataset (``"UTKFace-DIR"``); an unknown name as it is."""
    try:
        return get(name).title
    except (ValueError, OSError):
        return name


def load_dataset(name: str, data_dir=None, **kwargs):
    """Load a dataset by name (or dataset file). ``data_dir`` (else ``$DIRLIB_DATA``) is the data
    root. Extra kwargs go to the loader (``img_size``, ``seed`` ...)."""
    return get(name).load(data_dir=data_dir, **kwargs)


def has_data(name: str, data_dir=None) -> bool:
    return get(name).has_data(data_dir)
