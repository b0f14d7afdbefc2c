"""ConR (Keramati et al., ICLR 2024): contrastive regularisation for deep imbalanced regression.

Source: ``BorealisAI/ConR/agedb-dir/loss.py::ConR`` and ``agedb-dir/train.py``.

Inputs are the two augmented views concatenated (``N = 2B`` rows): features ``z`` (the encoder
output, L2-normalised here), labels ``y`` and predictions ``pred`` of the same ``2B`` samples
(detached: the code passes ``outputs_c.clone().detach()``). With ``s_ij = <z_i, z_j> / tau``::

    P_i = { j != i : |y_i - y_j| <= w }                       positives
    N_i = { j : |y_i - y_j| > w  and  |p_i - p_j| <= w }      negatives (mis-ranked pairs)
    pw_ij = w_i * exp(e * |y_i - y_j|)                        pushing weight (w_i: anchor's weight)
    den_i = sum_{k in P_i} exp(s_ik) + Q_i + sum_{k in N_i} pw_ik exp(s_ik)
    L_i   = (1 / |P_i|) sum_{j in P_i} -log(exp(s_ij) / den_i)      (0 if N_i is empty)
    loss  = mean_i (w_i * L_i)          over all N anchors (zeroed ones included)

``Q_i`` is the **implementation quirk** kept by default (``keep_quirk=True``): the code builds
``pos = prod * pos_i`` and sums ``exp(pos)`` over the whole row, so every non-positive entry
(including the diagonal and the negatives) contributes ``exp(0) = 1``: ``Q_i = N - |P_i|``.
``keep_quirk=False`` gives the clean denominator ``Q_i = 0`` (the paper's formula).

Other choices made explicit:

* ``tau``: the AgeDB code overwrites its ``t`` argument with 0.07 inside the function, so ``-t``
  (argparse default 0.2) is ignored; our default is the effective 0.07. (``imdb-wiki-dir``: no
  override, but its argparse default ``-t`` is 0.07 too, while its README lists 0.2.)
* ``imdb-wiki-dir/train.py`` adds ``beta * l_c`` to the loss **twice** per step (effective beta 8);
  ``agedb-dir/train.py`` adds it once. This is the trainer's concern; noted for reproductions.
* An anchor with no positive would give ``0/0 = NaN`` in the code (it cannot happen with two views:
  the other view has the same label); here its term is 0.
* The denominator is computed in log space (``logsumexp``), so small ``tau`` cannot overflow.
* Defaults ``w=1`` (label units), ``e=0.01``; loss weight beta = 4 for AgeDB (``train.py``).
  ``w`` is compared with label *and* prediction differences in model space: scale it with the
  targets (STS-B regresses ``score / 5``).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .parts import LossWithParts


def conr_loss(z: torch.Tensor, y: torch.Tensor, pred: torch.Tensor, w: float = 1.0,
              e: float = 0.01, tau: float = 0.07, weights: Optional[torch.Tensor] = None,
              keep_quirk: bool = True) -> torch.Tensor:
    """ConR regulariser on ``N`` (= 2B) rows; multiply by beta in the trainer."""
    if z.dim() != 2:
        raise ValueError(f"conr_loss: features must be (N, d), got {tuple(z.shape)}")
    y = y.reshape(-1)
    pred = pred.detach().reshape(-1)
    n = z.shape[0]
    if n == 0 or y.numel() != n or pred.numel() != n:
        raise ValueError(f"conr_loss: {n} features, {y.numel()} labels, {pred.numel()} predictions")
    if not tau > 0:
        raise ValueError(f"conr_loss: tau must be > 0, got {tau!r}")
    if weights is None:
        wts = torch.ones(n, dtype=z.dtype, device=z.device)
    else:
        wts = torch.as_tensor(weights, device=z.device).reshape(-1).to(z.dtype)
        if wts.numel() != n:
            raise ValueError(f"conr_loss: {wts.numel()} weights for {n} rows")
        if not torch.isfinite(wts).all() or (wts < 0).any():
            raise ValueError("conr_loss: weights must be finite and >= 0")

    q = F.normalize(z, dim=1)
    sim = q @ q.t() / tau
    l_dist = (y[:, None] - y[None, :]).abs().to(z.dtype)
    p_dist = (pred[:, None] - pred[None, :]).abs()
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    pos = (l_dist <= w) & ~eye
    neg = (l_dist > w) & (p_dist <= w)
    n_pos = pos.sum(1)
    valid = (n_pos > 0) & neg.any(1)

    # log of each denominator term; -inf for absent terms
    neg_inf = torch.tensor(float("-inf"), dtype=z.dtype, device=z.device)
    filler = torch.zeros((), dtype=z.dtype, device=z.device) if keep_quirk else neg_inf
    pos_part = torch.where(pos, sim, filler)  # quirk: every non-positive entry adds exp(0) = 1
    log_pw = torch.log(wts)[:, None] + e * l_dist
    neg_part = torch.where(neg, sim + log_pw, neg_inf)
    both = torch.cat([pos_part, neg_part], dim=1)
    # rows that are zeroed anyway get a harmless finite row, so no NaN reaches the gradient
    both = torch.where(valid[:, None], both, torch.zeros_like(both))
    log_den = torch.logsumexp(both, dim=1)

    terms = torch.where(pos, log_den[:, None] - sim, torch.zeros_like(sim))
    per_anchor = terms.sum(1) / n_pos.clamp(min=1).to(z.dtype)
    per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
    return (wts * per_anchor).mean()


class ConR(LossWithParts):
    """ConR as a module: ``ConR(w=1.0, e=0.01, tau=0.07)(features, labels, pred=predictions)`` ->
    scalar. ``features`` ``(N, d)`` are the rows of both views (``N = 2B``), ``labels`` and ``pred``
    ``(N,)`` (``pred`` is detached inside). ``parts`` holds the detached value.

    >>> import torch
    >>> z, y = torch.randn(8, 4), torch.tensor([1., 1., 2., 3., 1., 1., 2., 3.])
    >>> float(ConR()(z, y, pred=y + 0.5)) >= 0
    True
    """

    repr_fields = ("w", "e", "tau", "keep_quirk")

    def __init__(self, w: float = 1.0, e: float = 0.01, tau: float = 0.07, keep_quirk: bool = True):
        super().__init__()
        self.w, self.e, self.tau, self.keep_quirk = float(w), float(e), float(tau), bool(keep_quirk)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, *, pred: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        loss = conr_loss(features, labels, pred, w=self.w, e=self.e, tau=self.tau, weights=weights,
                         keep_quirk=self.keep_quirk)
        return self.record(loss, conr=loss)
