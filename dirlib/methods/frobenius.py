"""The paper's method (Frobenius-norm regularisation for DIR), three phases:

1. ``main``: train with ``L_any + beta * L_ordinal`` (eqs. 1-6) for ``main_epochs``;
2. ``norm``: freeze the model, compute every training label's dataset-level prototype norm, fit
   NormNet on majority labels only and predict every label's norm (:func:`norm_targets`);
3. ``sft``: fine-tune encoder and head for ``sft_epochs`` at ``sft_lr`` with
   ``L_any + gamma * (l_hat(y_i) - ||z_i||)^2`` (eq. 7; :func:`alignment_spec`).

Combine it with any single-phase method: ``ranksim+frobenius``. ``frobenius_reg`` is phase 1
alone. The post-hoc command and ``dirlib.tools.bench`` call :func:`norm_targets` and
:func:`alignment_spec` themselves.
"""
import copy
import time

import numpy as np
import torch

from ..checkpoint import save as save_checkpoint
from ..losses.frobenius import (
    FrobeniusRegularizer, OrdinalConfig, dataset_prototype_norms, fit_norm_net,
    label_norm_lookup, norm_alignment_loss)
from ..train import Callback
from .common import Part
from .options import Default, epochs_of_run, fifth_of_epochs, tenth_of_lr
from .phases import Phase

NAMES = {"frobenius": "The paper's three-phase method: ordinal norm regulariser (phase 1), "
                      "majority-fitted NormNet (phase 2), norm-aligned fine-tuning (phase 3). "
                      "Combine with any DIR method: ranksim+frobenius."}
_CHOICES = "docs/frobenius-choices.md"
#: phase 1's options (``frobenius_reg`` reads these alone)
ORDINAL_DEFAULTS = {
    "beta": Default(1.0, sts=0.01, source=f"ours, measured on random features ({_CHOICES}: beta): the "
                                          "paper leaves it a hyper-parameter"),
    "alpha": Default(1.0, source="OE README (oe_loss added with weight 1)"),
    "label_tau": Default(0.1, source=f"ours: length scale of eq. 2 ({_CHOICES})"),
    "norm_tau": Default(0.1, source=f"ours: length scale of eq. 2 ({_CHOICES})"),
    "distance": Default("squared", source=f"ours: a Gaussian kernel, as SNE ({_CHOICES})"),
    "softmax": Default("row", source=f"ours: one distribution per prototype, as SNE ({_CHOICES})"),
    "self_pairs": Default(False, source=f"ours ({_CHOICES})"),
    "norm_scale": Default("mean", source=f"ours: the KL is then scale-invariant ({_CHOICES})"),
}
DEFAULTS = {
    **ORDINAL_DEFAULTS,
    "main_epochs": Default(epochs_of_run, source="the run's --epochs (e_main)"),
    "norm_epochs": Default(2000, source=f"ours: full-batch Adam steps of NormNet (e_F; {_CHOICES})"),
    "norm_lr": Default(0.05, source=f"ours ({_CHOICES})"),
    "sft_epochs": Default(fifth_of_epochs, source=f"ours: the paper gives no e_SFT ({_CHOICES})"),
    "sft_lr": Default(tenth_of_lr, source=f"ours: as BMSE/Dist-Loss second stages ({_CHOICES})"),
    "gamma": Default(1.0, sts=0.01, source=f"ours: eq. 7 has none (implicitly 1; {_CHOICES})"),
    "relative": Default(False, source="ours: the scale-free variant, not in the paper"),
    "sft_ordinal": Default(False, source="eq. 7 replaces the phase-1 regulariser"),
}

#: the trials of ``dirlib.tools.tune`` (docs/audit-plan.md): phase 1's weight, across both families'
#: defaults (0.01 STS-B, 1 ages)
SEARCH_SPACE = {"beta": [0.01, 0.1, 1.0, 10.0]}


class OrdinalCallback(Callback):
    """Phase 1 (eqs. 1-6): ``beta * (L_KL + alpha * L_OE)`` on batch prototypes of ``z``."""

    name = "frobenius_ordinal"

    def __init__(self, reg, beta):
        super().__init__()
        self.reg, self.beta = reg, beta

    def extra_loss(self, st, b):
        val = self.reg(b.z, b.y, bins=b.bins)
        return self.beta * val, {"kl": self.reg.parts["kl"], "oe": self.reg.parts["oe"]}


class NormAlignCallback(Callback):
    """Phase 3 (eq. 7): ``gamma * mean_i (l_hat(y_i) - ||z_i||)^2`` with the frozen NormNet's
    per-bin predictions."""

    name = "frobenius_align"

    def __init__(self, norm_per_bin, gamma, relative=False):
        super().__init__()
        self.register_buffer("norm_per_bin", torch.as_tensor(norm_per_bin, dtype=torch.float32))
        self.gamma, self.relative = gamma, relative

    def extra_loss(self, st, b):
        target = label_norm_lookup(self.norm_per_bin, b.bins)
        val = norm_alignment_loss(b.z, target, relative=self.relative)
        return self.gamma * val, {"align": val.detach()}


def ordinal_regularizer(opts, data):
    """Phase 1's :class:`~dirlib.losses.frobenius.FrobeniusRegularizer`; labels are scaled by the
    binning's range in model space (``y`` reaches the loss as ``label / target_scale``)."""
    label_range = float(data.binning.edges[-1] - data.binning.edges[0]) / data.target_scale
    oc = OrdinalConfig(alpha=opts["alpha"], label_tau=opts["label_tau"], norm_tau=opts["norm_tau"],
                       label_range=label_range, norm_scale=opts["norm_scale"],
                       softmax=opts["softmax"], self_pairs=opts["self_pairs"],
                       distance=opts["distance"])
    return FrobeniusRegularizer(oc)


@torch.no_grad()
def dataset_norms(model, data, cfg, device):
    """Dataset-level prototype norms of every bin (one pass over the un-augmented training set)."""
    from ..diagnostics import collect_features
    from ..train import make_loader
    loader = make_loader(data.train_eval, max(cfg.batch_size, 128), False, cfg)
    z, pred, _ = collect_features(model, loader, device)
    return dataset_prototype_norms(z, data.train_bins, data.binning.n_bins)


def check_majority(data) -> None:
    """Phase 2 fits NormNet on majority-shot labels: refuse data with fewer than 2 of them."""
    counts = data.binning.counts(data.train_labels)
    n_major = int(((data.bin_shots() == "many") & (counts > 0)).sum())
    if n_major < 2:
        raise ValueError(
            f"frobenius: phase 2 fits NormNet on majority-shot labels only, and {data.name} has "
            f"{n_major} (labels with > {data.shot_spec.many_thr} training samples, or the dataset's "
            f"'many' list); it needs at least 2. Use frobenius_reg (phase 1 only) on this data, "
            f"or a dataset with a majority region")


def norm_targets(model, data, cfg, device, *, epochs: int, lr: float, majority=None) -> tuple:
    """Phase 2: ``(net, phase record)``. The record's ``per_label`` holds every bin's observed
    and predicted norm; ``majority`` (default: the many-shot bins with samples) picks the bins
    NormNet is fitted on."""
    t0 = time.time()
    observed, counts = dataset_norms(model, data, cfg, device)
    shots, labels = data.bin_shots(), data.binning.centers
    if majority is None:
        majority = (shots == "many") & (counts > 0)
    net, info = fit_norm_net(labels, observed, majority, epochs=epochs, lr=lr, seed=cfg.seed)
    predicted = net.predict(labels).cpu().numpy()
    return net, {"phase": "norm", "norm_net": info, "time_s": time.time() - t0,
                 "per_label": {"bin": list(range(data.binning.n_bins)), "label": labels,
                               "count": counts, "shot": shots, "observed_norm": observed,
                               "predicted_norm": predicted, "majority": majority}}


def alignment_spec(spec, predicted_norms, gamma: float, relative: bool = False,
                   keep_ordinal: bool = False):
    """Phase 3's method: ``spec`` without the ordinal term (unless ``keep_ordinal``), plus the
    norm alignment to ``predicted_norms`` (one per bin)."""
    out = copy.copy(spec)
    keep = [cb for cb in spec.callbacks if keep_ordinal or cb.name != "frobenius_ordinal"]
    out.callbacks = keep + [NormAlignCallback(predicted_norms, gamma, relative)]
    return out


def phases(spec, cfg, data):
    s = spec.settings["frobenius"]

    def main(r):
        check_majority(data)
        return r.fit("main", epochs=s["main_epochs"])

    def norm(r):
        net, rec = norm_targets(r.model, data, cfg, r.device, epochs=s["norm_epochs"], lr=s["norm_lr"])
        save_checkpoint(net.state_dict(), r.ckpt_dir / "norm_net.pt")
        return rec

    def sft(r):
        predicted = np.asarray(r.results["norm"]["per_label"]["predicted_norm"])
        aligned = alignment_spec(spec, predicted, s["gamma"], s["relative"], s["sft_ordinal"])
        return r.fit("sft", aligned, epochs=s["sft_epochs"], lr=s["sft_lr"], lr_milestones=())
    return [Phase("main", main, spec=spec, bench_label="phase1"), Phase("norm", norm), Phase("sft", sft)]


def build(name, opts, cfg, data) -> Part:
    reg = ordinal_regularizer(opts, data)
    return Part(callbacks=[OrdinalCallback(reg, opts["beta"])], phases=phases,
                settings={"ordinal_config": reg.config.to_dict()})
