"""Method components, part II: the remaining baselines of the paper's Tables 1-3.

``smoter``, ``smogn`` (oversampling on the regressor's representation, or on tabular inputs),
``rnc`` / ``supcr`` (Rank-N-Contrast pre-training + linear probe; a runner), ``der`` (deep
evidential regression; ``lds+fds+der`` is the composition), ``vae``, ``vir``, ``distloss``, ``srl``.
Hyper-parameters are ``--method-arg COMPONENT.KEY=VALUE``; every default, with its source, is in
``docs/methods.md``. The losses live in ``dirlib/losses/{smoter,rnc,der,vir,distloss,srl}.py``.

Heads that are not one linear output keep ``pred, z = model(x)``: the model's own ``head`` gives the
prediction (DER's ``gamma``, VIR's ``x_bar``) and a module owned by the method's callback maps the
same head input to the other outputs (``nn.Linear(d, 3)`` for DER's ``nu, alpha, beta``; ``(d, 2)``
for VIR's ``n, omega``). That is the same parameterisation as one ``Linear(d, 4)`` / ``(d, 3)`` head.
The callback sees the head input through ``feature_transform`` (a recorder that returns its input,
or, for VAE / VIR, the sampled feature); a finaliser moves these callbacks to the end of the list so
they see the input *after* other transforms (FDS). ``z`` stays the encoder output (the mean feature
for VAE / VIR), so the Frobenius diagnostics and regulariser act on the same feature as for every
other method.
"""
from __future__ import annotations

import contextlib
import copy
import math
import warnings
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load as load_checkpoint
from .data.base import Binning
from .method_components import TwoViews, family, kw
from .methods import FINALIZERS, parse_method, register
from .train import Batch, Callback, elementwise_loss, fit

FACE_DATASETS = ("agedb-dir", "imdb-wiki-dir", "utkface-dir")


# ------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def seeded(seed: int):
    """Initialise a method's own modules reproducibly without touching the global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def feat_dim(cfg, data) -> int:
    from .models import build_model
    with seeded(0):
        return build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs}).feat_dim


def fds_bucket_config(data) -> dict:
    """The FDS bucket layout the ``fds`` component uses for this dataset (reused by VIR's PRM)."""
    if family(data) == "sts":
        return {"binning": data.binning, "bucket_start": 0}
    if data.name in ("agedb-dir", "utkface-dir"):
        return {"binning": Binning.integer(0, 99), "bucket_start": 3}
    if data.name == "imdb-wiki-dir":
        return {"binning": Binning.integer(0, 99), "bucket_start": 0}
    return {"binning": data.binning, "bucket_start": 0}


def _set_base_loss(spec, owner: str, fn):
    if spec.base_loss_fn is not None:
        prev = getattr(spec, "_ii_base_owner", (None,))[0] or "another component (bmc/gai/bni)"
        raise ValueError(f"{owner} replaces the regression loss, and so does {prev}; "
                         f"they cannot be combined in {spec.name!r}")
    spec.base_loss_fn = fn
    spec._ii_base_owner = (owner, fn)


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"method argument {name} must be one of {allowed}, got {value!r}")
    return value


def _train_item_x(data) -> torch.Tensor:
    return torch.as_tensor(data.train_eval[0][0])


def _plain_x(x: torch.Tensor) -> torch.Tensor:
    """A two-view image batch ``(B, 2, C, H, W)`` -> its first view (statistics passes)."""
    return x[:, 0] if x.dim() == 5 else x


# ------------------------------------------------------------------------------ SMOTER / SMOGN
class SMOTERFeatureCallback(Callback):
    """Per batch: synthetic ``(z, y)`` pairs for the rare bumps, from the batch's own features;
    ``weight * sum_synthetic l(head(z_new), y_new) / B`` is added (the new cases count as extra batch
    members, normalised by the real batch size)."""

    def __init__(self, name, spec, bump_of_bin, is_rare, s, seed):
        self.name, self.spec, self.s = name, spec, s
        self.bump_of_bin = torch.as_tensor(bump_of_bin, dtype=torch.long)
        self.is_rare = np.asarray(is_rare, dtype=bool)
        self.gen = torch.Generator().manual_seed(int(seed))

    def extra_loss(self, st, b):
        z = b.z.detach() if self.s["detach"] else b.z
        from .losses.smoter import oversample
        x_new, y_new, seed = oversample(
            z, b.y, self.bump_of_bin[b.bins.cpu()].numpy(), self.is_rare, method=self.s["method"],
            over=self.s["over"], k=self.s["k"], pert=self.s["pert"], gap=self.s["gap"],
            sd_y=self.s["sd_y"], generator=self.gen)
        m = int(x_new.shape[0])
        if m == 0:
            return None, {self.name: 0.0, f"{self.name}_n": 0}
        pred_new = st.model.head(x_new).squeeze(-1)
        el = elementwise_loss(self.spec.loss, pred_new, y_new, **self.spec.loss_kwargs)
        if b.weights is not None:
            el = el * b.weights[seed]
        val = el.sum() / len(b.y)
        return self.s["weight"] * val, {self.name: float(val.detach()), f"{self.name}_n": m}

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, s):
        self.gen.set_state(s["gen"])


class SMOTERInputCallback(Callback):
    """Tabular inputs: a pool of synthetic ``(x, y)`` cases made once from the whole training set
    (the papers' pre-processing); every batch gets ``B * M / N`` random pool cases prepended (so one
    epoch sees about the over-sampled data set)."""

    def __init__(self, name, pool_x, pool_y, pool_seed, n_train, binning, target_scale, seed):
        self.name = name
        self.pool_x, self.pool_y, self.pool_seed = pool_x, pool_y, pool_seed
        self.n_train, self.binning, self.scale = n_train, binning, target_scale
        self.gen = torch.Generator().manual_seed(int(seed))

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
        bins = torch.as_tensor(self.binning.index((ys.detach().cpu().double() * self.scale).numpy()),
                               device=b.bins.device)
        w = None
        if b.weights is not None:
            w = torch.cat([st.sample_weights[seeds].to(b.weights), b.weights])
        self.last_n = m
        return Batch(x=torch.cat([xs, b.x]), y=torch.cat([ys, b.y]),
                     idx=torch.cat([seeds.to(b.idx), b.idx]), bins=torch.cat([bins, b.bins]), weights=w)

    def extra_loss(self, st, b):
        return None, {f"{self.name}_n": getattr(self, "last_n", 0)}

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, s):
        self.gen.set_state(s["gen"])


def _smoter_factory(method):
    def apply(spec, cfg, data):
        from .losses.smoter import bumps, oversample, relevance_boxplot, relevance_density
        c = method
        s = {"method": method,
             "relevance": _one_of(f"{c}.relevance", kw(cfg, c, "relevance", "density"), ("density", "boxplot")),
             "threshold": kw(cfg, c, "threshold", 0.8), "coef": kw(cfg, c, "coef", 1.5),
             "k": kw(cfg, c, "k", 5), "over": kw(cfg, c, "over", "balance"),
             "pert": kw(cfg, c, "pert", 0.01), "gap": _one_of(f"{c}.gap", kw(cfg, c, "gap", "shared"), ("per_dim", "shared")),
             "weight": kw(cfg, c, "weight", 1.0), "detach": kw(cfg, c, "detach", False),
             "space": _one_of(f"{c}.space", kw(cfg, c, "space", "feature"), ("feature", "input"))}
        if s["over"] != "balance" and (isinstance(s["over"], bool) or not isinstance(s["over"], (int, float))
                                      or s["over"] < 0):
            raise ValueError(f"method argument {c}.over must be 'balance' or a number >= 0, got {s['over']!r}")
        if not 0 < s["threshold"] <= 1 or s["k"] < 1:
            raise ValueError(f"{c}.threshold must be in (0, 1] and {c}.k >= 1")
        phi = (relevance_density(data.train_labels, data.binning) if s["relevance"] == "density"
               else relevance_boxplot(data.train_labels, data.binning, s["coef"]))
        bump_of_bin, is_rare = bumps(phi, s["threshold"])
        y_model = data.train_labels / data.target_scale
        s["sd_y"] = float(np.std(y_model, ddof=1)) if len(y_model) > 1 else 0.0
        rare_bins = int((phi >= s["threshold"]).sum())
        if not is_rare.any():
            warnings.warn(f"{c}: no label bin has relevance >= {s['threshold']}; it adds nothing")
        if s["space"] == "feature":
            spec.callbacks.append(SMOTERFeatureCallback(c, spec, bump_of_bin, is_rare, s, cfg.seed))
            pool_size = None
        else:
            x0 = _train_item_x(data)
            if x0.dim() != 1 or not torch.is_floating_point(x0):
                raise ValueError(f"{c}.space=input needs vector (tabular) inputs; {data.name} items have "
                                 f"shape {tuple(x0.shape)} ({x0.dtype}); use {c}.space=feature")
            X = torch.stack([torch.as_tensor(data.train_eval[i][0]) for i in range(len(data.train_labels))]).float()
            Y = torch.as_tensor(y_model, dtype=torch.float32)
            sb = bump_of_bin[data.train_bins]
            gen = torch.Generator().manual_seed(int(cfg.seed))
            with torch.no_grad():
                px, py, pseed = oversample(X, Y, sb, is_rare, method=method, over=s["over"], k=s["k"],
                                           pert=s["pert"], gap=s["gap"], sd_y=s["sd_y"], generator=gen)
            pool_size = int(len(py))
            spec.callbacks.insert(0, SMOTERInputCallback(c, px, py, pseed.cpu(), len(Y), data.binning,
                                                         data.target_scale, cfg.seed))
        spec.info[c] = {k: v for k, v in s.items()} | {"rare_bins": rare_bins, "bumps": int(len(is_rare)),
                                                       "rare_bumps": int(is_rare.sum()), "pool_size": pool_size}
    return apply


register("smoter", "SMOTER (Torgo et al. 2013): oversample rare label regions by interpolation, on the "
                   "regressor's features per batch (smoter.space=input: tabular inputs); relevance from "
                   "the label density, threshold 0.8, k 5, balance.")(_smoter_factory("smoter"))
register("smogn", "SMOGN (Branco et al. 2017): SMOTER interpolation for close neighbours, Gaussian noise "
                  "(pert 0.01) otherwise; same options as smoter.")(_smoter_factory("smogn"))


# ------------------------------------------------------------------------------ RnC / SupCR
class RnCCallback(Callback):
    name = "rnc"

    def __init__(self, temperature):
        self.temperature = temperature

    def extra_loss(self, st, b):
        from .losses.rnc import rnc_loss
        val = rnc_loss(b.z, b.y, self.temperature)
        return val, {"rnc": float(val.detach())}


class EncoderEval(Callback):
    """Linear probe: keep the frozen encoder in eval mode (``main_linear.py``: ``model.eval()``)."""

    name = "encoder_eval"

    def prepare_batch(self, st, b):
        st.model.encoder.eval()
        return b


def _zero_base_loss(pred, y, weights):
    return pred.sum() * 0.0


def _rnc_runner(cfg, data, spec, ckpt_dir, record=None, rec_path=None):
    """Rank-N-Contrast: (1) pre-train the encoder with the RnC loss on two views (no regression
    loss; the head is untouched, so that phase's val/test numbers are meaningless and the *last*
    epoch's encoder is kept, as ``main_rnc.py`` saves ``last.pth``); (2) re-initialise the linear
    head, freeze the encoder (eval mode) and train the head with the regression loss
    (``main_linear.py``), selecting the epoch on val as every dirlib run."""
    from . import records
    s = spec.info["rnc"]
    cfg1 = copy.deepcopy(cfg)
    cfg1.epochs, cfg1.lr, cfg1.diagnostics = s["pretrain_epochs"], s["pretrain_lr"], False
    spec1 = copy.copy(spec)
    spec1.train_views, spec1.sample_weights, spec1.base_loss_fn = 2, None, _zero_base_loss
    spec1.callbacks = [TwoViews(), RnCCallback(s["temperature"])]
    res1 = fit(cfg1, data, spec1, ckpt_path=ckpt_dir / "rnc.pt", phase="rnc")
    model = res1.pop("model")
    last = load_checkpoint(ckpt_dir / "rnc.pt")["model"]
    model.load_state_dict(last)
    res1["kept_epoch"] = "last"
    if record is not None:
        record["phases"] = {"rnc": res1}
        records.write_json(rec_path, record)
    model.head.reset_parameters()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    cfg2 = copy.deepcopy(cfg)
    cfg2.epochs, cfg2.lr = s["linear_epochs"], s["linear_lr"]
    spec2 = copy.copy(spec)
    spec2.callbacks = [cb for cb in spec.callbacks if cb.name not in ("rnc", "two_views")] + [EncoderEval()]
    res2 = fit(cfg2, data, spec2, model=model, ckpt_path=ckpt_dir / "linear.pt", phase="linear")
    res2.pop("model")
    return {"phases": {"rnc": res1, "linear": res2}, "final": "linear"}


def _rnc_factory(c):
    def apply(spec, cfg, data):
        s = {"component": c, "temperature": kw(cfg, c, "temperature", 2.0),
             "pretrain_epochs": kw(cfg, c, "pretrain_epochs", cfg.epochs),
             "pretrain_lr": kw(cfg, c, "pretrain_lr", cfg.lr),
             "linear_epochs": kw(cfg, c, "linear_epochs", cfg.epochs),
             "linear_lr": kw(cfg, c, "linear_lr", cfg.lr)}
        if not s["temperature"] > 0 or s["pretrain_epochs"] < 1 or s["linear_epochs"] < 1:
            raise ValueError(f"{c}: temperature must be > 0 and the epochs >= 1, got {s}")
        if "rnc" in spec.info:
            raise ValueError("rnc and supcr are the same method; use one")
        spec.info["rnc"] = s
    return apply


for _c, _doc in (("rnc", "Rank-N-Contrast (Zha et al. 2023): encoder pre-training with the RnC loss on two "
                         "views (L1 label distance, -L2 feature distance / temperature 2), then a linear "
                         "probe on the frozen encoder."),
                 ("supcr", "Alias of rnc (the paper's 'SupCR' row: Zha et al. 2023).")):
    register(_c, _doc, runner=_rnc_runner)(_rnc_factory(_c))


# ------------------------------------------------------------------------------ DER
class _RecordedInput:
    """A one-shot slot for the head input of the current step."""

    def __init__(self, owner):
        self.owner, self.value = owner, None

    def put(self, h):
        self.value = h
        return h

    def pop(self):
        h, self.value = self.value, None
        if h is None:
            raise RuntimeError(f"{self.owner}: the head input of this step was not recorded; its "
                               f"callback did not run (is {self.owner} combined with a runner that drops "
                               f"callbacks, such as rrt?)")
        return h


class DERCallback(Callback):
    """NIG outputs ``(nu, alpha, beta)`` from the head input; ``gamma`` is the model's head."""

    name = "der"
    head_stage = 2

    def __init__(self, params, coeff):
        self.params, self.coeff = params, coeff
        self.slot = _RecordedInput("der")

    def on_fit_start(self, st):
        self.params.to(st.device)

    def param_groups(self):
        return [{"params": list(self.params.parameters())}]

    def feature_transform(self, st, b):
        return self.slot.put if st.model.training else None

    def loss(self, pred, y, weights):
        from .losses.der import der_loss
        nu, alpha, beta = self.params(self.slot.pop())
        return der_loss(y, pred, nu, alpha, beta, coeff=self.coeff, weights=weights)

    def state_dict(self):
        return self.params.state_dict()

    def load_state_dict(self, s):
        self.params.load_state_dict(s)


@register("der", "Deep evidential regression (Amini et al. 2020): NIG head, NLL + 0.01 |y - gamma| "
                 "(2 nu + alpha), prediction gamma; lds+fds+der is the paper's LDS+FDS+DER.")
def _der(spec, cfg, data):
    from .losses.der import NIGParams
    coeff = kw(cfg, "der", "coeff", 0.01)
    sp_beta = kw(cfg, "der", "softplus_beta", 0.01)
    with seeded(cfg.seed * 7919 + 11):
        params = NIGParams(feat_dim(cfg, data), softplus_beta=sp_beta)
    cb = DERCallback(params, coeff)
    spec.callbacks.append(cb)
    _set_base_loss(spec, "der", cb.loss)
    spec.info["der"] = {"coeff": coeff, "softplus_beta": sp_beta}


# ------------------------------------------------------------------------------ VAE / VIR
def _recon_loss(decoder, h, x):
    target = x[:, 0] if x.dim() == 5 else x
    return F.mse_loss(decoder(h), target.to(h.dtype))


class VAECallback(Callback):
    """Probabilistic feature ``N(z, var)``, a sample feeds the head in training (``z`` at
    evaluation); ``kl * KL(N(z, var) || N(0, I)) + recons * MSE(x, decoder(sample))``."""

    name = "vae"
    head_stage = 1

    def __init__(self, var_layer, decoder, kl_weight, recon_weight):
        self.var_layer, self.decoder = var_layer, decoder
        self.kl_weight, self.recon_weight = kl_weight, recon_weight
        self.slot = _RecordedInput("vae")

    def _modules(self):
        return [m for m in (self.var_layer, self.decoder) if m is not None]

    def on_fit_start(self, st):
        for m in self._modules():
            m.to(st.device)

    def param_groups(self):
        return [{"params": [p for m in self._modules() for p in m.parameters()]}]

    def feature_transform(self, st, b):
        if not st.model.training:
            return None
        from .losses.vir import reparameterize

        def f(z):
            var = self.var_layer(z)
            h = reparameterize(z, var)
            self.slot.put((z, var, h))
            return h
        return f

    def extra_loss(self, st, b):
        from .losses.vir import gaussian_kl
        mu, var, h = self.slot.pop()
        kl = gaussian_kl(mu, var)
        total = self.kl_weight * kl
        logs = {"vae_kl": float(kl.detach())}
        if self.decoder is not None and self.recon_weight:
            rec = _recon_loss(self.decoder, h, b.x)
            total = total + self.recon_weight * rec
            logs["vae_recons"] = float(rec.detach())
        return total, logs

    def state_dict(self):
        return {"var": self.var_layer.state_dict(),
                "decoder": None if self.decoder is None else self.decoder.state_dict()}

    def load_state_dict(self, s):
        self.var_layer.load_state_dict(s["var"])
        if self.decoder is not None:
            self.decoder.load_state_dict(s["decoder"])


class VIRCallback(VAECallback):
    """VIR: probabilistic feature, PRM calibration of ``(mu, var)`` before sampling, conjugate-prior
    evidential loss on the sample, reconstruction."""

    name = "vir"
    head_stage = 1

    def __init__(self, var_layer, prm, cp, decoder, coeff, recon_weight, prior, train_labels):
        super().__init__(var_layer, decoder, 0.0, recon_weight)
        self.prm, self.cp, self.coeff, self.prior = prm, cp, coeff, prior
        self.train_labels = np.asarray(train_labels, dtype=np.float64)
        self.slot = _RecordedInput("vir")
        self.recon_input = None

    def _modules(self):
        return [m for m in (self.var_layer, self.cp, self.decoder) if m is not None]

    def on_fit_start(self, st):
        super().on_fit_start(st)
        self.prm.to(st.device)

    def _bins(self, idx, device):
        return self.prm.bins_of(self.train_labels[idx.cpu().numpy()]).to(device)

    def feature_transform(self, st, b):
        if not st.model.training:
            return None
        from .losses.vir import reparameterize
        bins, ep = self._bins(b.idx, b.y.device), st.epoch

        def f(z):
            var = self.var_layer(z)
            mu_c, var_c = self.prm.smooth(z, var, bins, ep)
            h = reparameterize(mu_c, var_c)
            self.slot.put(h)
            self.recon_input = h
            return h
        return f

    def loss(self, pred, y, weights):
        from .losses.vir import vir_nig_loss
        n, omega = self.cp(self.slot.pop())
        return vir_nig_loss(y, pred, n, omega, weights=weights, coeff=self.coeff, prior=self.prior)

    def extra_loss(self, st, b):
        h, self.recon_input = self.recon_input, None
        if self.decoder is None or not self.recon_weight or h is None:
            return None, {}
        rec = _recon_loss(self.decoder, h, b.x)
        return self.recon_weight * rec, {"vir_recons": float(rec.detach())}

    @torch.no_grad()
    def on_epoch_end(self, st):
        """One pass over the training loader in train mode (as ``rerun.py``), un-smoothed ``(mu, var)``."""
        mus, vars_, bins = [], [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(_plain_x(x).to(st.device))
            mus.append(z.float())
            vars_.append(self.var_layer(z).float())
            bins.append(self._bins(idx, st.device))
        self.prm.update_last_epoch_stats(st.epoch)
        self.prm.update_running_stats(torch.cat(mus), torch.cat(vars_), torch.cat(bins), st.epoch)

    def state_dict(self):
        return {**super().state_dict(), "prm": self.prm.state_dict(), "cp": self.cp.state_dict()}

    def load_state_dict(self, s):
        super().load_state_dict(s)
        self.prm.load_state_dict(s["prm"])
        self.cp.load_state_dict(s["cp"])


def _decoder_for(data, d):
    """A reconstruction decoder for the dataset's inputs (``None`` for token ids)."""
    from .losses.vir import make_decoder
    return make_decoder(d, _train_item_x(data))


@register("vae", "VAE baseline (Kingma & Welling): probabilistic feature N(z, var), sampled in training, "
                 "KL to N(0, I) (weight 1e-3) + reconstruction (0.7), plain regression loss.")
def _vae(spec, cfg, data):
    from .losses.vir import ProbabilisticFeature
    klw = kw(cfg, "vae", "kl", 1e-3)
    rw = kw(cfg, "vae", "recons", 0.7)
    d = feat_dim(cfg, data)
    with seeded(cfg.seed * 7919 + 23):
        var_layer = ProbabilisticFeature(d)
        decoder = _decoder_for(data, d) if rw else None
    spec.callbacks.append(VAECallback(var_layer, decoder, klw, rw))
    spec.info["vae"] = {"kl": klw, "recons": rw if decoder is not None else 0.0,
                        "decoder": None if decoder is None else type(decoder).__name__}


@register("vir", "VIR (Wang & Wang 2023): probabilistic feature, PRM smoothing of mean and variance "
                 "statistics, conjugate-prior evidential head (NLL + 0.01 reg), reconstruction 0.7, "
                 "LDS weights in the pseudo-counts.")
def _vir(spec, cfg, data):
    from .losses.vir import PRM, VIR_PRIOR, ConjugatePriorParams, ProbabilisticFeature
    sts = family(data) == "sts"
    s = {"coeff": kw(cfg, "vir", "coeff", 0.01), "recons": kw(cfg, "vir", "recons", 0.7),
         "lds": kw(cfg, "vir", "lds", True), "prior_alpha": kw(cfg, "vir", "prior_alpha", 0.3),
         "ks": kw(cfg, "vir", "ks", 5), "sigma": kw(cfg, "vir", "sigma", 2.0),
         "momentum": kw(cfg, "vir", "momentum", 0.9), "start_smooth": kw(cfg, "vir", "start_smooth", 1),
         "softplus_beta": kw(cfg, "vir", "softplus_beta", 0.1)}
    if s["lds"]:
        w = spec.info.setdefault("weighting", {})
        w.setdefault("reweight", "inverse" if sts else "sqrt_inv")
        w.setdefault("lds", True)
        w.setdefault("ks", 5)
        w.setdefault("sigma", 2.0)
    d = feat_dim(cfg, data)
    buckets = fds_bucket_config(data)
    prior = dict(VIR_PRIOR, alpha=s["prior_alpha"])
    with seeded(cfg.seed * 7919 + 37):
        var_layer = ProbabilisticFeature(d)
        cp = ConjugatePriorParams(d, softplus_beta=s["softplus_beta"])
        decoder = _decoder_for(data, d) if s["recons"] else None
    prm = PRM(d, binning=buckets["binning"], bucket_start=buckets["bucket_start"], ks=s["ks"],
              sigma=s["sigma"], momentum=s["momentum"], start_smooth=s["start_smooth"],
              clip=(0.5, 2.0) if sts else (0.1, 10.0))
    cb = VIRCallback(var_layer, prm, cp, decoder, s["coeff"], s["recons"], prior, data.train_labels)
    spec.callbacks.append(cb)
    _set_base_loss(spec, "vir", cb.loss)
    spec.info["vir"] = {**s, "recons": s["recons"] if decoder is not None else 0.0,
                        "prm_buckets": buckets["binning"].n_bins, "prm_bucket_start": buckets["bucket_start"]}


# ------------------------------------------------------------------------------ Dist Loss
class DistLossCallback(Callback):
    name = "distloss"

    def __init__(self, spec, pseudo, s):
        self.spec, self.pseudo, self.s = spec, pseudo, s
        self.last = {}

    def loss(self, pred, y, weights):
        from .losses.distloss import dist_loss

        def el(a, b):
            return elementwise_loss(self.spec.loss, a, b, **self.spec.loss_kwargs)
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
        self.last = {"dist": float(dist.detach()), "dist_dropped": 0}
        return total

    def extra_loss(self, st, b):
        logs, self.last = self.last, {}
        return None, logs


@register("distloss", "Dist Loss (Nie et al. 2025): L(p, y) + L(softsort(p), KDE pseudo-labels) per "
                      "batch (bandwidth 0.5, weight 1, regularisation 0.1); incomplete batches drop the "
                      "distribution term (distloss.incomplete=resize to keep it).")
def _distloss(spec, cfg, data):
    from .losses.distloss import PseudoLabels, label_density, label_grid
    c = "distloss"
    if data.name in FACE_DATASETS:
        g = (0.0, 120.0, 1.0)
    elif family(data) == "sts":
        g = (0.0, 5.0, 0.1)
    else:
        cen = data.binning.centers
        g = (float(cen[0]), float(cen[-1]), float(cen[1] - cen[0]) if len(cen) > 1 else 1.0)
    s = {"min_label": kw(cfg, c, "min_label", g[0]), "max_label": kw(cfg, c, "max_label", g[1]),
         "step": kw(cfg, c, "step", g[2]), "bw": kw(cfg, c, "bw", 0.5), "weight": kw(cfg, c, "weight", 1.0),
         "regularization_strength": kw(cfg, c, "regularization_strength", 0.1),
         "incomplete": _one_of(f"{c}.incomplete", kw(cfg, c, "incomplete", "drop"), ("drop", "resize")),
         "sorted_weight_quirk": kw(cfg, c, "sorted_weight_quirk", True)}
    grid = label_grid(s["min_label"], s["max_label"], s["step"])
    dens = label_density(data.train_labels, grid, bw_method=s["bw"])
    pseudo = PseudoLabels(dens, grid / data.target_scale, cfg.batch_size, s["incomplete"])
    cb = DistLossCallback(spec, pseudo, s)
    spec.callbacks.append(cb)
    _set_base_loss(spec, "distloss", cb.loss)
    if len(data.train_labels) < cfg.batch_size and s["incomplete"] == "drop":
        warnings.warn("distloss: the training set is smaller than one batch; with incomplete=drop the "
                      "distribution term is never used")
    spec.info[c] = {**s, "grid_size": int(len(grid))}


# ------------------------------------------------------------------------------ SRL
class SRLCallback(Callback):
    name = "srl"

    def __init__(self, projector, bank, points, s):
        self.projector, self.bank, self.points, self.s = projector, bank, points, s

    def on_fit_start(self, st):
        self.projector.to(st.device)
        self.bank.to(st.device)
        self.points = self.points.to(st.device)

    def param_groups(self):
        return [{"params": list(self.projector.parameters())}]

    def extra_loss(self, st, b):
        from .losses.srl import srl_loss
        f = self.projector(b.z)
        total, parts = srl_loss(f, b.bins, self.bank.surrogate().to(f), self.points, self.s["temperature"],
                                self.s["w1"], self.s["w2"], self.s["w3"])
        return total, {f"srl_{k}": float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def on_epoch_end(self, st):
        feats, bins = [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(_plain_x(x).to(st.device))
            feats.append(self.projector(z).float())
            bins.append(st.train_bins[idx].to(st.device))
        self.bank.update(torch.cat(feats), torch.cat(bins), st.epoch)

    def state_dict(self):
        return {"projector": self.projector.state_dict(), "bank": self.bank.state_dict()}

    def load_state_dict(self, s):
        self.projector.load_state_dict(s["projector"])
        self.bank.load_state_dict(s["bank"])


@register("srl", "SRL (Dong et al. 2025): projector features, label centroids completed by EMA "
                 "surrogates; contrastive (w1 10), enveloping (w2 100) and homogeneity (w3 1e-2) terms, "
                 "tau 0.3 (STS-B: 1e-4 / 1e-2 / 1e-4, tau 0.1).")
def _srl(spec, cfg, data):
    from .losses.srl import SurrogateBank, uniform_points
    c = "srl"
    sts = family(data) == "sts"
    s = {"w1": kw(cfg, c, "w1", 1e-4 if sts else 10.0), "w2": kw(cfg, c, "w2", 1e-2 if sts else 100.0),
         "w3": kw(cfg, c, "w3", 1e-4 if sts else 1e-2), "temperature": kw(cfg, c, "temperature", 0.1 if sts else 0.3),
         "dim": kw(cfg, c, "dim", 128), "n_points": kw(cfg, c, "n_points", 1000 if sts else 2000),
         "momentum": kw(cfg, c, "momentum", 0.9), "delay_quirk": kw(cfg, c, "delay_quirk", True),
         "projector": _one_of(f"{c}.projector", kw(cfg, c, "projector", "mlp" if sts else "linear"),
                              ("linear", "mlp"))}
    d = feat_dim(cfg, data)
    n_rows = int(data.train_bins.max()) + 1
    if n_rows < 3:
        raise ValueError("srl needs at least 3 label bins")
    with seeded(cfg.seed * 7919 + 53):
        if s["projector"] == "linear":
            proj = nn.Linear(d, s["dim"])
        else:
            proj = nn.Sequential(nn.Linear(d, s["dim"]), nn.ReLU(), nn.Linear(s["dim"], s["dim"]))
        points = uniform_points(s["n_points"], s["dim"], torch.Generator().manual_seed(int(cfg.seed)))
    bank = SurrogateBank(n_rows, s["dim"], momentum=s["momentum"], delay_quirk=s["delay_quirk"])
    spec.callbacks.append(SRLCallback(proj, bank, points, s))
    spec.info[c] = {**s, "label_rows": n_rows}


# ------------------------------------------------------------------------------ finaliser
def _finalize_ii(spec, cfg, data):
    parts = parse_method(cfg.method)
    staged = [cb for cb in spec.callbacks if getattr(cb, "head_stage", 0)]
    if staged:
        names = [cb.name for cb in staged]
        if "rrt" in parts:
            raise ValueError(f"{'+'.join(names)} cannot be combined with rrt: its second stage keeps "
                             f"only the linear head and drops these methods' head modules")
        if "vir" in names and "fds" in parts:
            raise ValueError("vir smooths the feature statistics itself (PRM); do not add fds")
        if "vir" in names and ("der" in names or "vae" in names):
            raise ValueError("vir already is a probabilistic encoder with an evidential head; do not "
                             "combine it with der or vae")
        rest = [cb for cb in spec.callbacks if not getattr(cb, "head_stage", 0)]
        spec.callbacks[:] = rest + sorted(staged, key=lambda cb: cb.head_stage)
    owner = getattr(spec, "_ii_base_owner", None)
    if owner is not None and spec.base_loss_fn is not owner[1]:
        raise ValueError(f"{owner[0]} replaces the regression loss, and so does another component of "
                         f"{cfg.method!r} (bmc/gai/bni); they cannot be combined")
    for cb in spec.callbacks:
        if isinstance(cb, DistLossCallback):
            cb.pseudo.batch_size = cfg.batch_size * spec.train_views
    if "rnc" in spec.info and any(p in parts for p in ("der", "vae", "vir", "distloss")):
        raise ValueError("rnc/supcr trains a plain linear probe; it does not combine with der, vae, "
                         "vir or distloss")


FINALIZERS.append(_finalize_ii)
