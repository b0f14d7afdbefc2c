"""VIR (Variational Imbalanced Regression; Wang & Wang, NeurIPS 2023) and the VAE baseline.

Source: ``Wang-ML-Lab/variational-imbalanced-regression`` (the README calls it a "preview /
uncleaned version"): ``resnet.py`` (probabilistic last bottleneck ``Conv2DNormal``, sampling,
reconstruction decoder), ``prm.py::PRM`` (smoothing of the statistics of mean *and* variance),
``utils.py::calibrate_mean_var_bayes``, ``evidential_deep_learning.py`` (``ConjugatePrior``,
``NIG_NLL``, ``NIG_Reg``, ``KL_DIV``), ``loss.py`` (``get_normal_output``, ``cdm_loss``) and
``rerun.py`` (defaults, call order).

Pieces:

* **Probabilistic encoder** (:class:`ProbabilisticFeature`). VIR replaces the last 1x1 conv of the
  last ResNet-50 bottleneck with ``Conv2DNormal`` (``mu`` and ``sigma = softplus + 1e-6``) and treats
  the pooled second half as a variance. dirlib keeps the encoder as it is: ``mu = z`` (the encoder
  output, so ``pred, z = model(x)`` and the norm diagnostics are unchanged) and
  ``var = softplus(W z + b) + 1e-6``. *Simplification:* the variance comes from the pooled mean
  feature, not from a parallel branch of the last block, and has no ``/49`` pooling factor.
* **PRM** (:class:`PRM`): FDS-like per-bucket statistics of ``(mu, var)`` (EMA momentum 0.9, no EMA at
  ``start_update``), smoothed over buckets (kernel for the ``mu`` parts, **kernel squared** for the
  ``var`` parts), and a calibration of every training feature before sampling. For a bucket with
  ``n`` samples (``prm.py::update_running_stats``)::

      mean_mu = mean(mu)                      mean_var = sum(var) / n^2
      var_mu  = mean(var) - mean_var + mean(mu^2) - mean_mu^2        (law of total variance)
      var_var = 2 var_mu^2 / (n - 1)           (0 for n = 1)

  Calibration (``utils.py::calibrate_mean_var_bayes``), ``f = clip(var_mu_s / var_mu_r, 0.1, 10)``::

      mu'  = (mu - mean_mu_r) sqrt(f) + mean_mu_s
      var' = (var + mean_var_r) sqrt(f) + mean_var_s          (the code adds mean_var_r: kept)

  ``_r`` are the running stats, ``_s`` the smoothed snapshot. The code aliases
  ``running_mean_last_epoch = running_mean`` as FDS does (``alias_quirk=True``, as in
  :mod:`dirlib.rebalancing.fds`). *Changed:* a bucket whose running ``var_mu`` has zeros keeps those
  dimensions unchanged (the code drops the columns and its bare ``except`` then leaves the rest of
  the batch uncalibrated); a bucket never seen by a statistics pass is left unchanged.
* **Sampling**: in training, ``h = mu' + eps * sqrt(var')``; at evaluation ``h = mu`` (no PRM).
* **Conjugate-prior head** (:class:`ConjugatePriorParams`, ``ConjugatePrior``): ``x_bar`` (the
  prediction: the model's own ``head``), ``n = softplus_0.1(.) + 2`` and ``omega = softplus_0.1(.)``;
  NIG parameters (``get_normal_output``, priors ``{gamma 0, v 0, alpha 0.3, beta 0}``)::

      gamma = x_bar,  nu = v0 + n w,  alpha = alpha0 + n w / 2,  beta = omega

  with ``w`` the LDS sample weight in training (``n*weights``) and 1 at evaluation.
* **Loss** (``cdm_loss``): ``mean(NLL + 0.01 |y - gamma| (2 nu + alpha))`` (the weights enter only
  through ``n``), plus ``0.7 * MSE(x, decoder(h))`` (``--lambda_recons``). The KL to ``N(0, I)`` is
  commented out in ``rerun.py``; VIR does not use it.
* **Decoder** (:func:`make_decoder`): VIR mirrors ResNet-50 with transposed bottlenecks. dirlib uses a
  small generic decoder (*simplification*): an MLP for vector inputs, a transposed-conv stack for
  images (then bilinear resize to the input size); token inputs (STS-B) have no reconstruction.
* **VAE baseline** (Kingma & Welling; a row of VIR's and the paper's tables): the same probabilistic
  feature and decoder, sampling in training, ``KL(N(mu, var) || N(0, I))`` (``KL_DIV``: sum over
  dimensions, mean over the batch) and the plain regression loss; no PRM, no evidential head.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..rebalancing.bucket_stats import BucketRunningStats
from .der import nig_nll, nig_reg

VIR_PRIOR = {"gamma": 0.0, "v": 0.0, "alpha": 0.3, "beta": 0.0}


# ------------------------------------------------------------------------------ heads
class ProbabilisticFeature(nn.Module):
    """``var = softplus(W mu + b) + 1e-6`` for a feature ``mu`` of dimension ``d``."""

    def __init__(self, dim: int, min_var: float = 1e-6):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.min_var = float(min_var)

    def forward(self, mu: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.linear(mu)) + self.min_var


def reparameterize(mu: torch.Tensor, var: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + eps * torch.sqrt(var)


def gaussian_kl(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag var) || N(0, I))``: summed over dimensions, averaged over the batch."""
    if (var <= 0).any():
        raise ValueError("gaussian_kl: variances must be > 0")
    return (0.5 * (var + mu ** 2 - 1.0 - torch.log(var)).sum(1)).mean()


class ConjugatePriorParams(nn.Module):
    """``(n, omega)`` of VIR's ``ConjugatePrior`` head (``x_bar`` is the model's own head):
    ``nn.Linear(d, 2)``, ``n = softplus_beta(.) + 2``, ``omega = softplus_beta(.)`` with beta 0.1."""

    def __init__(self, in_dim: int, softplus_beta: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2)
        self.softplus_beta = float(softplus_beta)

    def forward(self, h: torch.Tensor):
        out = F.softplus(self.linear(h.reshape(h.shape[0], -1)), beta=self.softplus_beta)
        return out[:, 0] + 2.0, out[:, 1]


def conjugate_to_nig(x_bar, n, omega, weights=None, prior: dict = VIR_PRIOR):
    """``get_normal_output``: NIG parameters from the conjugate-prior outputs (``weights`` only in
    training; ``None`` = 1)."""
    if weights is not None:
        n = n * weights.reshape(n.shape).to(n.dtype)
    nu = prior["v"] + n
    alpha = prior["alpha"] + n / 2.0
    return x_bar, nu, alpha, omega


def vir_nig_loss(y, x_bar, n, omega, weights=None, coeff: float = 0.01,
                 prior: dict = VIR_PRIOR) -> torch.Tensor:
    """``cdm_loss``: ``mean(NIG_NLL + coeff |y - gamma| (2 nu + alpha))`` with the weighted ``n``."""
    gamma, nu, alpha, beta = conjugate_to_nig(x_bar, n, omega, weights, prior)
    shapes = {tuple(t.shape) for t in (y, gamma, nu, alpha, beta)}
    if len(shapes) != 1:
        raise ValueError(f"vir_nig_loss: shapes differ: {sorted(shapes)}")
    return (nig_nll(y, gamma, nu, alpha, beta) + coeff * nig_reg(y, gamma, nu, alpha)).mean()


# ------------------------------------------------------------------------------ decoders
class VectorDecoder(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, h):
        return self.net(h)


class ImageDecoder(nn.Module):
    """``Linear -> (C0, 4, 4) -> [ConvTranspose 2x + ReLU] * k -> Conv 3x3`` (channels halve per
    step, from 256 down to 16), then a bilinear resize to ``(H, W)`` when the size differs."""

    def __init__(self, in_dim: int, out_shape: Tuple[int, int, int], base: int = 256):
        super().__init__()
        c, h, w = (int(v) for v in out_shape)
        self.out_shape = (c, h, w)
        k = max(0, math.ceil(math.log2(max(h, w) / 4)))
        chans = [max(16, base // (2 ** i)) for i in range(k + 1)]
        self.fc = nn.Linear(in_dim, chans[0] * 16)
        layers = []
        for i in range(k):
            layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1), nn.ReLU()]
        layers.append(nn.Conv2d(chans[-1], c, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.c0 = chans[0]

    def forward(self, h):
        x = self.net(F.relu(self.fc(h)).view(h.shape[0], self.c0, 4, 4))
        if tuple(x.shape[-2:]) != self.out_shape[1:]:
            x = F.interpolate(x, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return x


def make_decoder(in_dim: int, x_example: torch.Tensor) -> Optional[nn.Module]:
    """A decoder for inputs shaped like ``x_example`` (one item): vectors -> MLP, ``(C, H, W)``
    images -> :class:`ImageDecoder`; integer inputs (token ids) -> ``None`` (no reconstruction)."""
    if not torch.is_floating_point(x_example):
        return None
    if x_example.dim() == 1:
        return VectorDecoder(in_dim, x_example.shape[0])
    if x_example.dim() == 3:
        return ImageDecoder(in_dim, tuple(x_example.shape))
    if x_example.dim() == 4:  # (views, C, H, W): the decoder reconstructs one view
        return ImageDecoder(in_dim, tuple(x_example.shape[1:]))
    return None


# ------------------------------------------------------------------------------ PRM
class PRM(BucketRunningStats):
    """Smoothing of per-bucket statistics of ``(mu, var)`` and calibration (see the module docstring).
    Same buckets, buffers and epoch protocol as :class:`dirlib.rebalancing.fds.FDS` (both are
    :class:`~dirlib.rebalancing.bucket_stats.BucketRunningStats`: ``update_last_epoch_stats`` then
    ``update_running_stats`` after every epoch; ``smooth`` in training from ``start_smooth``). Each
    buffer row is ``[mu part | var part]``, ``2 * feature_dim`` wide."""

    def __init__(self, feature_dim: int, n_buckets: Optional[int] = None, binning=None,
                 bucket_start: int = 0, start_update: int = 0, start_smooth: int = 1,
                 kernel: str = "gaussian", ks: int = 5, sigma: float = 2.0,
                 momentum: Optional[float] = 0.9, clip: Tuple[float, float] = (0.1, 10.0),
                 alias_quirk: bool = True):
        d = int(feature_dim)

        def init_stats(rows):   # mean rows [mean_mu | mean_var], variance rows [var_mu | var_var]
            return torch.cat([torch.zeros(rows, d), torch.ones(rows, d)], 1), torch.ones(rows, 2 * d)

        super().__init__(n_buckets, binning, bucket_start, start_update, start_smooth, kernel, ks,
                         sigma, momentum, clip, alias_quirk, init_stats=init_stats)
        self.feature_dim = d

    def smooth_stats(self, stats: torch.Tensor) -> torch.Tensor:
        """The mu parts smoothed with the window, the var parts with the window squared."""
        d = self.feature_dim
        return torch.cat([self.smooth_rows(stats[:, :d]), self.smooth_rows(stats[:, d:], squared=True)], 1)

    @staticmethod
    def bucket_stats(mu: torch.Tensor, var: torch.Tensor, rows: torch.Tensor, n_rows: int):
        """Per-row ``(count, [mean_mu | mean_var], [var_mu | var_var])`` of one pass."""
        d = mu.shape[1]
        cnt = torch.bincount(rows, minlength=n_rows).to(mu.dtype)
        c = cnt.clamp(min=1)[:, None]
        s_mu = torch.zeros(n_rows, d, dtype=mu.dtype, device=mu.device).index_add(0, rows, mu)
        s_var = torch.zeros_like(s_mu).index_add(0, rows, var)
        s_mu2 = torch.zeros_like(s_mu).index_add(0, rows, mu * mu)
        mean_mu = s_mu / c
        mean_var = s_var / c ** 2
        var_mu = s_var / c - mean_var + s_mu2 / c - mean_mu ** 2
        var_var = torch.where((cnt > 1)[:, None], 2.0 * var_mu ** 2 / (c - 1).clamp(min=1),
                              torch.zeros_like(var_mu))
        return cnt, torch.cat([mean_mu, mean_var], 1), torch.cat([var_mu, var_var], 1)

    @torch.no_grad()
    def update_running_stats(self, mu: torch.Tensor, var: torch.Tensor, bins, epoch: int):
        if int(epoch) < int(self.epoch):
            return
        if mu.shape != var.shape or mu.dim() != 2 or mu.shape[1] != self.feature_dim:
            raise ValueError(f"PRM: mu and var must both be (N, {self.feature_dim})")
        rows = self.rows_of(bins, mu.shape[0], mu.device)
        dt = self.running_mean.dtype
        cnt, mean, vr = self.bucket_stats(mu.detach().to(dt), var.detach().to(dt), rows, self.n_rows)
        self.ema_update(cnt, mean, vr, epoch)

    def smooth(self, mu: torch.Tensor, var: torch.Tensor, bins, epoch: int):
        """Calibrated ``(mu', var')`` (new tensors); identity in eval mode and before ``start_smooth``."""
        if not self.training or int(epoch) < self.start_smooth:
            return mu, var
        d = self.feature_dim
        rows = self.rows_of(bins, mu.shape[0], mu.device)
        m_all, v_all, n_all = self.stats_for_calibration()
        m1, v1 = m_all[rows].to(mu.dtype), v_all[rows].to(mu.dtype)
        m2, v2 = self.smoothed_mean_last_epoch[rows].to(mu.dtype), self.smoothed_var_last_epoch[rows].to(mu.dtype)
        mean_mu_r, mean_var_r, var_mu_r = m1[:, :d], m1[:, d:], v1[:, :d]
        mean_mu_s, mean_var_s, var_mu_s = m2[:, :d], m2[:, d:], v2[:, :d]
        ok_row = (v_all[:, :d].sum(1)[rows] >= 1e-10) & (n_all[rows] > 0)
        ok = (var_mu_r > 0) & ok_row[:, None]
        factor = torch.clamp(var_mu_s / torch.where(ok, var_mu_r, torch.ones_like(var_mu_r)),
                             self.clip_min, self.clip_max)
        sf = torch.sqrt(factor)
        mu_c = torch.where(ok, (mu - mean_mu_r) * sf + mean_mu_s, mu)
        var_c = torch.where(ok, (var + mean_var_r) * sf + mean_var_s, var)
        return mu_c, var_c
