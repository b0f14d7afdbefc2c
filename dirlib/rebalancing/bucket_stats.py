"""Running per-bucket statistics, smoothed along the bucket axis: the machinery that FDS
(:class:`dirlib.rebalancing.fds.FDS`) and VIR's PRM (:class:`dirlib.losses.vir.PRM`) share.

Both keep, per label bucket, an EMA of statistics of one training pass (``update_running_stats``,
subclass-specific), snapshot and smooth them once per epoch (``update_last_epoch_stats``) and
calibrate training features with them (``smooth``, subclass-specific). What is common lives here,
once: the argument checks, the buffers, the bucket indices (:meth:`bins_of`, :meth:`rows_of`), the
bucket-axis smoothing (``conv1d``, reflect padding), the EMA step and the code's aliasing quirk.

Buffers (names as the upstream code's, so checkpoints load across versions): ``running_mean``,
``running_var``, their ``*_last_epoch`` snapshots, the ``smoothed_*_last_epoch`` smoothed
snapshots, ``num_samples_tracked``, ``num_samples_last_epoch`` and ``epoch``.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .weighting import lds_kernel


def fds_kernel(kind: str = "gaussian", ks: int = 5, sigma: float = 2.0) -> np.ndarray:
    """FDS smoothing window: the LDS window shape normalised to **sum = 1** (``fds.py``)."""
    k = lds_kernel(kind, ks, sigma)
    return k / k.sum()


class BucketRunningStats(nn.Module):
    """Per-bucket running statistics with an epoch snapshot smoothed along the bucket axis.

    ``init_stats(rows)`` gives the initial ``(rows, width)`` mean and variance buffers, for
    ``rows = n_buckets - bucket_start``. Subclasses fold a pass in with :meth:`ema_update` and read the
    calibration statistics from :meth:`stats_for_calibration`."""

    #: the name in error messages
    label = "bucket statistics"

    def __init__(self, n_buckets: Optional[int], binning, bucket_start: int, start_update: int,
                 start_smooth: int, kernel: str, ks: int, sigma: float, momentum: Optional[float],
                 clip: Tuple[float, float], alias_quirk: bool,
                 init_stats: Callable[[int], Tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        name = type(self).__name__
        if binning is not None:
            if n_buckets is not None and n_buckets != binning.n_bins:
                raise ValueError(f"{name}: n_buckets={n_buckets} but the binning has {binning.n_bins} bins")
            n_buckets = binning.n_bins
        if n_buckets is None:
            raise ValueError(f"{name} needs n_buckets or a binning")
        if not 0 <= bucket_start < n_buckets:
            raise ValueError(f"{name}: bucket_start must be in [0, {n_buckets}), got {bucket_start}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        clip_min, clip_max = clip
        if not 0 < clip_min <= clip_max:
            raise ValueError(f"{name}: clip must be (min, max) with 0 < min <= max, got {clip!r}")
        k = fds_kernel(kernel, ks, sigma)
        self.half_ks = (len(k) - 1) // 2
        rows = n_buckets - bucket_start
        if rows <= self.half_ks:
            raise ValueError(f"{name}: {rows} buckets are too few for reflect padding with kernel size {ks}")
        self.n_buckets, self.bucket_start = int(n_buckets), int(bucket_start)
        self.binning = binning
        self.start_update, self.start_smooth = int(start_update), int(start_smooth)
        self.momentum = momentum
        self.clip_min, self.clip_max = float(clip_min), float(clip_max)
        self.alias_quirk = bool(alias_quirk)
        self.register_buffer("kernel_window", torch.tensor(k, dtype=torch.float32), persistent=False)
        self.register_buffer("epoch", torch.tensor(self.start_update, dtype=torch.long))
        init_mean, init_var = init_stats(rows)
        for buf, init in (("running_mean", init_mean), ("running_var", init_var),
                          ("running_mean_last_epoch", init_mean), ("running_var_last_epoch", init_var),
                          ("smoothed_mean_last_epoch", init_mean), ("smoothed_var_last_epoch", init_var)):
            self.register_buffer(buf, init.clone())
        self.register_buffer("num_samples_tracked", torch.zeros(rows))
        self.register_buffer("num_samples_last_epoch", torch.zeros(rows))
        self._init = (init_mean.clone(), init_var.clone())

    @property
    def n_rows(self) -> int:
        return self.n_buckets - self.bucket_start

    # ---------------------------------------------------------------------------------- buckets
    def bins_of(self, labels) -> torch.Tensor:
        """Bin indices of ``labels`` via the binning (labels in the binning's space), as int64 on
        the labels' device (CPU for numpy input)."""
        if self.binning is None:
            raise ValueError(f"bins_of needs {type(self).__name__}(binning=...)")
        device = labels.device if isinstance(labels, torch.Tensor) else torch.device("cpu")
        arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        return torch.as_tensor(self.binning.index(np.asarray(arr).reshape(-1)), device=device)

    def rows_of(self, bins, n: int, device) -> torch.Tensor:
        """Row indices (``0..n_rows-1``) of ``n`` samples' bin indices: indices below
        ``bucket_start`` merge into it. Float labels, a count mismatch or an index outside
        ``[0, n_buckets)`` raise."""
        name = type(self).__name__
        bins = torch.as_tensor(bins, device=device).reshape(-1)
        if bins.numel() != n:
            raise ValueError(f"{name}: {n} features but {bins.numel()} bucket indices")
        if bins.is_floating_point():
            raise TypeError(f"{name} expects integer bin indices (use .bins_of(labels) or "
                            "Binning.index), not float labels")
        if ((bins < 0) | (bins >= self.n_buckets)).any():
            raise ValueError(f"{name}: bin index outside [0, {self.n_buckets})")
        return bins.long().clamp(min=self.bucket_start) - self.bucket_start

    # ---------------------------------------------------------------------------------- stats
    def reset(self):
        """Back to the initial statistics and epoch."""
        init_mean, init_var = self._init
        for buf in ("running_mean", "running_mean_last_epoch", "smoothed_mean_last_epoch"):
            getattr(self, buf).copy_(init_mean)
        for buf in ("running_var", "running_var_last_epoch", "smoothed_var_last_epoch"):
            getattr(self, buf).copy_(init_var)
        self.num_samples_tracked.zero_()
        self.num_samples_last_epoch.zero_()
        self.epoch.fill_(self.start_update)

    def smooth_rows(self, stats: torch.Tensor, squared: bool = False) -> torch.Tensor:
        """``stats`` (rows, width) convolved along the rows with the window (``squared``: the
        window squared, as PRM's variance parts), reflect-padded."""
        k = self.kernel_window.to(stats.dtype)
        if squared:
            k = k ** 2
        x = F.pad(stats.t().unsqueeze(1), (self.half_ks, self.half_ks), mode="reflect")
        return F.conv1d(x, k.view(1, 1, -1)).squeeze(1).t()

    def smooth_stats(self, stats: torch.Tensor) -> torch.Tensor:
        """The smoothed snapshot of a mean or variance buffer (subclasses may smooth parts apart)."""
        return self.smooth_rows(stats)

    @torch.no_grad()
    def update_last_epoch_stats(self, epoch: int):
        """Snapshot + smooth the running stats, once per epoch (only if ``epoch == self.epoch + 1``)."""
        if int(epoch) != int(self.epoch) + 1:
            return
        self.epoch += 1
        self.running_mean_last_epoch.copy_(self.running_mean)
        self.running_var_last_epoch.copy_(self.running_var)
        self.num_samples_last_epoch.copy_(self.num_samples_tracked)
        self.smoothed_mean_last_epoch.copy_(self.smooth_stats(self.running_mean))
        self.smoothed_var_last_epoch.copy_(self.smooth_stats(self.running_var))

    @torch.no_grad()
    def ema_update(self, cnt: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, epoch: int) -> torch.Tensor:
        """Fold one pass's per-row ``cnt``, ``mean`` and ``var`` into the running stats: no EMA at
        ``start_update``, else momentum ``m`` (``None``: the cumulative average); rows absent from
        the pass keep their stats. Returns the rows present."""
        present = cnt > 0
        self.num_samples_tracked += cnt
        if int(epoch) == self.start_update:
            factor = torch.zeros_like(cnt)
        elif self.momentum is not None:
            factor = torch.full_like(cnt, float(self.momentum))
        else:
            factor = 1 - cnt / self.num_samples_tracked.clamp(min=1)
        f = factor[:, None]
        self.running_mean.copy_(torch.where(present[:, None], (1 - f) * mean + f * self.running_mean,
                                            self.running_mean))
        self.running_var.copy_(torch.where(present[:, None], (1 - f) * var + f * self.running_var,
                                           self.running_var))
        return present

    def stats_for_calibration(self):
        """``(mean, var, count)`` that calibration divides by: the code's aliasing
        (``alias_quirk``) makes them the current running stats once past ``start_update``; else
        the snapshot."""
        if self.alias_quirk and int(self.epoch) > self.start_update:
            return self.running_mean, self.running_var, self.num_samples_tracked
        return self.running_mean_last_epoch, self.running_var_last_epoch, self.num_samples_last_epoch
