"""Phase 1 of the paper's method alone: the ordinal regulariser on batch-prototype norms
(eqs. 1-6), without NormNet and the norm-aligned fine-tuning."""
from .common import Part
from .frobenius import ORDINAL_DEFAULTS, OrdinalCallback, ordinal_regularizer

NAMES = {"frobenius_reg": "Phase 1 of the paper's method alone (the ordinal norm regulariser, "
                          "no phases 2-3)."}
DEFAULTS = ORDINAL_DEFAULTS


def build(name, opts, cfg, data) -> Part:
    reg = ordinal_regularizer(opts, data)
    return Part(callbacks=[OrdinalCallback(reg, opts["beta"])],
                settings={"ordinal_config": reg.config.to_dict()})
