"""SMOTER (Torgo et al. 2013) and SMOGN (Branco et al. 2017): oversample rare label regions by
interpolating between neighbours (SMOGN: Gaussian noise where neighbours are far), on the
regressor's features per batch, or once on tabular inputs (``space=input``)."""
import math
import warnings

import numpy as np
import torch

from ..rebalancing.smoter import bumps, oversample, relevance_boxplot, relevance_density
from ..train import Batch, Callback, elementwise_loss
from .common import GeneratorState, Part, first_train_input
from .options import Default

NAMES = {"smoter": "SMOTER (Torgo et al. 2013): oversample rare label regions by interpolation, on the "
                   "regressor's features per batch (smoter.space=input: tabular inputs); relevance from "
                   "the label density, threshold 0.8, k 5, balance.",
         "smogn": "SMOGN (Branco et al. 2017): SMOTER interpolation for close neighbours, Gaussian noise "
                  "(pert 0.01) otherwise; same options as smoter. By default it resamples the "
                  "regressor's features per batch (smogn.space=feature), not the inputs as the usual "
                  "SMOGN does (smogn.space=input for tables)."}
_UBL = "UBL SmoteRegress / SMOGNRegress defaults"
DEFAULTS = {
    "relevance": Default("density", source="ours: phi = 1 - count / max count per label bin; boxplot: "
                                           "UBL phi.control(method='extremes')"),
    "threshold": Default(0.8, source="ours (UBL thr.rel default 0.5 for its box-plot phi)"),
    "coef": Default(1.5, source="UBL phi.control(coef=1.5)"),
    "k": Default(5, source=_UBL), "over": Default("balance", source=_UBL),
    "pert": Default(0.01, source=_UBL),
    "gap": Default("shared", source="R smoteR / UBL: x + runif(1) * diff"),
    "weight": Default(1.0, source="ours: synthetic cases count as batch members"),
    "detach": Default(False, source="ours"),
    "space": Default("feature", source="ours: the regressor's features per batch (docs/methods.md)"),
}


class FeatureOversampling(GeneratorState, Callback):
    """Per batch: synthetic ``(z, y)`` pairs for the rare bumps, from the batch's own features;
    ``weight * sum_synthetic l(head(z_new), y_new) / B`` is added (the new cases count as extra batch
    members, normalised by the real batch size)."""

    def __init__(self, name, bump_of_bin, is_rare, s, seed):
        super().__init__()
        self.name, self.s = name, s
        self.bump_of_bin = torch.as_tensor(bump_of_bin, dtype=torch.long)
        self.is_rare = np.asarray(is_rare, dtype=bool)
        self.gen = torch.Generator().manual_seed(int(seed))

    def extra_loss(self, st, b):
        z = b.z.detach() if self.s["detach"] else b.z
        x_new, y_new, seed = oversample(
            z, b.y, self.bump_of_bin[b.bins.cpu()].numpy(), self.is_rare, method=self.s["method"],
            over=self.s["over"], k=self.s["k"], pert=self.s["pert"], gap=self.s["gap"],
            sd_y=self.s["sd_y"], generator=self.gen)
        m = int(x_new.shape[0])
        if m == 0:
            return None, {self.name: 0.0, f"{self.name}_n": 0}
        pred_new = st.model.head(x_new).squeeze(-1)
        el = elementwise_loss(st.method.loss, pred_new, y_new, **st.method.loss_kwargs)
        if b.weights is not None:
            el = el * b.weights[seed]
        val = el.sum() / len(b.y)
        return self.s["weight"] * val, {self.name: val.detach(), f"{self.name}_n": m}


class InputOversampling(GeneratorState, Callback):
    """Tabular inputs: a pool of synthetic ``(x, y)`` cases made once from the whole training set
    (the papers' pre-processing); every batch gets ``B * M / N`` random pool cases prepended (so one
    epoch sees about the over-sampled data set). The pool stays on the CPU."""

    order = -1

    def __init__(self, name, pool_x, pool_y, pool_seed, n_train, binning, target_scale, seed):
        super().__init__()
        self.name = name
        self.pool_x, self.pool_y, self.pool_seed = pool_x, pool_y, pool_seed
        self.pool_bins = torch.as_tensor(binning.index((pool_y.double() * target_scale).numpy()))
        self.n_train = n_train
        self.gen = torch.Generator().manual_seed(int(seed))
        self.last_n = 0

    def on_fit_start(self, st):
        pass   # the pool stays where it is: a few rows per batch travel

    def prepare_batch(self, st, b):
        M = len(self.pool_y)
        self.last_n = 0
        if M == 0 or not st.model.training:
            return b
        exp = len(b.y) * M / self.n_train
        m = int(math.floor(exp)) + int(float(torch.rand(1, generator=self.gen)) < exp - math.floor(exp))
        if m == 0:
            return b
        pick = torch.randint(M, (m,), generator=self.gen)
        dev = b.x.device
        xs = self.pool_x[pick].to(dev, b.x.dtype)
        ys = self.pool_y[pick].to(dev, b.y.dtype)
        seeds = self.pool_seed[pick]
        bins = self.pool_bins[pick].to(b.bins)
        w = None
        if b.weights is not None:
            w = torch.cat([st.sample_weights[seeds].to(b.weights), b.weights])
        self.last_n = m
        return Batch(x=torch.cat([xs, b.x]), y=torch.cat([ys, b.y]),
                     idx=torch.cat([seeds.to(b.idx), b.idx]), bins=torch.cat([bins, b.bins]), weights=w)

    def extra_loss(self, st, b):
        return None, {f"{self.name}_n": self.last_n}


def build(name, opts, cfg, data) -> Part:
    s = {"method": name, **{k: opts[k] for k in DEFAULTS}}
    opts.one_of("relevance", ("density", "boxplot"))
    opts.one_of("gap", ("per_dim", "shared"))
    opts.one_of("space", ("feature", "input"))
    if s["over"] != "balance" and (isinstance(s["over"], bool) or not isinstance(s["over"], (int, float))
                                  or s["over"] < 0):
        raise ValueError(f"method argument {name}.over must be 'balance' or a number >= 0, got {s['over']!r}")
    if not 0 < s["threshold"] <= 1 or s["k"] < 1:
        raise ValueError(f"{name}.threshold must be in (0, 1] and {name}.k >= 1")
    phi = (relevance_density(data.train_labels, data.binning) if s["relevance"] == "density"
           else relevance_boxplot(data.train_labels, data.binning, s["coef"]))
    bump_of_bin, is_rare = bumps(phi, s["threshold"])
    y_model = data.train_labels / data.target_scale
    s["sd_y"] = float(np.std(y_model, ddof=1)) if len(y_model) > 1 else 0.0
    if not is_rare.any():
        warnings.warn(f"{name}: no label bin has relevance >= {s['threshold']}; it adds nothing")
    pool_size = None
    if s["space"] == "feature":
        cb = FeatureOversampling(name, bump_of_bin, is_rare, s, cfg.seed)
    else:
        x0 = first_train_input(data)
        if x0.dim() != 1 or not torch.is_floating_point(x0):
            raise ValueError(f"{name}.space=input needs vector (tabular) inputs; {data.name} items have "
                             f"shape {tuple(x0.shape)} ({x0.dtype}); use {name}.space=feature")
        X = torch.stack([torch.as_tensor(data.train_eval[i][0]) for i in range(len(data.train_labels))]).float()
        Y = torch.as_tensor(y_model, dtype=torch.float32)
        gen = torch.Generator().manual_seed(int(cfg.seed))
        with torch.no_grad():
            px, py, pseed = oversample(X, Y, bump_of_bin[data.train_bins], is_rare, method=name,
                                       over=s["over"], k=s["k"], pert=s["pert"], gap=s["gap"],
                                       sd_y=s["sd_y"], generator=gen)
        pool_size = int(len(py))
        cb = InputOversampling(name, px, py, pseed.cpu(), len(Y), data.binning, data.target_scale, cfg.seed)
    return Part(callbacks=[cb], settings={**s, "rare_bins": int((phi >= s["threshold"]).sum()),
                                          "bumps": int(len(is_rare)), "rare_bumps": int(is_rare.sum()),
                                          "pool_size": pool_size})
