"""Vanilla: plain regression with the base loss (``--loss``; the dataset's default: L1 for
ages, MSE for STS-B), no re-balancing."""
from .common import Part

NAMES = {"vanilla": "Plain regression with the base loss (--loss), no re-balancing."}
DEFAULTS = {}


def build(name, opts, cfg, data) -> Part:
    return Part()
