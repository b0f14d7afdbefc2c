"""Feature Distribution Smoothing (FDS, Yang et al., ICML 2021).

Source: ``YyzHarry/imbalanced-regression`` ``agedb-dir/fds.py`` (and ``imdb-wiki-dir``),
``agedb-dir/utils.py::calibrate_mean_var``, ``agedb-dir/train.py`` (call order), ``sts-b-dir/fds.py``
and ``sts-b-dir/util.py`` (STS-B variant).

Protocol (the trainer's side, as ``train.py``):

1. every training step from ``epoch >= start_smooth`` (default 1), in train mode only:
   ``z_s = fds.smooth(z, bins, epoch)`` feeds the regressor (``model(x, feature_transform=...)``);
   FDS is never applied at evaluation (issue #13);
2. after each epoch ``>= start_update`` (default 0): one full no-grad pass over the training set
   collects un-smoothed features, then ``fds.update_last_epoch_stats(epoch)`` followed by
   ``fds.update_running_stats(features, bins, epoch)``.

Statistics: per bucket, mean and variance (unbiased; biased, i.e. 0, for a single sample) of that
pass; EMA ``running = (1 - m) * current + m * running`` with ``m = momentum = 0.9`` (``momentum=None``:
cumulative average ``m = 1 - n / n_tracked``), no EMA (``m = 0``) at ``epoch == start_update``.
``update_last_epoch_stats(epoch)`` (only when ``epoch == self.epoch + 1``) snapshots the running
stats and smooths them along the bucket axis: ``conv1d`` with :func:`fds_kernel` (normalised to
**sum 1**) and **reflect** padding. Calibration of a sample in bucket ``b``, per feature dimension::

    z' = (z - mu_b) * sqrt(clamp(var_s_b / var_b, clip_min, clip_max)) + mu_s_b

with ``clip = (0.1, 10)`` (AgeDB / IMDB-WIKI ``utils.py``) or ``(0.5, 2)`` (STS-B ``util.py``).
As ``calibrate_mean_var``: dimensions with ``var_b == 0`` are left unchanged, and a bucket whose
``sum(var_b) < 1e-10`` is left unchanged entirely. Written with ``torch.where`` and index gathers,
never in-place on the autograd graph (the code's ``features[mask] = ...`` is issue #43).

Buckets: a :class:`~dirlib.data.base.Binning` (or just ``n_buckets``) gives bin indices
``0..n_buckets-1``; indices below ``bucket_start`` are merged into ``bucket_start``, and statistics
have ``n_buckets - bucket_start`` rows. The age code uses ``bucket_num=100, bucket_start=3`` for
AgeDB (``Binning.integer(0, 99)``: ages <= 3 -> bucket 3, ages >= 99 -> bucket 99) and
``bucket_start=0`` for IMDB-WIKI; STS-B uses 50 buckets of width 0.1
(``Binning.uniform(0, 5, 0.1, float32=True)``).

Choices where the code is ambiguous or quirky (each documented, faithful option noted):

* **Clamping.** The age code, per batch, merges labels ``<= 3`` into bucket 3 only when label 3
  itself is in the batch, and labels ``> 99`` into bucket 99 only when 99 is in the batch; otherwise
  those samples are skipped (neither counted nor calibrated). We always clamp (its evident intent).
* **Empty buckets** (no training sample). Age code: they keep the initial mean 0 / var 1, enter the
  neighbours' smoothing with those values, and would calibrate a sample towards the smoothed stats.
  STS-B code (``empty="fill"``): after each update, every bucket absent from the pass is filled in
  ascending order from its neighbours (first bucket <- second, last <- second-to-last, others <- mean
  of left (already filled) and right), so it always calibrates. Default here (``empty="identity"``):
  the buffers behave as the age code for the smoothing, but a sample in a bucket with no tracked
  sample in the snapshot is left unchanged (identity calibration). Training samples always lie in
  tracked buckets after the first pass, so this only matters for the initial epochs (where the 0/1
  initial statistics give the identity anyway) and for hand-made inputs.
* **Aliasing.** ``_update_last_epoch_stats`` in the code assigns ``running_mean_last_epoch =
  running_mean`` (the same tensor, not a copy); the in-place EMA that follows then also changes the
  "last epoch" stats, so from then on the code calibrates with the *current* running stats as
  ``mu_b, var_b`` (through epoch e-1 while training epoch e) but with smoothed stats ``mu_s, var_s``
  of the snapshot taken one epoch earlier (through e-2). ``alias_quirk=True`` (default) reproduces
  the code; ``alias_quirk=False`` uses a real snapshot (clone) for both, consistently one epoch
  older. (A resumed run de-aliases in the code, since ``load_state_dict`` copies buffers.)
* The first calibrating epoch (``start_smooth = 1``) still sees the initial 0/1 snapshot (the first
  ``update_last_epoch_stats`` that changes it runs at the end of epoch 1), i.e. the identity; this is
  the code's behaviour and falls out of the same call order.
* The code's kernel is built with ``.cuda()``; here it is a buffer that follows ``.to(device)``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .bucket_stats import BucketRunningStats, fds_kernel

__all__ = ["FDS", "fds_kernel", "EMPTY_MODES"]

EMPTY_MODES = ("identity", "fill")


class FDS(BucketRunningStats):
    """Per-bucket feature statistics with EMA, bucket-axis smoothing and feature calibration."""

    def __init__(self, feature_dim: int, n_buckets: Optional[int] = None, binning=None,
                 bucket_start: int = 0, start_update: int = 0, start_smooth: int = 1,
                 kernel: str = "gaussian", ks: int = 5, sigma: float = 2.0,
                 momentum: Optional[float] = 0.9, clip: Tuple[float, float] = (0.1, 10.0),
                 empty: str = "identity", alias_quirk: bool = True):
        if empty not in EMPTY_MODES:
            raise ValueError(f"empty must be one of {EMPTY_MODES}, got {empty!r}")
        d = int(feature_dim)
        super().__init__(n_buckets, binning, bucket_start, start_update, start_smooth, kernel, ks,
                         sigma, momentum, clip, alias_quirk,
                         init_stats=lambda rows: (torch.zeros(rows, d), torch.ones(rows, d)))
        self.feature_dim = d
        self.empty = empty

    @torch.no_grad()
    def update_running_stats(self, features: torch.Tensor, bins, epoch: int):
        """Fold one full training pass (``features`` (N, d), bin indices ``bins`` (N,)) into the
        running statistics. Ignored when ``epoch < self.epoch`` (as the code)."""
        if int(epoch) < int(self.epoch):
            return
        features = features.detach()
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"FDS: features must be (N, {self.feature_dim}), got {tuple(features.shape)}")
        rows = self.rows_of(bins, features.shape[0], features.device)
        feats = features.to(self.running_mean.dtype)
        K = self.n_rows
        cnt = torch.bincount(rows, minlength=K).to(feats.dtype)
        mean = torch.zeros(K, self.feature_dim, dtype=feats.dtype, device=feats.device)
        mean = mean.index_add(0, rows, feats) / cnt.clamp(min=1)[:, None]
        sq = torch.zeros_like(mean).index_add(0, rows, (feats - mean[rows]) ** 2)
        var = sq / (cnt - 1).clamp(min=1)[:, None]  # unbiased; n == 1 -> 0 (biased), as the code
        var = torch.where((cnt == 1)[:, None], torch.zeros_like(var), var)

        present = self.ema_update(cnt, mean, var, epoch)

        if self.empty == "fill":  # sts-b-dir/fds.py: fill absent buckets from neighbours, in order
            for b in torch.nonzero(~present).reshape(-1).tolist():
                if b == 0:
                    src_m, src_v = self.running_mean[1], self.running_var[1]
                elif b == K - 1:
                    src_m, src_v = self.running_mean[K - 2], self.running_var[K - 2]
                else:
                    src_m = (self.running_mean[b - 1] + self.running_mean[b + 1]) / 2
                    src_v = (self.running_var[b - 1] + self.running_var[b + 1]) / 2
                self.running_mean[b] = src_m.clone()
                self.running_var[b] = src_v.clone()

    # ---------------------------------------------------------------------------------- calibrate
    def smooth(self, z: torch.Tensor, bins, epoch: int) -> torch.Tensor:
        """Calibrated features (a new tensor; ``z`` itself is untouched). Identity in eval mode and
        before ``start_smooth``."""
        if not self.training or int(epoch) < self.start_smooth:
            return z
        if z.dim() != 2 or z.shape[1] != self.feature_dim:
            raise ValueError(f"FDS: features must be (B, {self.feature_dim}), got {tuple(z.shape)}")
        rows = self.rows_of(bins, z.shape[0], z.device)
        m_all, v_all, n_all = self.stats_for_calibration()
        m1 = m_all[rows].to(z.dtype)
        v1 = v_all[rows].to(z.dtype)
        m2 = self.smoothed_mean_last_epoch[rows].to(z.dtype)
        v2 = self.smoothed_var_last_epoch[rows].to(z.dtype)
        ok_dim = (v1 > 0) & (v2 >= 0)
        ok_row = v_all.sum(1)[rows] >= 1e-10
        if self.empty == "identity":
            ok_row = ok_row & (n_all[rows] > 0)
        ok = ok_dim & ok_row[:, None]
        factor = torch.clamp(v2 / torch.where(ok, v1, torch.ones_like(v1)), self.clip_min, self.clip_max)
        z_cal = (z - m1) * torch.sqrt(factor) + m2
        return torch.where(ok, z_cal, z)

    def forward(self, z: torch.Tensor, bins, epoch: int) -> torch.Tensor:
        return self.smooth(z, bins, epoch)
