"""Ordinal Entropy (Zhang et al. 2023): diversity of the batch's normalised label prototypes,
weighted by label distance, plus tightness of each feature to its prototype. The core is
:func:`dirlib.losses.oe.oe_core`, shared with the paper's OE term."""
from .common import Part, Regularizer
from .options import Default

NAMES = {"oe": "Ordinal Entropy: diversity of normalised batch prototypes weighted by label "
               "distance, plus tightness (weight 1)."}
DEFAULTS = {
    "weight": Default(1.0, source="OE README.md (loss = loss + oe_loss)"),
    "lambda_d": Default(1.0, source="OE AgeEstimation/OrdinalEntropy.py"),
    "lambda_t": Default(1.0, source="OE AgeEstimation/OrdinalEntropy.py"),
    "tightness_form": Default("75fc9d5", source="needylove/OrdinalEntropy HEAD 75fc9d5 (with the square "
                                                "root); 4a4dd5f is the first upload"),
}


def build(name, opts, cfg, data) -> Part:
    from ..losses.oe import TIGHTNESS_FORMS, ordinal_entropy
    form = opts["tightness_form"]
    if form not in TIGHTNESS_FORMS:
        raise ValueError(f"option oe.tightness_form (--method-arg oe.tightness_form=...) must be one of "
                         f"{', '.join(TIGHTNESS_FORMS)} (commits of needylove/OrdinalEntropy), got {form!r}")
    ld, lt = opts["lambda_d"], opts["lambda_t"]

    def oe(b):
        return ordinal_entropy(b.z, b.y, lambda_d=ld, lambda_t=lt, tightness_form=form)
    return Part(callbacks=[Regularizer("oe", opts["weight"], oe)])
