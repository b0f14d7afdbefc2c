"""Ordinal Entropy (Zhang et al., ICLR 2023), the stand-alone OE baseline.

Source: ``needylove/OrdinalEntropy/AgeEstimation/OrdinalEntropy.py::ordinalentropy`` (the version
the README points to for age estimation). (The prototype OE term used inside the Frobenius method
lives in ``dirlib/losses/frobenius.py``; this module is the baseline.)

Batch-wise, per unique label ``u`` of the batch:

* prototype ``c_u`` = mean feature of the samples with label ``u`` (gradients flow through it),
  ``p_u = normalize(c_u)``;
* diversity ``L_d = mean_{u<v} w_uv * ||p_u - p_v||_2`` with label weights
  ``w_uv = (|y_u - y_v| - min) / max`` over the upper triangle (it divides by ``max``, not
  ``max - min``); distances are ``sqrt(clamp(d^2, 1e-12))`` as the code's ``euclidean_dist``;
* tightness ``L_t = mean_i ||normalize(z_i) - p_{y_i}||_2^2`` over the samples whose value is not
  exactly 0 (the code takes the **squared** distance, ``.pow(2).sum(1)`` with no square root, and
  masks ``> 0``).

Result: ``lambda_t * L_t - lambda_d * L_d``. The public function applies no weight
(``lambda_d = lambda_t = 1``) and the README adds it to the task loss with weight 1. The synthetic
``main.py`` uses ``Lambda_d = 1e-3`` on diversity only. OE normalises features and prototypes, so it
is blind to feature norms.

Edge cases the code leaves undefined (it would crash or return NaN), defined here:

* fewer than 2 unique labels: no pair, diversity = 0;
* every tightness value exactly 0 (e.g. each label occurs once): tightness = 0.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def ordinal_entropy_terms(z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(diversity, tightness)`` as defined in the module docstring."""
    if z.dim() != 2:
        raise ValueError(f"ordinal_entropy: features must be (B, d), got {tuple(z.shape)}")
    y = y.reshape(-1)
    if z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"ordinal_entropy: {z.shape[0]} features vs {y.shape[0]} labels")
    uniq, inv, counts = torch.unique(y, return_inverse=True, return_counts=True)
    centers = torch.zeros(uniq.numel(), z.shape[1], dtype=z.dtype, device=z.device)
    centers = centers.index_add(0, inv, z) / counts.to(z.dtype)[:, None]
    p = F.normalize(centers, dim=1)

    if uniq.numel() >= 2:
        iu = torch.triu_indices(uniq.numel(), uniq.numel(), offset=1, device=z.device)
        dist = ((p[iu[0]] - p[iu[1]]) ** 2).sum(-1).clamp(min=1e-12).sqrt()
        wl = (uniq[iu[0]] - uniq[iu[1]]).abs().to(z.dtype)
        w = (wl - wl.min()) / wl.max()
        diversity = (dist * w).mean()
    else:
        diversity = z.sum() * 0.0

    t = ((F.normalize(z, dim=1) - p[inv]) ** 2).sum(dim=1)
    nz = t > 0
    tightness = t[nz].mean() if nz.any() else z.sum() * 0.0
    return diversity, tightness


def ordinal_entropy(z: torch.Tensor, y: torch.Tensor, lambda_d: float = 1.0,
                    lambda_t: float = 1.0) -> torch.Tensor:
    """OE regulariser ``lambda_t * tightness - lambda_d * diversity`` on features ``z`` (B, d)."""
    diversity, tightness = ordinal_entropy_terms(z, y)
    return lambda_t * tightness - lambda_d * diversity


class OrdinalEntropy(torch.nn.Module):
    """Ordinal Entropy as a module: ``OrdinalEntropy(lambda_d=1, lambda_t=1)(features, labels)`` ->
    scalar ``lambda_t * tightness - lambda_d * diversity``, grouping the batch by label value (float
    labels) or, with ``bin_width``, by ``floor(label / bin_width)``. ``parts`` holds the detached
    ``diversity`` and ``tightness``. The tightness is the baseline's squared form (see the module
    docstring).

    >>> import torch
    >>> z, y = torch.randn(6, 3), torch.tensor([20., 20., 31., 31., 45., 45.])
    >>> oe = OrdinalEntropy()
    >>> loss = oe(z, y)
    >>> sorted(oe.parts), loss.shape
    (['diversity', 'tightness'], torch.Size([]))
    """

    def __init__(self, lambda_d: float = 1.0, lambda_t: float = 1.0, bin_width: Optional[float] = None):
        super().__init__()
        if bin_width is not None and not bin_width > 0:
            raise ValueError(f"OrdinalEntropy: bin_width must be > 0, got {bin_width!r}")
        self.lambda_d, self.lambda_t, self.bin_width = float(lambda_d), float(lambda_t), bin_width
        self.parts = {}

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = labels.reshape(-1)
        if self.bin_width is not None:
            y = torch.floor(y / self.bin_width)
        diversity, tightness = ordinal_entropy_terms(features, y)
        self.parts = {"diversity": diversity.detach(), "tightness": tightness.detach()}
        return self.lambda_t * tightness - self.lambda_d * diversity

    def extra_repr(self) -> str:
        return f"lambda_d={self.lambda_d}, lambda_t={self.lambda_t}, bin_width={self.bin_width}"
