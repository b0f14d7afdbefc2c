"""Focal-R (Yang et al. 2021): the focal L1 loss for ages, focal MSE for STS-B."""
from .common import Part
from .options import Default, family

NAMES = {"focal": "Focal-R: focal L1 (ages, beta 0.2, gamma 1) / focal MSE (STS-B, beta 20)."}
DEFAULTS = {
    "beta": Default(0.2, sts=20.0, source="Yang agedb-dir/loss.py; sts-b-dir/loss.py (beta 20: "
                                          "targets are score / 5)"),
    "gamma": Default(1.0, source="Yang agedb-dir/loss.py, sts-b-dir/loss.py"),
}


def build(name, opts, cfg, data) -> Part:
    loss = "focal_mse" if family(data) == "sts" else "focal_l1"
    return Part(loss=loss, loss_kwargs={"focal_beta": opts["beta"], "focal_gamma": opts["gamma"]})
