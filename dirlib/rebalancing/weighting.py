"""Cost-sensitive re-weighting (INV / SQINV) and Label Distribution Smoothing (LDS).

Faithful to the DIR benchmark (YyzHarry/imbalanced-regression):

* ``agedb-dir/utils.py::get_lds_kernel_window``   -> :func:`lds_kernel`
* ``agedb-dir/datasets.py::_prepare_weights``      -> :func:`sample_weights` (AgeDB / IMDB-WIKI)
* ``sts-b-dir/tasks.py::load_tsv``                 -> :func:`sample_weights` with ``clip=None`` (STS-B)
* ``agedb-dir/loss.py::weighted_*_loss``           -> :func:`weighted_loss` (``mean(loss_i * w_i)``)

Choices the code leaves implicit, made explicit here:

* Binning is a :class:`dirlib.data.base.Binning`. The age benchmark counts ``int(label)`` over
  ``0..120`` with labels >= 120 clamped into bin 120 (``max_target=121``):
  ``Binning.integer(0, 120)`` reproduces that for integer ages (it rounds a non-integer label to the
  nearest integer bin where the code truncates; all benchmark ages are integers). STS-B uses
  ``np.histogram(bins=50, range=(0, 5))``: ``Binning.uniform(0, 5, 0.1)``.
* ``inverse`` clips the per-bin counts to ``[5, 1000]`` in the age code (``clip=(5, 1000)``, the
  default) and does not clip in STS-B (``clip=None``). ``sqrt_inv`` never clips.
* LDS convolves the (square-rooted or clipped) per-bin counts with :func:`lds_kernel` using
  ``scipy.ndimage.convolve1d(mode="constant")`` (zero padding at the label range ends), over *all*
  bins including empty ones, exactly as the code. LDS requires ``reweight != "none"`` (the code
  asserts it); we raise ``ValueError``.
* Weights are ``1 / effective_count`` of each *sample's* bin, rescaled so their mean over the
  training samples is 1 (``scaling = N / sum(w)``). Empty bins never produce ``inf``: a weight is only
  ever computed for a bin that holds a sample, whose effective count is >= 1 (its own count times
  the kernel centre 1), and a non-positive effective count raises instead of returning ``inf``.
* **Integer-truncation quirk** (``int_quirk=True``, default, faithful): with ``reweight="inverse"``
  the code's per-bin counts are *integers* (``np.clip`` of int counts in the age code, the
  ``np.histogram`` counts in STS-B), and ``scipy.ndimage.convolve1d`` returns its input's dtype, so
  the LDS-smoothed counts are truncated toward zero (7.5 -> 7). ``sqrt_inv`` counts are floats and
  are not affected. This changes INV+LDS weights (the STS-B paper setting) by up to a factor
  ``x / floor(x)`` in sparse bins. ``int_quirk=False`` keeps the exact smoothed values.
* The code computes ``np.float32(1 / x)`` before rescaling; we keep float64 throughout (differences
  ~1e-7 relative).
"""
from __future__ import annotations

from typing import Optional, Tuple

import math

import numpy as np
import torch
from scipy.ndimage import convolve1d, gaussian_filter1d
from scipy.signal.windows import triang

REWEIGHTS = ("none", "inverse", "sqrt_inv")
KERNELS = ("gaussian", "triang", "laplace")


def _check_kernel_args(kind: str, ks: int, sigma: float):
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel {kind!r}; valid: {', '.join(KERNELS)}")
    if int(ks) != ks or ks < 1 or ks % 2 == 0:
        raise ValueError(f"kernel size ks must be a positive odd integer, got {ks!r}")
    if kind in ("gaussian", "laplace") and not (sigma > 0):
        raise ValueError(f"kernel sigma must be > 0 for a {kind} kernel, got {sigma!r}")


def lds_kernel(kind: str = "gaussian", ks: int = 5, sigma: float = 2.0) -> np.ndarray:
    """The LDS smoothing window of length ``ks``, normalised to **max = 1**.

    As ``agedb-dir/utils.py::get_lds_kernel_window``:

    * ``gaussian``: ``scipy.ndimage.gaussian_filter1d`` of a centred delta of length ``ks`` (scipy's
      default ``mode='reflect'``, ``truncate=4``, so mass beyond the window folds back: it is *not*
      a plain sampled Gaussian), divided by its max;
    * ``triang``: ``scipy.signal.windows.triang(ks)`` (already max 1 for odd ``ks``);
    * ``laplace``: ``exp(-|x| / sigma) / (2 sigma)`` on ``x = -h..h``, divided by its max.

    The paper / READMEs use gaussian, ``ks=5``, ``sigma=2`` (our defaults); the code's argparse
    defaults differ (AgeDB ``ks=9, sigma=1``; IMDB-WIKI ``ks=5, sigma=1``; STS-B ``ks=5, sigma=2``),
    see ``docs/baseline-defaults.md`` of the dirlib repository. FDS uses the same shapes normalised to sum 1
    (:func:`dirlib.rebalancing.fds.fds_kernel`).
    """
    _check_kernel_args(kind, ks, sigma)
    ks = int(ks)
    half = (ks - 1) // 2
    if kind == "gaussian":
        base = np.zeros(ks, dtype=np.float64)
        base[half] = 1.0
        k = gaussian_filter1d(base, sigma=sigma)
    elif kind == "triang":
        k = np.asarray(triang(ks), dtype=np.float64)
    else:
        x = np.arange(-half, half + 1, dtype=np.float64)
        k = np.exp(-np.abs(x) / sigma) / (2.0 * sigma)
    return k / k.max()


def effective_counts(counts, reweight: str = "sqrt_inv", lds: bool = False, ks: int = 5,
                     sigma: float = 2.0, kernel: str = "gaussian",
                     clip: Optional[Tuple[float, float]] = (5, 1000),
                     int_quirk: bool = True) -> np.ndarray:
    """Per-bin effective density from raw per-bin ``counts`` (float64, one entry per bin).

    ``sqrt_inv``: ``sqrt(counts)``; ``inverse``: ``clip(counts, *clip)`` (no clip if ``clip`` is
    None); then, with ``lds``, ``convolve1d(., lds_kernel(kernel, ks, sigma), mode='constant')``,
    truncated toward zero for ``inverse`` when ``int_quirk`` (the code convolves an integer array).
    Empty bins stay 0 without LDS (no sample will ever look them up).
    """
    if reweight not in REWEIGHTS:
        raise ValueError(f"unknown reweight {reweight!r}; valid: {', '.join(REWEIGHTS)}")
    if reweight == "none":
        raise ValueError("effective_counts needs reweight 'inverse' or 'sqrt_inv'")
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or (c < 0).any() or not np.isfinite(c).all():
        raise ValueError("counts must be a 1-d array of finite non-negative numbers")
    if reweight == "sqrt_inv":
        c = np.sqrt(c)
    elif clip is not None:
        lo, hi = clip
        if not lo <= hi:
            raise ValueError(f"clip must be (lo, hi) with lo <= hi, got {clip!r}")
        c = np.clip(c, lo, hi)
    if lds:
        c = convolve1d(c, weights=lds_kernel(kernel, ks, sigma), mode="constant")
        if int_quirk and reweight == "inverse":
            c = np.trunc(c)
    return c


def sample_weights(train_labels, binning, reweight: str = "none", lds: bool = False, ks: int = 5,
                   sigma: float = 2.0, kernel: str = "gaussian",
                   clip: Optional[Tuple[float, float]] = (5, 1000),
                   int_quirk: bool = True) -> np.ndarray:
    """One weight per training sample (float64, mean 1), as the benchmark's ``_prepare_weights``.

    ``reweight="none"`` returns all ones (the code returns ``None`` and uses weight 1); asking for
    ``lds=True`` with ``reweight="none"`` raises (the code asserts). ``clip`` applies to
    ``inverse`` only: ``(5, 1000)`` for AgeDB / IMDB-WIKI, ``None`` for STS-B. Rarer bins get higher
    weights. Labels outside the binning's edges are clipped into its end bins (the age code clamps
    ages >= 120 into bin 120). ``int_quirk``: see the module docstring (INV+LDS only).
    """
    if reweight not in REWEIGHTS:
        raise ValueError(f"unknown reweight {reweight!r}; valid: {', '.join(REWEIGHTS)}")
    if lds and reweight == "none":
        raise ValueError("LDS needs reweight='sqrt_inv' or 'inverse' (as the DIR code asserts)")
    labels = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    if labels.size == 0:
        raise ValueError("sample_weights: no training labels")
    if not np.isfinite(labels).all():
        raise ValueError("sample_weights: non-finite training label(s)")
    if reweight == "none":
        return np.ones(labels.size, dtype=np.float64)
    idx = binning.index(labels)
    counts = np.bincount(idx, minlength=binning.n_bins).astype(np.float64)
    eff = effective_counts(counts, reweight, lds=lds, ks=ks, sigma=sigma, kernel=kernel, clip=clip,
                           int_quirk=int_quirk)
    per_sample = eff[idx]
    if not (per_sample > 0).all() or not np.isfinite(per_sample).all():
        raise ValueError("sample_weights: a non-positive effective count for an occupied bin "
                         "(check the kernel / clip arguments)")
    w = 1.0 / per_sample
    return w * (labels.size / w.sum())


def dense_weights(train_labels, alpha: float = 1.0, eps: float = 1e-6,
                  bandwidth: Optional[float] = None, grid_points: int = 4096) -> np.ndarray:
    """DenseWeight (Steininger et al., *Machine Learning* 2021): one weight per training sample,
    ``max(1 - alpha * p'(y), eps)`` normalised to mean 1, where ``p'`` is the Gaussian kernel
    density of the training labels (Silverman's bandwidth ``1.06 sd n^(-1/5)`` unless given),
    min-max scaled over a grid of ``grid_points`` spanning the labels +- 4 bandwidths. The density is
    evaluated exactly at each label (the ``denseweight`` package bins it with an FFT and reads the
    grid point below; ``tests/rebalancing/test_denseweight.py`` compares the two).

    >>> w = dense_weights([1.0] * 90 + [5.0] * 10)
    >>> bool(w[-1] > w[0]), round(float(w.mean()), 6)
    (True, 1.0)
    """
    y = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isfinite(y).all():
        raise ValueError("dense_weights: the training labels are empty or not finite")
    if alpha < 0 or eps <= 0:
        raise ValueError(f"dense_weights: alpha must be >= 0 and eps > 0, got {alpha}, {eps}")
    bw = float(bandwidth) if bandwidth is not None else 1.06 * float(np.std(y)) * y.size ** -0.2
    if not bw > 0:
        return np.ones_like(y)               # one label value: every sample is as dense
    u, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)

    def density(x):
        z = (x[:, None] - u[None, :]) / bw
        return (counts[None, :] * np.exp(-0.5 * z * z)).sum(1) / (y.size * bw * math.sqrt(2 * math.pi))

    grid = np.linspace(y.min() - 4 * bw, y.max() + 4 * bw, grid_points)
    g = np.concatenate([density(chunk) for chunk in np.array_split(grid, max(1, grid_points // 512))])
    lo, hi = float(g.min()), float(g.max())
    scaled = np.clip((density(u) - lo) / (hi - lo), 0.0, 1.0)
    w = np.maximum(1.0 - alpha * scaled, eps)[inverse]
    return w / w.mean()


def weighted_loss(per_sample_loss: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(loss_i * w_i)`` (the benchmark's ``weighted_*_loss`` reduction); plain mean if
    ``weights`` is None. ``weights`` must have as many elements as the loss (a ``(B, 1)`` weight is
    reshaped to a ``(B,)`` loss, never broadcast to ``(B, B)``)."""
    if weights is None:
        return per_sample_loss.mean()
    weights = torch.as_tensor(weights, device=per_sample_loss.device)
    if weights.numel() != per_sample_loss.numel():
        raise ValueError(f"weights has {weights.numel()} elements but the loss has "
                         f"{per_sample_loss.numel()}")
    return (per_sample_loss * weights.reshape(per_sample_loss.shape).to(per_sample_loss.dtype)).mean()
