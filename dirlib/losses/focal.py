"""Focal-R: the regression focal losses of the DIR benchmark.

Source: ``agedb-dir/loss.py::weighted_focal_l1_loss / weighted_focal_mse_loss`` (YyzHarry/
imbalanced-regression; identical in ``imdb-wiki-dir`` and ConR's ``agedb-dir/loss.py``).

With ``e = pred - y``::

    focal_l1  = |e|   * f(beta * |e|) ** gamma
    focal_mse = e ** 2 * f(beta * |e|) ** gamma
    f = 2 * sigmoid(.) - 1   (activate="sigmoid", default)   or   tanh(.)   (activate="tanh")

reduced by ``mean(loss_i * w_i)`` (``w_i = 1`` without weights). ``f`` is in ``[0, 1)``, so the focal
loss never exceeds the plain loss and tends to it as ``beta`` grows.

Defaults: ``beta=0.2, gamma=1`` (AgeDB / IMDB-WIKI, ``agedb-dir/loss.py``). STS-B uses
``focal_mse`` with **beta=20**, gamma 1 (``sts-b-dir/loss.py`` defaults), because its model regresses
``score / 5`` so errors are ~100x smaller than ages in years: pass ``beta=20`` there.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..rebalancing.weighting import weighted_loss
from .parts import LossWithParts

ACTIVATIONS = ("sigmoid", "tanh")


def check_pred_target(pred: torch.Tensor, y: torch.Tensor, name: str = "loss"):
    """Both ``(B,)`` (or both ``(B, 1)``); a shape mismatch would silently broadcast to ``(B, B)``."""
    if pred.shape != y.shape:
        raise ValueError(f"{name}: pred shape {tuple(pred.shape)} != target shape {tuple(y.shape)} "
                         "(pass both as (B,))")
    if pred.numel() == 0:
        raise ValueError(f"{name}: empty batch")


def _focal_factor(abs_err: torch.Tensor, beta: float, gamma: float, activate: str) -> torch.Tensor:
    if activate == "sigmoid":
        f = 2 * torch.sigmoid(beta * abs_err) - 1
    elif activate == "tanh":
        f = torch.tanh(beta * abs_err)
    else:
        raise ValueError(f"activate must be one of {ACTIVATIONS}, got {activate!r}")
    return f ** gamma


def _reduce(loss, weights, reduction):
    if reduction == "none":
        if weights is not None:
            w = torch.as_tensor(weights, device=loss.device)
            if w.numel() != loss.numel():
                raise ValueError(f"weights has {w.numel()} elements but the loss has {loss.numel()}")
            loss = loss * w.reshape(loss.shape).to(loss.dtype)
        return loss
    if reduction == "mean":
        return weighted_loss(loss, weights)
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def focal_l1(pred: torch.Tensor, y: torch.Tensor, beta: float = 0.2, gamma: float = 1.0,
             activate: str = "sigmoid", weights: Optional[torch.Tensor] = None,
             reduction: str = "mean") -> torch.Tensor:
    """Focal-R L1: ``mean(w_i * |e_i| * f(beta |e_i|)^gamma)``; ``reduction='none'`` gives the
    (weighted) per-sample values."""
    check_pred_target(pred, y, "focal_l1")
    e = (pred - y).abs()
    return _reduce(e * _focal_factor(e, beta, gamma, activate), weights, reduction)


def focal_mse(pred: torch.Tensor, y: torch.Tensor, beta: float = 0.2, gamma: float = 1.0,
              activate: str = "sigmoid", weights: Optional[torch.Tensor] = None,
              reduction: str = "mean") -> torch.Tensor:
    """Focal-R MSE: ``mean(w_i * e_i^2 * f(beta |e_i|)^gamma)``. STS-B: ``beta=20``."""
    check_pred_target(pred, y, "focal_mse")
    e = (pred - y).abs()
    return _reduce(e ** 2 * _focal_factor(e, beta, gamma, activate), weights, reduction)


def _column(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1) if t.dim() == 2 and t.shape[1] == 1 else t


class FocalR(LossWithParts):
    """Focal-R as a module: ``FocalR(base="l1", beta=0.2, gamma=1.0)(pred, target)`` -> scalar
    (``base="mse"`` for STS-B, where the benchmark uses ``beta=20``). ``weights=`` per-sample weights.

    >>> import torch
    >>> float(FocalR()(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))) > 0
    True
    """

    repr_fields = ("base", "beta", "gamma", "activate")

    def __init__(self, base: str = "l1", beta: float = 0.2, gamma: float = 1.0, activate: str = "sigmoid"):
        super().__init__()
        if base not in ("l1", "mse"):
            raise ValueError(f"FocalR: base must be 'l1' or 'mse', got {base!r}")
        if activate not in ACTIVATIONS:
            raise ValueError(f"FocalR: activate must be one of {ACTIVATIONS}, got {activate!r}")
        self.base, self.beta, self.gamma, self.activate = base, float(beta), float(gamma), activate

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        fn = focal_l1 if self.base == "l1" else focal_mse
        pred, target = _column(pred), _column(target)      # (B, 1) heads: one value per sample
        loss = fn(pred, target, self.beta, self.gamma, self.activate, weights=weights)
        return self.record(loss, focal=loss)
