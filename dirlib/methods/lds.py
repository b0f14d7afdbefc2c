"""LDS: label distribution smoothing of the re-weighting counts (Yang et al. 2021). Alone it
re-weights with SQINV for ages and INV for STS-B (the benchmark READMEs); ``inv+lds`` /
``sqinv+lds`` choose the scheme."""
from .common import Part, default_reweight
from .options import Default

NAMES = {"lds": "Label distribution smoothing (gaussian kernel, ks 5, sigma 2) of the weights "
                "(default scheme: SQINV for ages, INV for STS-B)."}
DEFAULTS = {
    "ks": Default(5, source="paper and READMEs; argparse default differs (AgeDB --lds_ks 9)"),
    "sigma": Default(2.0, source="paper and READMEs; argparse default differs (AgeDB --lds_sigma 1)"),
}


def build(name, opts, cfg, data) -> Part:
    return Part(weighting={"lds": True, "ks": opts["ks"], "sigma": opts["sigma"]},
                weighting_defaults={"reweight": default_reweight(data)})
