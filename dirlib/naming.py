"""Names and number formats shared by the tables, the README block and the book's figures.

>>> display_name("ranksim+frobenius"), display_name("vanilla", "mse")
('RankSim + Ours', 'Vanilla (MSE)')
>>> format_mean_std(7.7712, 0.1234), format_mean_std(7.77, float("nan"))
('7.77 ± 0.12', '7.77')
"""
from __future__ import annotations

import math
from typing import Optional

SHOT_NAMES = {"all": "All", "many": "Many", "median": "Med.", "few": "Few"}

#: display names of methods and components (figure labels); unknown names are shown as given
DISPLAY = {
    "vanilla": "Vanilla", "inv": "INV", "sqinv": "SQINV", "lds": "LDS", "fds": "FDS",
    "focal": "Focal-R", "rrt": "RRT", "bmc": "BMSE", "bmse": "BMSE", "gai": "GAI", "bni": "BNI",
    "ranksim": "RankSim", "oe": "OE", "conr": "ConR", "frobenius": "Ours",
    "frobenius_reg": "Ours (phase 1)", "der": "DER", "vae": "VAE", "vir": "VIR", "srl": "SRL",
    "supcr": "SupCR", "rnc": "RnC", "distloss": "Distloss", "smoter": "SMOTER", "smogn": "SMOGN",
}
LOSS_NAMES = {"mse": "MSE", "l1": "MAE", "huber": "Huber", "focal_l1": "focal L1",
              "focal_mse": "focal MSE"}

METRIC_NAMES = {"mae": "MAE", "gm": "GM", "mse": "MSE", "pearson": "Pearson"}
#: decimals as the paper prints them
METRIC_DIGITS = {"mae": 2, "gm": 2, "mse": 3, "pearson": 1}


def display_name(method: str, loss: Optional[str] = None) -> str:
    """``"ranksim+frobenius"`` -> ``"RankSim + Ours"``; a non-default loss is appended."""
    parts = [DISPLAY.get(p, p) for p in method.split("+")]
    name = " + ".join(parts)
    if loss:
        name += f" ({LOSS_NAMES.get(loss, loss)})"
    return name


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"7.77 ± 0.12"``; just the mean when ``std`` is NaN (one seed); ``"–"`` for a NaN mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
