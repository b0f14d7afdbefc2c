"""Vanilla: plain regression with the base loss (``--loss``; the dataset's default: L1 for
ages, MSE for STS-B), no re-balancing."""
from .common import Part

NAMES = {"vanilla": "Plain regression with the base loss (--loss), no re-balancing."}
DEFAULTS = {}
#: the trials of ``dirlib.tools.tune`` (docs/audit-plan.md): the base's own knobs, the trainer's lr and
#: weight decay (``None``: the dataset's default)
SEARCH_SPACE = [{"lr": 5e-4}, {"lr": 1e-3}, {"lr": 2e-3}, {"lr": 1e-3, "weight_decay": 1e-4}]


def build(name, opts, cfg, data) -> Part:
    return Part()
