"""Rank-N-Contrast (Zha et al. 2023; the paper's "SupCR" row): (1) pre-train the encoder with
the RnC loss on two views, without a regression loss (the head is untouched, so that phase's
val/test numbers are meaningless, and the *last* epoch's encoder is kept, as ``main_rnc.py``
saves ``last.pth``); (2) re-initialise the linear head, freeze the encoder (eval mode) and train
the head with the regression loss (``main_linear.py``), the epoch selected on val as always."""
import copy

from ..checkpoint import load as load_checkpoint
from ..losses.rnc import rnc_loss
from ..train import Callback
from .common import Part, TwoViews
from .options import Default, epochs_of_run, lr_of_run
from .phases import Phase

NAMES = {"rnc": "Rank-N-Contrast (Zha et al. 2023): encoder pre-training with the RnC loss on two "
                "views (L1 label distance, -L2 feature distance / temperature 2), then a linear "
                "probe on the frozen encoder.",
         "supcr": "Alias of rnc (the paper's 'SupCR' row: Zha et al. 2023)."}
DEFAULTS = {
    "temperature": Default(2.0, source="RnC main_rnc.py (--temp 2)"),
    "pretrain_epochs": Default(epochs_of_run, source="ours (RnC recipe: 400 epochs SGD lr 0.5)"),
    "pretrain_lr": Default(lr_of_run, source="ours (RnC recipe: SGD lr 0.5, bs 256, cosine)"),
    "linear_epochs": Default(epochs_of_run, source="ours (RnC recipe: 100 epochs SGD lr 0.05)"),
    "linear_lr": Default(lr_of_run, source="ours (RnC main_linear.py: SGD lr 0.05, bs 64)"),
}
CONFLICTS = {m: "rnc/supcr trains a plain linear probe; it does not combine with der, vae, vir or "
                "distloss" for m in ("der", "vae", "vir", "distloss")}


class RnCCallback(Callback):
    name = "rnc"

    def __init__(self, temperature):
        super().__init__()
        self.temperature = temperature

    def extra_loss(self, st, b):
        val = rnc_loss(b.z, b.y, self.temperature)
        return val, {"rnc": val.detach()}


class EncoderEval(Callback):
    """Linear probe: keep the frozen encoder in eval mode (``main_linear.py``: ``model.eval()``)."""

    name = "encoder_eval"

    def prepare_batch(self, st, b):
        st.model.encoder.eval()
        return b


def no_regression_loss(pred, y, weights):
    return pred.sum() * 0.0


def pretrain_spec(spec, s):
    """The pre-training phase's method: two views, the RnC loss alone, no sample weights."""
    out = copy.copy(spec)
    out.train_views, out.sample_weights, out.base_loss = 2, None, no_regression_loss
    out.callbacks = [TwoViews(), RnCCallback(s["temperature"])]
    return out


def phases(spec, cfg, data):
    s = spec.settings.get("rnc") or spec.settings["supcr"]
    pre = pretrain_spec(spec, s)

    def pretrain(r):
        res = r.fit("rnc", pre, epochs=s["pretrain_epochs"], lr=s["pretrain_lr"], diagnostics=False)
        r.model.load_state_dict(load_checkpoint(r.ckpt_dir / "rnc.pt")["model"])
        return {**res, "kept_epoch": "last"}

    def linear(r):
        r.model.head.reset_parameters()
        for p in r.model.encoder.parameters():
            p.requires_grad_(False)
        probe = copy.copy(spec)
        probe.callbacks = [cb for cb in spec.callbacks if cb.name not in ("rnc", "two_views")] + [EncoderEval()]
        return r.fit("linear", probe, epochs=s["linear_epochs"], lr=s["linear_lr"])
    return [Phase("rnc", pretrain, spec=pre, bench_label="pretrain"), Phase("linear", linear)]


def build(name, opts, cfg, data) -> Part:
    return Part(phases=phases)
