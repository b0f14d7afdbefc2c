"""Datasets: ``load_dataset(name, ...)`` returns a :class:`DIRData`."""
from __future__ import annotations

from .base import (SHOTS, Binning, DataNotFoundError, DIRData, ShotSpec, assign_shots,  # noqa: F401
                   label_shots, resolve_data_dir, stsb_shot_lists)
from .synthetic import load_synthetic  # noqa: F401
from .arrays import from_arrays, from_datasets  # noqa: F401

DATASETS = ("sts-b-dir", "utkface-dir", "agedb-dir", "imdb-wiki-dir", "synthetic")


def main_metric(dataset: str) -> str:
    """The error a dataset is judged by (its loader's ``DIRData.main_metric``), from its name:
    MSE on STS-B-DIR, MAE otherwise.

    >>> main_metric("sts-b-dir"), main_metric("utkface-dir")
    ('mse', 'mae')
    """
    return "mse" if dataset == "sts-b-dir" else "mae"


def load_dataset(name: str, data_dir=None, **kwargs) -> DIRData:
    """Load a dataset by name. ``data_dir`` (else ``$DIRLIB_DATA``) is the data root; unused for
    ``synthetic``. Extra kwargs go to the loader (``img_size``, ``seed`` ...)."""
    if name == "synthetic":
        kwargs.pop("img_size", None)
        return load_synthetic(**kwargs)
    if name == "sts-b-dir":
        from .stsb import load_stsb
        kwargs.pop("img_size", None)
        return load_stsb(data_dir=data_dir, **kwargs)
    if name == "utkface-dir":
        from .faces import load_utkface
        return load_utkface(data_dir=data_dir, **kwargs)
    if name == "agedb-dir":
        from .faces import load_agedb
        return load_agedb(data_dir=data_dir, **kwargs)
    if name == "imdb-wiki-dir":
        from .faces import load_imdb_wiki
        return load_imdb_wiki(data_dir=data_dir, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
