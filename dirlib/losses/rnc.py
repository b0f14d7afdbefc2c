"""Rank-N-Contrast (RnC; Zha et al., NeurIPS 2023, first circulated as SupCR).

Source: ``kaiwenzha/Rank-N-Contrast`` ``loss.py::RnCLoss`` (the loss), ``main_rnc.py`` (encoder
pre-training on two views), ``main_linear.py`` (frozen encoder, linear regressor, L1).

On ``N`` rows (the two views of a batch stacked, ``N = 2B``) with features ``z_i`` and labels
``y_i``::

    s_ij  = -||z_i - z_j||_2 / tau                       (unnormalised features, L2 distance)
    d_ij  = ||y_i - y_j||_1                               (label distance; labels may be vectors)
    N_ij  = { k != i : d_ik >= d_ij }                     (negatives of the pair (i, j))
    loss  = 1 / (N (N - 1)) * sum_{i} sum_{j != i} -log( exp(s_ij) / sum_{k in N_ij} exp(s_ik) )

Every other row ``j`` serves in turn as the positive of anchor ``i`` (``j`` itself is in
``N_ij``, so every term is >= 0); the code's default temperature is **2** (``main_rnc.py --temp``).

Implementation (ours, not a port of the code's loop over ``k``): per anchor the off-diagonal
entries are sorted by label distance, descending; ``N_ij`` is then a prefix of that order that
ends with the last entry tied with ``d_ij``, so every denominator is one ``logcumsumexp`` value
(``O(N^2 log N)`` time, ``O(N^2)`` memory instead of the code's ``O(N^2)`` per positive). Ties are
exact float equality, as the code's ``>=``. The code subtracts the row maximum of ``s`` for
stability; ``logcumsumexp`` is stable by construction and the loss is invariant to that shift.

Distances come from the Gram matrix (``|a|^2 + |b|^2 - 2 a.b``, clamped at 0, diagonal set to
exactly 0) with ``sqrt(max(d^2, 1e-12))``: identical views (inputs without augmentation) give
zero distances whose gradient would be NaN through a plain ``norm``; with the clamp it is 0. The
clamp moves a zero distance to 1e-6 (the loss by < 1e-6 / tau).
"""
from __future__ import annotations

import torch

from .parts import LossWithParts


def pairwise_l2(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``||z_i - z_j||_2`` for all pairs, with a finite gradient at zero distance."""
    sq = (z * z).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.t())
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    d2 = torch.where(eye, torch.zeros_like(d2), d2.clamp_min(0.0))
    return torch.sqrt(d2.clamp_min(eps))


def label_l1(y: torch.Tensor) -> torch.Tensor:
    """``sum_k |y_ik - y_jk|`` (``LabelDifference('l1')``); ``y`` of shape ``(N,)`` or ``(N, k)``."""
    y = y.reshape(y.shape[0], -1)
    return (y[:, None, :] - y[None, :, :]).abs().sum(-1)


def rnc_loss(z: torch.Tensor, y: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """RnC loss over ``N`` rows (both views already stacked: ``torch.cat([view1, view2])`` with the
    labels repeated). Returns the mean over the ``N (N - 1)`` (anchor, positive) pairs."""
    if z.dim() != 2:
        raise ValueError(f"rnc_loss: features must be (N, d), got {tuple(z.shape)}")
    n = z.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"rnc_loss: {n} features but {y.shape[0]} labels")
    if n < 2:
        raise ValueError("rnc_loss needs at least 2 rows (two views of one sample)")
    if not temperature > 0:
        raise ValueError(f"rnc_loss: temperature must be > 0, got {temperature!r}")
    if not torch.isfinite(z).all() or not torch.isfinite(y).all():
        raise ValueError("rnc_loss: non-finite features or labels")
    logits = -pairwise_l2(z.float() if z.dtype in (torch.float16, torch.bfloat16) else z) / temperature
    dl = label_l1(y.to(logits.dtype))
    off = ~torch.eye(n, dtype=torch.bool, device=z.device)
    s = logits[off].view(n, n - 1)
    d = dl[off].view(n, n - 1)
    order = torch.argsort(d, dim=1, descending=True, stable=True)
    d_sorted = d.gather(1, order)
    s_sorted = s.gather(1, order)
    cum = torch.logcumsumexp(s_sorted, dim=1)
    asc = (-d_sorted).contiguous()
    last = torch.searchsorted(asc, asc, right=True) - 1   # end of each tie group
    log_den = cum.gather(1, last)
    return (log_den - s_sorted).sum() / (n * (n - 1))


class RnCLoss(LossWithParts):
    """Rank-N-Contrast as a module: ``RnCLoss(temperature=2.0)(features, labels)`` -> scalar, on the
    rows of both views (``(2B, d)`` features, ``(2B,)`` float labels).

    >>> import torch
    >>> z, y = torch.randn(8, 4), torch.tensor([1., 2., 3., 4., 1., 2., 3., 4.])
    >>> RnCLoss()(z, y).shape
    torch.Size([])
    """

    repr_fields = ("temperature",)

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"RnCLoss: temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = rnc_loss(features, labels, self.temperature)
        return self.record(loss, rnc=loss)
