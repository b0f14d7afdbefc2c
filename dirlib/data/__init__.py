"""Data: :class:`DIRData` (the splits, bins and shots a run trains and is judged on), the loaders'
machinery, and your own data (``from_arrays``, ``from_datasets``). The named datasets are
:mod:`dirlib.datasets` (``load_dataset``, ``main_metric``)."""
from __future__ import annotations

from .base import (SHOTS, Binning, DataNotFoundError, DIRData, ShotSpec, assign_shots,  # noqa: F401
                   label_shots, resolve_data_dir, stsb_shot_lists)
from .synthetic import load_synthetic  # noqa: F401
from .arrays import from_arrays, from_datasets  # noqa: F401
