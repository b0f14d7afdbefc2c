"""SQINV: square-root inverse-frequency sample weights (Yang et al. 2021's benchmark,
``--reweight sqrt_inv``)."""
from .common import Part

NAMES = {"sqinv": "Square-root inverse-frequency sample weights (SQINV)."}
DEFAULTS = {}


def build(name, opts, cfg, data) -> Part:
    return Part(weighting={"reweight": "sqrt_inv"})
