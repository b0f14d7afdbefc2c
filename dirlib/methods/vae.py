"""The VAE baseline (Kingma & Welling 2014, as the VIR paper's row): a probabilistic feature
``N(z, var)``, sampled in training (``z`` at evaluation), ``kl * KL(N(z, var) || N(0, I)) +
recons * MSE(x, decoder(sample))`` added to the plain regression loss. ``z`` stays the encoder
output (the mean), so the Frobenius regulariser acts on the same feature as for every method."""
import torch.nn.functional as F

from ..losses.vir import ProbabilisticFeature, gaussian_kl, make_decoder, reparameterize
from ..train import Callback
from .common import HeadInput, Part, feat_dim, seeded, first_train_input
from .options import Default

NAMES = {"vae": "VAE baseline (Kingma & Welling): probabilistic feature N(z, var), sampled in training, "
                "KL to N(0, I) (weight 1e-3) + reconstruction (0.7), plain regression loss."}
DEFAULTS = {"kl": Default(1e-3, source="VIR rerun.py (commented KL_DIV(..., 0.001))"),
            "recons": Default(0.7, source="VIR rerun.py --lambda_recons 0.7 (none for STS-B tokens)")}


def recon_loss(decoder, h, x):
    target = x[:, 0] if x.dim() == 5 else x
    return F.mse_loss(decoder(h), target.to(h.dtype))


def decoder_for(data, d):
    """A reconstruction decoder for the dataset's inputs (``None`` for token ids)."""
    return make_decoder(d, first_train_input(data))


class VAECallback(Callback):
    name = "vae"
    order = 1

    def __init__(self, var_layer, decoder, kl_weight, recon_weight):
        super().__init__()
        self.var_layer, self.decoder = var_layer, decoder
        self.kl_weight, self.recon_weight = kl_weight, recon_weight
        self.slot = HeadInput("vae")

    def feature_transform(self, st, b):
        if not st.model.training:
            return None

        def f(z):
            var = self.var_layer(z)
            h = reparameterize(z, var)
            self.slot.put((z, var, h))
            return h
        return f

    def extra_loss(self, st, b):
        mu, var, h = self.slot.pop()
        kl = gaussian_kl(mu, var)
        total = self.kl_weight * kl
        logs = {"vae_kl": kl.detach()}
        if self.decoder is not None and self.recon_weight:
            rec = recon_loss(self.decoder, h, b.x)
            total = total + self.recon_weight * rec
            logs["vae_recons"] = rec.detach()
        return total, logs


def build(name, opts, cfg, data) -> Part:
    d, rw = feat_dim(cfg, data), opts["recons"]
    with seeded(cfg.seed * 7919 + 23):
        var_layer = ProbabilisticFeature(d)
        decoder = decoder_for(data, d) if rw else None
    return Part(callbacks=[VAECallback(var_layer, decoder, opts["kl"], rw)],
                settings={"recons": rw if decoder is not None else 0.0,
                          "decoder": None if decoder is None else type(decoder).__name__})
