"""The registered method components (see :mod:`dirlib.methods`).

Hyper-parameters come from ``cfg.method_kwargs`` as ``"component.key"`` entries (CLI:
``--method-arg ranksim.gamma=100 conr.beta=4``); defaults are per dataset family ("sts" for
STS-B-DIR, "age" for the face datasets and everything else) and are listed, with their sources, in
``docs/baseline-defaults.md``.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Optional

import numpy as np
import torch

from .checkpoint import save as save_checkpoint
from .data.base import Binning
from .methods import FINALIZERS, register
from .train import Batch, Callback, MethodSpec, RunConfig, fit


def family(data) -> str:
    """Which published defaults a method uses on ``data``: ``"sts"`` (STS-B) or ``"age"``
    (AgeDB/IMDB-WIKI). Custom data states it (``from_arrays(task_family=...)``, in
    ``data.info["task_family"]``); unstated, it is the age family, and the record says so."""
    stated = (data.info or {}).get("task_family")
    if stated:
        return "sts" if str(stated).startswith("sts") else "age"
    return "sts" if data.name == "sts-b-dir" else "age"


#: every "comp.key" read by kw() while a method is being built (unknown keys are then errors)
READ_KEYS: set = set()


def kw(cfg: RunConfig, comp: str, key: str, default):
    """``cfg.method_kwargs["comp.key"]`` if given, else ``default`` (type-checked)."""
    full = f"{comp}.{key}"
    READ_KEYS.add(full)
    if full not in cfg.method_kwargs:
        return default
    v = cfg.method_kwargs[full]
    if default is not None and isinstance(default, (int, float)) and not isinstance(default, bool):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise TypeError(f"method argument {full} must be a number, got {v!r}")
        check_range(full, v)
        return type(default)(v) if isinstance(default, float) else v
    if isinstance(default, bool) and not isinstance(v, bool):
        raise TypeError(f"method argument {full} must be true/false, got {v!r}")
    return v


#: numeric method arguments that must be > 0 (scales, temperatures, rates, kernel widths); the
#: others must be >= 0 (weights, coefficients); ``*epochs`` must be integers >= 1; ``momentum`` in
#: [0, 1]; ``ks`` (kernel sizes) odd integers >= 1
POSITIVE_KWARGS = ("sigma", "tau", "label_tau", "norm_tau", "norm_lr", "sft_lr", "softplus_beta",
                   "prior_alpha", "lam")


def check_range(full: str, v) -> None:
    """Refuse by name a numeric method argument outside its meaningful range."""
    key = full.split(".", 1)[1]
    if not math.isfinite(v):
        raise ValueError(f"method argument {full} must be finite, got {v!r}")
    if key == "epochs" or key.endswith("_epochs"):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"method argument {full} must be an integer >= 1 (a phase of zero "
                             f"epochs trains nothing), got {v!r}")
    elif key == "ks":
        if not isinstance(v, int) or v < 1 or v % 2 == 0:
            raise ValueError(f"method argument {full} must be an odd integer >= 1, got {v!r}")
    elif key == "momentum":
        if not 0 <= v <= 1:
            raise ValueError(f"method argument {full} must lie in [0, 1], got {v!r}")
    elif key in POSITIVE_KWARGS:
        if v <= 0:
            raise ValueError(f"method argument {full} must be > 0, got {v!r}")
    elif v < 0:
        raise ValueError(f"method argument {full} must be >= 0, got {v!r}")


def check_unread_kwargs(cfg: RunConfig):
    """After the components were applied: every given ``comp.key`` must have been read."""
    unread = sorted(set(cfg.method_kwargs) - READ_KEYS)
    if unread:
        known = sorted(k for k in READ_KEYS if k.split(".", 1)[0] in {u.split(".", 1)[0] for u in unread})
        raise ValueError(f"unknown method argument(s) {unread}; this method reads: {', '.join(known)}")


def check_method_kwargs(cfg: RunConfig, parts):
    """Every ``comp.key`` must name a component of this method (typos fail loudly)."""
    READ_KEYS.clear()
    for k in cfg.method_kwargs:
        comp = k.split(".", 1)[0]
        if "." not in k or comp not in parts:
            raise ValueError(f"method argument {k!r} does not belong to a component of this method "
                             f"({'+'.join(parts)}); write it as COMPONENT.KEY, e.g. ranksim.gamma=100")


# ------------------------------------------------------------------------ sample weighting
def _set_weighting(spec: MethodSpec, **kv):
    w = spec.info.setdefault("weighting", {})
    w.update(kv)


@register("inv", "Inverse-frequency sample weights (INV; counts clipped to [5, 1000] for ages).")
def _inv(spec, cfg, data):
    _set_weighting(spec, reweight="inverse")


@register("sqinv", "Square-root inverse-frequency sample weights (SQINV).")
def _sqinv(spec, cfg, data):
    _set_weighting(spec, reweight="sqrt_inv")


@register("lds", "Label distribution smoothing (gaussian kernel, ks 5, sigma 2) of the weights "
                 "(default scheme: SQINV for ages, INV for STS-B).")
def _lds(spec, cfg, data):
    w = spec.info.setdefault("weighting", {})
    w.setdefault("reweight", "inverse" if family(data) == "sts" else "sqrt_inv")
    w.update(lds=True, ks=kw(cfg, "lds", "ks", 5), sigma=kw(cfg, "lds", "sigma", 2.0))


def _finalize_weights(spec: MethodSpec, cfg, data):
    w = spec.info.get("weighting")
    if not w or spec.info.get("weights_in_runner"):
        return
    spec.sample_weights = compute_weights(w, data)


def compute_weights(w: dict, data) -> np.ndarray:
    from .losses.weighting import sample_weights
    sts = family(data) == "sts"
    return sample_weights(data.train_labels, data.binning, reweight=w["reweight"],
                          lds=w.get("lds", False), ks=w.get("ks", 5), sigma=w.get("sigma", 2.0),
                          clip=None if sts else (5, 1000))


FINALIZERS.append(_finalize_weights)


# ------------------------------------------------------------------------ loss replacements
@register("focal", "Focal-R: focal L1 (ages, beta 0.2, gamma 1) / focal MSE (STS-B, beta 20).")
def _focal(spec, cfg, data):
    sts = family(data) == "sts"
    spec.loss = "focal_mse" if sts else "focal_l1"
    spec.loss_kwargs.update(focal_beta=kw(cfg, "focal", "beta", 20.0 if sts else 0.2),
                            focal_gamma=kw(cfg, "focal", "gamma", 1.0))


class BMSECallback(Callback):
    name = "bmse"

    def __init__(self, module, sigma_lr):
        self.module, self.sigma_lr = module, sigma_lr

    def on_fit_start(self, st):
        self.module.to(st.device)

    def param_groups(self):
        return self.module.param_groups(self.sigma_lr)

    def after_step(self, st):
        st.logs["bmse_sigma"] = float(self.module.noise_sigma.detach())

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, s):
        self.module.load_state_dict(s)


def _bmse_factory(imp):
    def apply(spec, cfg, data):
        from .losses.bmse import BalancedMSE, bni_buckets, fit_gmm
        sts = family(data) == "sts"
        # STS-B: targets are score / 5 in [0, 1]; sigma 0.1 there is 0.5 score points. With 1.0
        # (5 points, more than the whole label range) the loss is nearly blind to a shared offset
        # of the predictions: test MSE 4.95 (results/withdrawn/, docs/baseline-defaults.md).
        sigma = kw(cfg, imp, "init_sigma", 0.1 if sts else 10.0)
        y_model = data.train_labels / data.target_scale
        extra = {}
        if imp == "gai":
            extra["gmm"] = fit_gmm(y_model, K=kw(cfg, imp, "K", 8), seed=0)
        if imp == "bni":
            if sts:
                b = Binning(data.binning.edges / data.target_scale)
                c, w = bni_buckets(y_model, binning=b)
            else:
                c, w = bni_buckets(y_model)
            extra.update(bucket_centers=c, bucket_weights=w)
        module = BalancedMSE(imp, init_noise_sigma=sigma,
                             fix_sigma=kw(cfg, imp, "fix_sigma", False), **extra)
        cb = BMSECallback(module, kw(cfg, imp, "sigma_lr", 1e-2))
        spec.callbacks.append(cb)
        spec.base_loss_fn = lambda pred, y, w, _m=module: _m(pred, y)
        spec.info[imp] = {"init_sigma": sigma}
    return apply


for _imp, _doc in (("bmc", "Balanced MSE, batch Monte-Carlo (BMC)."),
                   ("gai", "Balanced MSE, GMM analytic integration (GAI; 8-component GMM prior)."),
                   ("bni", "Balanced MSE, bin-based numerical integration (BNI).")):
    register(_imp, _doc)(_bmse_factory(_imp))
register("bmse", "Alias of bmc (the paper's BMSE rows use BMC).")(_bmse_factory("bmc"))


# ------------------------------------------------------------------------ regularisers
class RegularizerCallback(Callback):
    """``weight * fn(batch)`` added to the loss."""

    def __init__(self, name, weight, fn):
        self.name, self.weight, self.fn = name, weight, fn

    def extra_loss(self, st, batch):
        val = self.fn(st, batch)
        return self.weight * val, {self.name: float(val.detach())}


@register("ranksim", "RankSim: rank-matching of feature similarities to label similarities "
                     "(gamma 100 ages / 3e-4 STS-B, lambda 2).")
def _ranksim(spec, cfg, data):
    from .losses.ranksim import ranksim_loss
    gamma = kw(cfg, "ranksim", "gamma", 3e-4 if family(data) == "sts" else 100.0)
    lam = kw(cfg, "ranksim", "lam", 2.0)
    gen = torch.Generator().manual_seed(cfg.seed)

    def fn(st, b):
        return ranksim_loss(b.z, b.y, lam=lam, generator=gen)
    spec.callbacks.append(RegularizerCallback("ranksim", gamma, fn))
    spec.info["ranksim"] = {"gamma": gamma, "lam": lam}


@register("oe", "Ordinal Entropy: diversity of normalised batch prototypes weighted by label "
                "distance, plus tightness (weight 1).")
def _oe(spec, cfg, data):
    from .losses.oe import TIGHTNESS_FORMS, ordinal_entropy
    weight = kw(cfg, "oe", "weight", 1.0)
    ld, lt = kw(cfg, "oe", "lambda_d", 1.0), kw(cfg, "oe", "lambda_t", 1.0)
    form = kw(cfg, "oe", "tightness_form", "75fc9d5")
    if form not in TIGHTNESS_FORMS:
        raise ValueError(f"option oe.tightness_form (--method-arg oe.tightness_form=...) must be one of "
                         f"{', '.join(TIGHTNESS_FORMS)} (commits of needylove/OrdinalEntropy), got {form!r}")

    def fn(st, b):
        return ordinal_entropy(b.z, b.y, lambda_d=ld, lambda_t=lt, tightness_form=form)
    spec.callbacks.append(RegularizerCallback("oe", weight, fn))
    spec.info["oe"] = {"weight": weight, "lambda_d": ld, "lambda_t": lt, "tightness_form": form}


class TwoViews(Callback):
    """Stack two augmented views into one batch of 2B (images: from the two-view dataset;
    other inputs: the same input twice, so views differ only through dropout)."""

    name = "two_views"

    def prepare_batch(self, st, b: Batch) -> Batch:
        x = b.x
        if x.dim() >= 2 and st.data.extra.get("two_view") and x.dim() == 5:
            x = torch.cat([x[:, 0], x[:, 1]], dim=0)
        else:
            x = torch.cat([x, x], dim=0)
        rep = lambda t: None if t is None else torch.cat([t, t], dim=0)  # noqa: E731
        return Batch(x=x, y=rep(b.y), idx=rep(b.idx), bins=rep(b.bins), weights=rep(b.weights))


@register("conr", "ConR: contrastive regulariser on two views (w 1, e 0.01, tau 0.07, beta 4).")
def _conr(spec, cfg, data):
    from .losses.conr import conr_loss
    sts = family(data) == "sts"
    beta = kw(cfg, "conr", "beta", 4.0)
    # w is in label units; the loss sees model-space targets
    w_label = kw(cfg, "conr", "w", 0.2 if sts else 1.0)
    w = w_label / data.target_scale
    e = kw(cfg, "conr", "e", 0.01)
    tau = kw(cfg, "conr", "tau", 0.07)
    spec.train_views = 2
    spec.callbacks.insert(0, TwoViews())

    def fn(st, b):
        return conr_loss(b.z, b.y, b.pred, w=w, e=e, tau=tau, weights=b.weights)
    spec.callbacks.append(RegularizerCallback("conr", beta, fn))
    spec.info["conr"] = {"beta": beta, "w_label_units": w_label, "e": e, "tau": tau}


# ------------------------------------------------------------------------ FDS
class FDSCallback(Callback):
    """Feature distribution smoothing: calibrate ``z`` before the head during training (from
    ``start_smooth``); after each epoch, a no-grad pass over the (augmented) training loader in
    train mode collects per-bucket statistics, as ``agedb-dir/train.py`` does."""

    name = "fds"

    def __init__(self, fds, data):
        self.fds = fds
        # FDS bucket of every training sample, once (not a numpy binning per step)
        self.sample_bins = fds.bins_of(torch.as_tensor(data.train_labels, dtype=torch.float64))

    def on_fit_start(self, st):
        self.fds.to(st.device)
        self.sample_bins = self.sample_bins.to(st.device)

    def feature_transform(self, st, b):
        if not st.model.training:
            return None
        bins = self.sample_bins[b.idx.to(self.sample_bins.device)]
        ep = st.epoch
        return lambda z: self.fds.smooth(z, bins, ep)

    @torch.no_grad()
    def on_epoch_end(self, st):
        self.fds.update_last_epoch_stats(st.epoch)
        feats, bins = [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(x.to(st.device))
            feats.append(z.float())
            bins.append(self.sample_bins[idx.to(self.sample_bins.device)])
        self.fds.update_running_stats(torch.cat(feats), torch.cat(bins), st.epoch)

    def state_dict(self):
        return self.fds.state_dict()

    def load_state_dict(self, s):
        self.fds.load_state_dict(s)


@register("fds", "Feature distribution smoothing (per-bucket EMA stats, gaussian ks 5 sigma 2, "
                 "momentum 0.9, calibration from epoch 2, off at test time).")
def _fds(spec, cfg, data, feat_dim: Optional[int] = None):
    from .losses.fds import FDS
    from .models import build_model
    sts = family(data) == "sts"
    if feat_dim is None:
        kwargs = {**data.model_kwargs, **cfg.model_kwargs}
        feat_dim = build_model(cfg.model or data.model, **kwargs).feat_dim
    common = dict(ks=kw(cfg, "fds", "ks", 5), sigma=kw(cfg, "fds", "sigma", 2.0),
                  momentum=kw(cfg, "fds", "momentum", 0.9),
                  start_smooth=kw(cfg, "fds", "start_smooth", 1))
    if sts:
        fds = FDS(feat_dim, binning=data.binning, clip=(0.5, 2.0), empty="fill", **common)
    elif data.name in ("agedb-dir", "utkface-dir"):
        fds = FDS(feat_dim, binning=Binning.integer(0, 99), bucket_start=3, **common)
    elif data.name == "imdb-wiki-dir":
        fds = FDS(feat_dim, binning=Binning.integer(0, 99), bucket_start=0, **common)
    else:
        fds = FDS(feat_dim, binning=data.binning, **common)
    spec.callbacks.append(FDSCallback(fds, data))
    spec.info["fds"] = {k: v for k, v in common.items()}


# ------------------------------------------------------------------------ RRT
def _rrt_runner(cfg, data, spec, ckpt_dir, record=None, rec_path=None):
    """RRT (Kang et al. 2020, as in the DIR benchmark's ``--retrain_fc``): train the whole model
    without re-weighting, then re-initialise the linear head, freeze everything else and retrain
    the head with re-weighting (default: SQINV for ages, INV for STS-B; or the components'
    weighting, e.g. ``rrt+lds``)."""
    w = spec.info.get("weighting") or {"reweight": "inverse" if family(data) == "sts" else "sqrt_inv"}
    stage1 = copy.copy(spec)
    stage1.sample_weights = None
    res1 = fit(cfg, data, stage1, ckpt_path=ckpt_dir / "main.pt", phase="main")
    model = res1.pop("model")
    model.head.reset_parameters()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    cfg2 = copy.deepcopy(cfg)
    cfg2.epochs = spec.info["rrt_epochs"]
    stage2 = copy.copy(spec)
    stage2.sample_weights = compute_weights(w, data)
    stage2.callbacks = [cb for cb in spec.callbacks if cb.name in ("bmse",)]
    res2 = fit(cfg2, data, stage2, model=model, ckpt_path=ckpt_dir / "rrt.pt", phase="rrt")
    res2.pop("model")
    return {"phases": {"main": res1, "rrt": res2}, "final": "rrt", "rrt_weighting": w}


@register("rrt", "RRT: train, then re-train only the linear head with re-weighting "
                 "(two stages; rrt.epochs for the second).", runner=_rrt_runner)
def _rrt(spec, cfg, data):
    spec.info["weights_in_runner"] = True
    spec.info["rrt_epochs"] = kw(cfg, "rrt", "epochs", cfg.epochs)


# ------------------------------------------------------------------------ Frobenius (the paper)
class OrdinalCallback(Callback):
    """Phase 1 (eqs. 1-6): ``beta * (L_KL + alpha * L_OE)`` on batch prototypes of ``z``."""

    name = "frobenius_ordinal"

    def __init__(self, reg, beta):
        self.reg, self.beta = reg, beta

    def extra_loss(self, st, b):
        val = self.reg(b.z, b.y, bins=b.bins)
        logs = self.reg.parts
        return self.beta * val, {"kl": float(logs["kl"]), "oe": float(logs["oe"])}


class NormAlignCallback(Callback):
    """Phase 3 (eq. 7): ``gamma * mean_i (l_hat(y_i) - ||z_i||)^2`` with the frozen NormNet's
    per-bin predictions."""

    name = "frobenius_align"

    def __init__(self, norm_per_bin, gamma, relative=False):
        self.norm_per_bin = torch.as_tensor(norm_per_bin, dtype=torch.float32)
        self.gamma, self.relative = gamma, relative

    def extra_loss(self, st, b):
        from .losses.frobenius import label_norm_lookup, norm_alignment_loss
        target = label_norm_lookup(self.norm_per_bin.to(b.z.device), b.bins)
        val = norm_alignment_loss(b.z, target, relative=self.relative)
        return self.gamma * val, {"align": float(val.detach())}


def frobenius_settings(cfg, data, comp: str = "frobenius") -> dict:
    sts = family(data) == "sts"
    return {
        "beta": kw(cfg, comp, "beta", 0.01 if sts else 1.0),
        "alpha": kw(cfg, comp, "alpha", 1.0),
        "label_tau": kw(cfg, comp, "label_tau", 0.1),
        "norm_tau": kw(cfg, comp, "norm_tau", 0.1),
        "distance": kw(cfg, comp, "distance", "squared"),
        "softmax": kw(cfg, comp, "softmax", "row"),
        "self_pairs": kw(cfg, comp, "self_pairs", False),
        "norm_scale": kw(cfg, comp, "norm_scale", "mean"),
        "main_epochs": kw(cfg, comp, "main_epochs", cfg.epochs),
        "norm_epochs": kw(cfg, comp, "norm_epochs", 2000),
        "norm_lr": kw(cfg, comp, "norm_lr", 0.05),
        "sft_epochs": kw(cfg, comp, "sft_epochs", max(1, cfg.epochs // 5)),
        "sft_lr": kw(cfg, comp, "sft_lr", cfg.lr * 0.1),
        "gamma": kw(cfg, comp, "gamma", 0.01 if sts else 1.0),
        "relative": kw(cfg, comp, "relative", False),
        "sft_ordinal": kw(cfg, comp, "sft_ordinal", False),
    }


def ordinal_config(s: dict, data):
    """Phase 1's :class:`OrdinalConfig` from the settings; labels are scaled by the binning's
    range in model space (``y`` reaches the loss as ``label / target_scale``)."""
    from .losses.frobenius import OrdinalConfig
    label_range = float(data.binning.edges[-1] - data.binning.edges[0]) / data.target_scale
    return OrdinalConfig(alpha=s["alpha"], label_tau=s["label_tau"], norm_tau=s["norm_tau"],
                         label_range=label_range, norm_scale=s["norm_scale"], softmax=s["softmax"],
                         self_pairs=s["self_pairs"], distance=s["distance"])


@torch.no_grad()
def dataset_norms(model, data, cfg, device):
    """Dataset-level prototype norms of every bin (one pass over the un-augmented training set)."""
    from .diagnostics import collect_features
    from .losses.frobenius import dataset_prototype_norms
    from .train import make_loader
    loader = make_loader(data.train_eval, max(cfg.batch_size, 128), False, cfg)
    z, pred, _ = collect_features(model, loader, device)
    return dataset_prototype_norms(z, data.train_bins, data.binning.n_bins)


def _frobenius_runner(cfg, data, spec, ckpt_dir, record=None, rec_path=None):
    """The paper's three phases: (1) train with ``L_any + beta * L_ordinal`` for ``main_epochs``;
    (2) freeze the model, compute dataset-level prototype norms of every training label, fit
    NormNet on majority labels only and predict every label's norm; (3) fine-tune encoder and head
    for ``sft_epochs`` at ``sft_lr`` with ``L_any + gamma * (l_hat(y_i) - ||z_i||)^2``."""
    from . import records
    from .losses.frobenius import fit_norm_net
    from .train import resolve_device
    s = spec.info["frobenius"]
    device = resolve_device(cfg.device)
    phases, times = {}, {}
    # phase 2 needs majority labels: say so before phase 1 trains, not after
    counts = data.binning.counts(data.train_labels)
    n_major = int(((data.bin_shots() == "many") & (counts > 0)).sum())
    if n_major < 2:
        raise ValueError(
            f"frobenius: phase 2 fits NormNet on majority-shot labels only, and {data.name} has "
            f"{n_major} (labels with > {data.shot_spec.many_thr} training samples, or the dataset's "
            f"'many' list); it needs at least 2. Use frobenius_reg (phase 1 only) on this data, "
            f"or a dataset with a majority region")

    cfg1 = copy.deepcopy(cfg)
    cfg1.epochs = s["main_epochs"]
    res1 = fit(cfg1, data, spec, ckpt_path=ckpt_dir / "main.pt", phase="main")
    model = res1.pop("model")
    phases["main"] = res1
    times["main"] = res1["time_s"]
    if record is not None:
        record["phases"] = phases
        records.write_json(rec_path, record)

    t0 = time.time()
    observed, counts = dataset_norms(model, data, cfg, device)
    bin_shots = data.bin_shots()
    labels = data.binning.centers
    majority = (bin_shots == "many") & (counts > 0)
    net, info = fit_norm_net(labels, observed, majority, epochs=s["norm_epochs"], lr=s["norm_lr"],
                             seed=cfg.seed)
    predicted = net.predict(labels).cpu().numpy()
    times["norm"] = time.time() - t0
    save_checkpoint(net.state_dict(), ckpt_dir / "norm_net.pt")
    phases["norm"] = {"phase": "norm", "norm_net": info, "time_s": times["norm"],
                      "per_label": {"bin": list(range(data.binning.n_bins)), "label": labels,
                                    "count": counts, "shot": bin_shots, "observed_norm": observed,
                                    "predicted_norm": predicted, "majority": majority}}

    cfg3 = copy.deepcopy(cfg)
    cfg3.epochs, cfg3.lr, cfg3.lr_milestones = s["sft_epochs"], s["sft_lr"], ()
    spec3 = copy.copy(spec)
    keep = [cb for cb in spec.callbacks if s["sft_ordinal"] or cb.name != "frobenius_ordinal"]
    spec3.callbacks = keep + [NormAlignCallback(predicted, s["gamma"], s["relative"])]
    res3 = fit(cfg3, data, spec3, model=model, ckpt_path=ckpt_dir / "sft.pt", phase="sft")
    res3.pop("model")
    phases["sft"] = res3
    times["sft"] = res3["time_s"]
    return {"phases": phases, "final": "sft", "phase_times_s": times}


@register("frobenius", "The paper's three-phase method: ordinal norm regulariser (phase 1), "
                       "majority-fitted NormNet (phase 2), norm-aligned fine-tuning (phase 3). "
                       "Combine with any DIR method: ranksim+frobenius.", runner=_frobenius_runner)
def _frobenius(spec, cfg, data):
    from .losses.frobenius import FrobeniusRegularizer
    s = frobenius_settings(cfg, data)
    oc = ordinal_config(s, data)
    spec.callbacks.append(OrdinalCallback(FrobeniusRegularizer(oc), s["beta"]))
    spec.info["frobenius"] = {**s, "ordinal_config": oc.to_dict()}


@register("frobenius_reg", "Phase 1 of the paper's method alone (the ordinal norm regulariser, "
                           "no phases 2-3).")
def _frobenius_reg(spec, cfg, data):
    from .losses.frobenius import FrobeniusRegularizer
    s = frobenius_settings(cfg, data, "frobenius_reg")
    oc = ordinal_config(s, data)
    spec.callbacks.append(OrdinalCallback(FrobeniusRegularizer(oc), s["beta"]))
    spec.info["frobenius_reg"] = {"beta": s["beta"], "ordinal_config": oc.to_dict()}

from . import method_components_ii  # noqa: E402,F401  (part II baselines register themselves)
