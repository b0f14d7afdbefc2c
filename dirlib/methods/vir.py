"""VIR (Wang & Wang 2023): a probabilistic feature whose mean and variance statistics are smoothed
over neighbouring labels (PRM) before sampling, a conjugate-prior evidential head (NLL +
``coeff`` regulariser), reconstruction, and LDS weights in the pseudo-counts.

As DER, the model's head gives the prediction (``x_bar``) and a module owned by the callback maps
the same head input to ``n, omega``."""
import numpy as np
import torch

from ..losses.vir import (
    ConjugatePriorParams, PRM, ProbabilisticFeature, VIR_PRIOR, reparameterize, vir_nig_loss)
from ..train import Callback
from .common import HeadInput, Part, fds_buckets, feat_dim, plain_x, seeded
from .options import Default, family
from .vae import decoder_for, recon_loss

NAMES = {"vir": "VIR (Wang & Wang 2023): probabilistic feature, PRM smoothing of mean and variance "
                "statistics, conjugate-prior evidential head (NLL + 0.01 reg), reconstruction 0.7, "
                "LDS weights in the pseudo-counts."}
_SRC = "VIR rerun.py"
DEFAULTS = {
    "coeff": Default(0.01, source=_SRC + " --lambda_reg"),
    "recons": Default(0.7, source=_SRC + " --lambda_recons (none for STS-B tokens)"),
    "lds": Default(True, source=_SRC + " --lds --reweight sqrt_inv (STS-B ours: INV, as lds)"),
    "prior_alpha": Default(0.3, source=_SRC + " prior_dict"),
    "ks": Default(5, source=_SRC + " (PRM)"), "sigma": Default(2.0, source=_SRC + " (PRM)"),
    "momentum": Default(0.9, source=_SRC + " (PRM)"), "start_smooth": Default(1, source=_SRC + " (PRM)"),
    "softplus_beta": Default(0.1, source="VIR ConjugatePrior"),
}
CONFLICTS = {"fds": "vir smooths the feature statistics itself (PRM); do not add fds",
             "vae": "vir already is a probabilistic encoder with an evidential head; do not combine "
                    "it with der or vae"}


class VIRCallback(Callback):
    name = "vir"
    order = 1

    def __init__(self, var_layer, prm, cp, decoder, coeff, recon_weight, prior, train_labels):
        super().__init__()
        self.var_layer, self.prm, self.cp, self.decoder = var_layer, prm, cp, decoder
        self.coeff, self.recon_weight, self.prior = coeff, recon_weight, prior
        # the PRM bucket of every training sample, once (not a numpy binning per step)
        self.register_buffer("sample_bins", prm.bins_of(np.asarray(train_labels, dtype=np.float64)),
                             persistent=False)
        self.slot = HeadInput("vir")
        self.recon_input = None

    def _bins(self, idx):
        return self.sample_bins[idx.to(self.sample_bins.device)]

    def feature_transform(self, st, b):
        if not st.model.training:
            return None
        bins, ep = self._bins(b.idx), st.epoch

        def f(z):
            var = self.var_layer(z)
            mu_c, var_c = self.prm.smooth(z, var, bins, ep)
            h = reparameterize(mu_c, var_c)
            self.slot.put(h)
            self.recon_input = h
            return h
        return f

    def loss(self, pred, y, weights):
        n, omega = self.cp(self.slot.pop())
        return vir_nig_loss(y, pred, n, omega, weights=weights, coeff=self.coeff, prior=self.prior)

    def extra_loss(self, st, b):
        h, self.recon_input = self.recon_input, None
        if self.decoder is None or not self.recon_weight or h is None:
            return None, {}
        rec = recon_loss(self.decoder, h, b.x)
        return self.recon_weight * rec, {"vir_recons": rec.detach()}

    @torch.no_grad()
    def on_epoch_end(self, st):
        """One pass over the training loader in train mode (as ``rerun.py``), un-smoothed ``(mu, var)``."""
        mus, vars_, bins = [], [], []
        for i, (x, y, idx) in enumerate(st.train_loader):
            if st.cfg.max_batches is not None and i >= st.cfg.max_batches:
                break
            _, z = st.model(plain_x(x).to(st.device))
            mus.append(z.float())
            vars_.append(self.var_layer(z).float())
            bins.append(self._bins(idx))
        self.prm.update_last_epoch_stats(st.epoch)
        self.prm.update_running_stats(torch.cat(mus), torch.cat(vars_), torch.cat(bins), st.epoch)


def build(name, opts, cfg, data) -> Part:
    s = {k: opts[k] for k in DEFAULTS}
    sts = family(data) == "sts"
    d, buckets = feat_dim(cfg, data), fds_buckets(data)
    with seeded(cfg.seed * 7919 + 37):
        var_layer = ProbabilisticFeature(d)
        cp = ConjugatePriorParams(d, softplus_beta=s["softplus_beta"])
        decoder = decoder_for(data, d) if s["recons"] else None
    prm = PRM(d, binning=buckets["binning"], bucket_start=buckets["bucket_start"], ks=s["ks"],
              sigma=s["sigma"], momentum=s["momentum"], start_smooth=s["start_smooth"],
              clip=(0.5, 2.0) if sts else (0.1, 10.0))
    cb = VIRCallback(var_layer, prm, cp, decoder, s["coeff"], s["recons"],
                     dict(VIR_PRIOR, alpha=s["prior_alpha"]), data.train_labels)
    weighting = {"reweight": "inverse" if sts else "sqrt_inv", "lds": True, "ks": 5, "sigma": 2.0}
    return Part(callbacks=[cb], base_loss=cb.loss, weighting_defaults=weighting if s["lds"] else {},
                settings={"recons": s["recons"] if decoder is not None else 0.0,
                          "prm_buckets": buckets["binning"].n_bins,
                          "prm_bucket_start": buckets["bucket_start"]})
