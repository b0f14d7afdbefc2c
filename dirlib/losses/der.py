"""Deep Evidential Regression (DER; Amini et al., NeurIPS 2020): Normal-Inverse-Gamma head and loss.

Sources: ``aamini/evidential-deep-learning`` ``evidential_deep_learning/losses/continuous.py``
(``NIG_NLL``, ``NIG_Reg``, ``evidential_regression``) and ``layers/dense.py`` (``DenseNormalGamma``);
the DIR variant the paper's DER rows come from (they are quoted from VIR's tables):
``Wang-ML-Lab/variational-imbalanced-regression`` ``loss.py::weighted_edl_loss``,
``evidential_deep_learning.py::LinearNormalGamma`` and ``rerun.py`` (``--lambda_reg 0.01``).

The head outputs ``(gamma, nu, alpha, beta)`` of a NIG distribution; the prediction is ``gamma``::

    NLL = 1/2 log(pi / nu) - alpha log(2 beta (1 + nu)) + (alpha + 1/2) log(nu (y - gamma)^2 + 2 beta (1 + nu))
          + lgamma(alpha) - lgamma(alpha + 1/2)
    Reg = |y - gamma| (2 nu + alpha)
    loss = mean_i w_i (NLL_i + coeff * Reg_i)          (w_i: sample weights, 1 without re-weighting)

Choices made explicit:

* ``coeff`` (lambda): 0.01 (VIR ``rerun.py --lambda_reg``; aamini's ``hello_world.py`` also uses
  1e-2). The weights multiply NLL + Reg as ``weighted_edl_loss``.
* Evidence activation: ``softplus`` with ``beta=0.01`` (VIR's ``LinearNormalGamma``; the paper's DER
  numbers are VIR's runs). aamini's ``DenseNormalGamma`` uses the plain ``softplus`` (``beta=1``):
  ``softplus_beta=1.0``. ``nu = sp(.)``, ``alpha = sp(.) + 1``, ``beta = sp(.)``.
* ``nu`` / ``beta`` can underflow to 0 in float32 (``softplus`` of a very negative input); the
  NLL then has ``log 0``. We add nothing (as both codes): a non-finite loss stops the trainer with
  its divergence error rather than being hidden.
* Head layout (dirlib): the model's own ``head`` (``nn.Linear(d, 1)``) is ``gamma`` and
  :class:`NIGParams` (``nn.Linear(d, 3)``) the other three outputs, both on the same input. This is
  exactly ``DenseNormalGamma(1)`` (four independent linear maps of one feature), and keeps
  ``pred, z = model(x)`` (``pred = gamma``) for evaluation and the norm diagnostics.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def nig_nll(y, gamma, nu, alpha, beta) -> torch.Tensor:
    """Element-wise negative log-likelihood of ``y`` under the NIG evidential distribution
    (Student-t marginal)."""
    two_b_lambda = 2.0 * beta * (1.0 + nu)
    return (0.5 * torch.log(math.pi / nu)
            - alpha * torch.log(two_b_lambda)
            + (alpha + 0.5) * torch.log(nu * (y - gamma) ** 2 + two_b_lambda)
            + torch.lgamma(alpha) - torch.lgamma(alpha + 0.5))


def nig_reg(y, gamma, nu, alpha) -> torch.Tensor:
    """Element-wise evidence regulariser ``|y - gamma| (2 nu + alpha)``."""
    return (y - gamma).abs() * (2.0 * nu + alpha)


def _check(y, *params):
    shapes = {tuple(p.shape) for p in (y, *params)}
    if len(shapes) != 1:
        raise ValueError(f"evidential loss: target and NIG parameters differ in shape: {sorted(shapes)}")


def der_loss(y: torch.Tensor, gamma: torch.Tensor, nu: torch.Tensor, alpha: torch.Tensor,
             beta: torch.Tensor, coeff: float = 0.01,
             weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(w * (NLL + coeff * Reg))`` (``weighted_edl_loss``)."""
    _check(y, gamma, nu, alpha, beta)
    if (nu < 0).any() or (beta < 0).any() or (alpha < 1).any():
        raise ValueError("der_loss: need nu >= 0, beta >= 0, alpha >= 1 (use NIGParams)")
    loss = nig_nll(y, gamma, nu, alpha, beta) + coeff * nig_reg(y, gamma, nu, alpha)
    if weights is not None:
        loss = loss * weights.reshape(loss.shape).to(loss.dtype)
    return loss.mean()


def nig_uncertainty(nu, alpha, beta) -> dict:
    """Aleatoric ``E[sigma^2] = beta / (alpha - 1)`` and epistemic ``Var[mu] = beta / (nu (alpha - 1))``."""
    aleatoric = beta / (alpha - 1.0)
    return {"aleatoric": aleatoric, "epistemic": aleatoric / nu}


class NIGParams(nn.Module):
    """``(nu, alpha, beta)`` from a feature: ``nn.Linear(d, 3)`` and ``softplus(beta=softplus_beta)``."""

    def __init__(self, in_dim: int, softplus_beta: float = 0.01):
        super().__init__()
        if not softplus_beta > 0:
            raise ValueError(f"softplus_beta must be > 0, got {softplus_beta!r}")
        self.linear = nn.Linear(in_dim, 3)
        self.softplus_beta = float(softplus_beta)

    def forward(self, h: torch.Tensor):
        out = self.linear(h.reshape(h.shape[0], -1))
        sp = F.softplus(out, beta=self.softplus_beta)
        return sp[:, 0], sp[:, 1] + 1.0, sp[:, 2]
