"""Dist Loss (Nie et al. 2025): ``L(p, y) + weight * L(softsort(p), pseudo-labels)`` per batch,
the pseudo-labels drawn from a KDE of the training labels. An incomplete last batch drops the
distribution term (``incomplete=resize`` keeps it with resized pseudo-labels)."""
import warnings

import torch

from ..datasets import find as find_dataset
from ..losses.distloss import PseudoLabels, dist_loss, label_density, label_grid
from ..train import Callback, elementwise_loss
from .common import Part
from .options import Default

NAMES = {"distloss": "Dist Loss (Nie et al. 2025): L(p, y) + L(softsort(p), KDE pseudo-labels) per "
                     "batch (bandwidth 0.5, weight 1, regularisation 0.1); incomplete batches drop the "
                     "distribution term (distloss.incomplete=resize to keep it)."}
_SRC = "Dist agedb-dir/train.py"


def _grid(data):
    """The label grid of the pseudo-labels: the dataset file's ``LABEL_GRID`` (ages 0..120 by 1,
    STS-B 0..5 by 0.1), else the bins'."""
    info = find_dataset(data.name)
    if info is not None and info.label_grid:
        return tuple(float(v) for v in info.label_grid)
    cen = data.binning.centers
    return float(cen[0]), float(cen[-1]), float(cen[1] - cen[0]) if len(cen) > 1 else 1.0


DEFAULTS = {
    "min_label": Default(None, source=_SRC + "; ours for custom data: the first bin centre"),
    "max_label": Default(None, source=_SRC + "; ours for custom data: the last bin centre"),
    "step": Default(None, source=_SRC + "; ours for custom data: the bin width"),
    "bw": Default(0.5, source=_SRC), "weight": Default(1.0, source=_SRC),
    "regularization_strength": Default(0.1, source=_SRC),
    "incomplete": Default("drop", source="ours (the code: drop_last=True)"),
    "sorted_weight_quirk": Default(True, source="Dist dist_loss.py (weights stay in batch order)"),
}


class DistLossCallback(Callback):
    name = "distloss"

    def __init__(self, pseudo, s):
        super().__init__()
        self.pseudo, self.s = pseudo, s
        self.last = {}

    def on_fit_start(self, st):
        self.base = (st.method.loss, st.method.loss_kwargs)
        self.pseudo.batch_size = st.cfg.batch_size * st.method.train_views

    def loss(self, pred, y, weights):
        name, kw = self.base

        def el(a, b):
            return elementwise_loss(name, a, b, **kw)
        pl = self.pseudo.get(int(pred.numel()))
        if pl is None:
            plain = el(pred, y)
            plain = (plain * weights).mean() if weights is not None else plain.mean()
            self.last = {"dist_dropped": 1}
            return plain
        total, plain, dist = dist_loss(pred, y, torch.as_tensor(pl, dtype=pred.dtype, device=pred.device),
                                       el, weight=self.s["weight"], weights=weights,
                                       regularization_strength=self.s["regularization_strength"],
                                       sorted_weight_quirk=self.s["sorted_weight_quirk"])
        self.last = {"dist": dist.detach(), "dist_dropped": 0}
        return total

    def extra_loss(self, st, b):
        logs, self.last = self.last, {}
        return None, logs


def build(name, opts, cfg, data) -> Part:
    g = _grid(data)
    s = {k: opts[k] for k in DEFAULTS}
    for key, value in zip(("min_label", "max_label", "step"), g):
        if s[key] is None:
            s[key] = value
    opts.one_of("incomplete", ("drop", "resize"))
    grid = label_grid(s["min_label"], s["max_label"], s["step"])
    dens = label_density(data.train_labels, grid, bw_method=s["bw"])
    pseudo = PseudoLabels(dens, grid / data.target_scale, cfg.batch_size, s["incomplete"])
    cb = DistLossCallback(pseudo, s)
    if len(data.train_labels) < cfg.batch_size and s["incomplete"] == "drop":
        warnings.warn("distloss: the training set is smaller than one batch; with incomplete=drop the "
                      "distribution term is never used")
    return Part(callbacks=[cb], base_loss=cb.loss, settings={**s, "grid_size": int(len(grid))})
