"""INV: inverse-frequency sample weights (Yang et al. 2021's benchmark, ``--reweight inverse``);
counts are clipped to [5, 1000] for ages, as ``agedb-dir/datasets.py::_prepare_weights``."""
from .common import Part

NAMES = {"inv": "Inverse-frequency sample weights (INV; counts clipped to [5, 1000] for ages)."}
DEFAULTS = {}


def build(name, opts, cfg, data) -> Part:
    return Part(weighting={"reweight": "inverse"})
