"""What a method file returns (:class:`Part`) and the pieces several methods share: a weighted
regulariser callback, two-view batches, the head-input slot, seeded construction of a method's
own modules, the sample weights of INV / SQINV / LDS."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from ..data.base import Binning
from ..datasets import find as find_dataset
from ..train import Batch, Callback
from .options import family


@dataclass
class Part:
    """What one method contributes to a run; :func:`dirlib.methods.build_method` composes the
    parts of a ``+``-joined name into the trainer's :class:`~dirlib.train.MethodSpec`.

    ``settings``: what the record shows beside the resolved options (``method_info[name]``).
    ``loss`` / ``loss_kwargs``: another elementwise base loss (Focal-R).
    ``base_loss``: ``(pred, y, weights) -> scalar`` replacing the whole base loss (at most one
    method of a composition may). ``weighting`` / ``weighting_defaults``: sample-weight options
    this method sets, or sets unless another method does. ``phases``: ``(spec, cfg, data) ->
    [Phase]`` for a multi-phase method (at most one per composition)."""

    settings: dict = field(default_factory=dict)
    callbacks: List[Callback] = field(default_factory=list)
    loss: Optional[str] = None
    loss_kwargs: dict = field(default_factory=dict)
    base_loss: Optional[Callable] = None
    weighting: dict = field(default_factory=dict)
    weighting_defaults: dict = field(default_factory=dict)
    train_views: int = 1
    phases: Optional[Callable] = None


# ------------------------------------------------------------------------ construction helpers
@contextlib.contextmanager
def seeded(seed: int):
    """Initialise a method's own modules reproducibly without touching the global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def feat_dim(cfg, data) -> int:
    """The feature width ``d`` of the run's encoder."""
    from ..models import build_model
    with seeded(0):
        return build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs}).feat_dim


def fds_buckets(data) -> dict:
    """The FDS bucket layout of the DIR benchmark for this dataset (FDS, and VIR's PRM)."""
    info = find_dataset(data.name)
    if info is not None and info.buckets:
        b = info.buckets
        return {"binning": Binning.integer(b["first"], b["last"]), "bucket_start": b["start"]}
    return {"binning": data.binning, "bucket_start": 0}


def default_reweight(data) -> str:
    """The scheme LDS re-weights with by default: INV for STS-B, SQINV for ages."""
    return "inverse" if family(data) == "sts" else "sqrt_inv"


def compute_weights(w: dict, data) -> np.ndarray:
    """Per-sample weights of the training set for the weighting options ``w``."""
    from ..rebalancing.weighting import dense_weights, sample_weights
    if w["reweight"] == "denseweight":
        if w.get("lds"):
            raise ValueError("denseweight sets the sample weights itself; it cannot be combined "
                             "with lds (which smooths INV/SQINV counts)")
        return dense_weights(data.train_labels, alpha=w["alpha"], eps=w["eps"])
    sts = family(data) == "sts"
    return sample_weights(data.train_labels, data.binning, reweight=w["reweight"],
                          lds=w.get("lds", False), ks=w.get("ks", 5), sigma=w.get("sigma", 2.0),
                          clip=None if sts else (5, 1000))


def first_train_input(data) -> torch.Tensor:
    """The first training input (its shape and dtype decide decoders and tabular paths)."""
    return torch.as_tensor(data.train_eval[0][0])


def plain_x(x: torch.Tensor) -> torch.Tensor:
    """A two-view image batch ``(B, 2, C, H, W)`` -> its first view (statistics passes)."""
    return x[:, 0] if x.dim() == 5 else x


# ------------------------------------------------------------------------ shared callbacks
class Regularizer(Callback):
    """``weight * loss(batch)`` added to the loss; ``loss`` is an ``nn.Module`` (a child) or a
    function of the batch."""

    def __init__(self, name: str, weight: float, loss: Callable):
        super().__init__()
        self.name, self.weight, self.loss = name, weight, loss

    def extra_loss(self, st, b):
        val = self.loss(b)
        return self.weight * val, {self.name: val.detach()}


class TwoViews(Callback):
    """Stack two augmented views into one batch of 2B (images: from the two-view dataset;
    other inputs: the same input twice, so views differ only through dropout)."""

    name = "two_views"
    order = -1

    def prepare_batch(self, st, b: Batch) -> Batch:
        x = b.x
        if x.dim() == 5 and st.data.extra.get("two_view"):
            x = torch.cat([x[:, 0], x[:, 1]], dim=0)
        else:
            x = torch.cat([x, x], dim=0)
        rep = lambda t: None if t is None else torch.cat([t, t], dim=0)  # noqa: E731
        return Batch(x=x, y=rep(b.y), idx=rep(b.idx), bins=rep(b.bins), weights=rep(b.weights))


class HeadInput:
    """A one-shot slot for the head input of the current step (methods whose head has more
    outputs than the prediction: DER, VAE, VIR)."""

    def __init__(self, owner: str):
        self.owner, self.value = owner, None

    def put(self, h):
        self.value = h
        return h

    def pop(self):
        h, self.value = self.value, None
        if h is None:
            raise RuntimeError(f"{self.owner}: the head input of this step was not recorded; its "
                               f"callback did not run (is {self.owner} combined with a phase that "
                               f"drops callbacks?)")
        return h


class GeneratorState:
    """Mixin for a callback with a ``self.gen`` ``torch.Generator``: its state is checkpointed."""

    def get_extra_state(self):
        return {"gen": self.gen.get_state()}

    def set_extra_state(self, state):
        self.gen.set_state(state["gen"])
