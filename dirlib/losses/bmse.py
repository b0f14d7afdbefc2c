"""Balanced MSE (Ren et al., CVPR 2022): BMC, GAI and BNI.

Source: ``jiawei-ren/BalancedMSE/imdb-wiki-dir/balanaced_mse.py`` (losses),
``preprocess_gmm.py`` (GMM prior), ``datasets.py::get_bucket_info`` (BNI buckets),
``train.py`` / ``utils.py`` (sigma in its own optimizer group), ``README.md`` (recipe).

With ``s2 = noise_sigma ** 2`` (a learnable scalar)::

    BMC: logits_ij = -(p_i - y_j)^2 / (2 s2);  loss = CE(logits, arange(B)) * (2 s2).detach()
    GAI: loss = mean_i[ (p_i - y_i)^2 / (2 s2) + 0.5 log s2
                        + logsumexp_k(-0.5 log(v_k + s2) - 0.5 (p_i - mu_k)^2 / (v_k + s2) + log pi_k) ]
               * (2 s2).detach()
    BNI: loss = mean_i[ (p_i - y_i)^2 / (2 s2) + logsumexp_b(-0.5 (p_i - c_b)^2 / s2 + log w_b) ]
               * (2 s2).detach()

The ``(2 s2).detach()`` factor restores the MSE scale (maintainer, BalancedMSE#16); it is detached,
so sigma's gradient comes only from the bracket. BNI has no ``0.5 log s2`` term (as the code).

Defaults and recipe (``imdb-wiki-dir/train.py`` / ``README.md``):

* ``init_noise_sigma``: code default **1.0**; the README runs IMDB-WIKI with **10.0**.
* sigma is optimised in its own parameter group at ``--sigma_lr 1e-2``; the repository's
  ``adjust_learning_rate`` skips the group named ``noise_sigma``, so sigma's lr is never decayed
  (use :meth:`BalancedMSE.param_groups`; the group carries ``name='noise_sigma'``).
  ``--fix_noise_sigma`` keeps sigma out of the optimizer (here: ``fix_sigma=True``, which also sets
  ``requires_grad=False``).
* GAI prior: ``sklearn.mixture.GaussianMixture(n_components=8, random_state=0)`` on the training
  labels (:func:`fit_gmm`).
* BNI buckets: integer centres ``0..max_target-1`` with ``max_target=200`` (``train.py`` passes
  200), counts of ``int(label)`` (labels >= max_target dropped, *not* clamped), optionally LDS-smoothed
  with the max-1 kernel (``--lds``), zero-weight buckets removed, normalised to sum 1
  (:func:`bni_buckets`).
* Recipe: RRT stage on a vanilla checkpoint (regressor only), lr 1e-4, 10 epochs, balanced metric.

Spaces: ``pred`` and ``y`` are model-space targets (``label / target_scale``). GMM and bucket centres
must be in the same space: fit / build them on ``train_labels / target_scale``.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.ndimage import convolve1d

from .focal import check_pred_target
from ..rebalancing.weighting import lds_kernel
from .parts import LossWithParts

IMPS = ("bmc", "gai", "bni")


# ------------------------------------------------------------------------------------- priors
def fit_gmm(train_labels, K: int = 8, seed: int = 0) -> dict:
    """GAI's prior: a K-component 1-d Gaussian mixture over the training labels.

    ``GaussianMixture(n_components=K, random_state=seed)`` with sklearn's other defaults
    (``covariance_type='full'``, as ``preprocess_gmm.py``). Returns numpy arrays ``means``,
    ``variances`` and ``weights``, each of shape ``(K,)``.
    """
    from sklearn.mixture import GaussianMixture

    y = np.asarray(train_labels, dtype=np.float64).reshape(-1, 1)
    if len(y) < K:
        raise ValueError(f"fit_gmm: {len(y)} labels cannot fit {K} components")
    if not np.isfinite(y).all():
        raise ValueError("fit_gmm: non-finite training label(s)")
    gmm = GaussianMixture(n_components=K, random_state=seed).fit(y)
    return {"means": gmm.means_.reshape(-1).copy(),
            "variances": gmm.covariances_.reshape(-1).copy(),
            "weights": gmm.weights_.reshape(-1).copy()}


def bni_buckets(train_labels, max_target: int = 200, lds: bool = False, kernel: str = "gaussian",
                ks: int = 5, sigma: float = 2.0, binning=None, int_quirk: bool = True):
    """BNI's histogram prior ``(centers, weights)`` (``datasets.py::get_bucket_info``).

    Default: integer buckets ``0..max_target-1`` holding ``int(label)``; labels ``>= max_target``
    are dropped (as the code). With ``binning`` (a :class:`~dirlib.data.base.Binning`, e.g. for
    STS-B), its bin centres and counts are used instead (out-of-range labels then fall into the end
    bins). Optional LDS with :func:`~dirlib.rebalancing.weighting.lds_kernel` (``mode='constant'``);
    the code convolves the *integer* counts and scipy keeps the integer dtype, so the smoothed
    counts are truncated toward zero (``int_quirk=True``, faithful; ``False`` keeps exact values).
    Buckets of zero weight are removed; weights sum to 1.
    """
    y = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    if y.size == 0 or not np.isfinite(y).all():
        raise ValueError("bni_buckets: need a non-empty array of finite labels")
    if binning is None:
        if (y < 0).any():
            raise ValueError("bni_buckets: negative labels need an explicit binning")
        iy = y.astype(np.int64)  # int() truncation, as the code
        iy = iy[iy < max_target]
        counts = np.bincount(iy, minlength=max_target).astype(np.float64)[:max_target]
        centers = np.arange(max_target, dtype=np.float64)
    else:
        counts = binning.counts(y).astype(np.float64)
        centers = np.asarray(binning.centers, dtype=np.float64)
    if lds:
        counts = convolve1d(counts, weights=lds_kernel(kernel, ks, sigma), mode="constant")
        if int_quirk:
            counts = np.trunc(counts)
    keep = counts > 0
    if not keep.any():
        raise ValueError("bni_buckets: no label falls into any bucket")
    w = counts[keep]
    return centers[keep], w / w.sum()


# ------------------------------------------------------------------------------------- losses
def _prep(pred, y, name):
    check_pred_target(pred, y, name)
    return pred.reshape(-1), y.reshape(-1)


def bmc_loss(pred: torch.Tensor, y: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
    """Batch-based Monte-Carlo: every prediction against every target in the batch."""
    pred, y = _prep(pred, y, "bmc_loss")
    logits = -0.5 * (pred[:, None] - y[None, :]) ** 2 / noise_var
    target = torch.arange(pred.shape[0], device=pred.device)
    return F.cross_entropy(logits, target) * (2 * noise_var).detach()


def gai_loss(pred: torch.Tensor, y: torch.Tensor, noise_var: torch.Tensor, means: torch.Tensor,
             variances: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """GMM-based analytical integration with a K-component prior ``(means, variances, weights)``."""
    pred, y = _prep(pred, y, "gai_loss")
    mse_term = (pred - y) ** 2 / 2 / noise_var + 0.5 * torch.log(noise_var)
    sum_var = variances[None, :] + noise_var
    bal = (-0.5 * torch.log(sum_var) - 0.5 * (pred[:, None] - means[None, :]) ** 2 / sum_var
           + torch.log(weights)[None, :])
    loss = mse_term + torch.logsumexp(bal, dim=-1)
    return (loss * (2 * noise_var).detach()).mean()


def bni_loss(pred: torch.Tensor, y: torch.Tensor, noise_var: torch.Tensor, centers: torch.Tensor,
             weights: torch.Tensor) -> torch.Tensor:
    """Bin-based numerical integration over a histogram prior ``(centers, weights)``."""
    pred, y = _prep(pred, y, "bni_loss")
    mse_term = (pred - y) ** 2 / 2 / noise_var
    bal = -0.5 * (pred[:, None] - centers[None, :]) ** 2 / noise_var + torch.log(weights)[None, :]
    loss = mse_term + torch.logsumexp(bal, dim=-1)
    return (loss * (2 * noise_var).detach()).mean()


class BalancedMSE(LossWithParts):
    """Balanced MSE with a learnable noise scale ``noise_sigma`` (``s2 = noise_sigma ** 2``).

    ``imp``: ``"bmc"`` (no prior), ``"gai"`` (needs ``gmm``, e.g. from :func:`fit_gmm`) or ``"bni"``
    (needs ``bucket_centers`` / ``bucket_weights``, e.g. from :func:`bni_buckets`). Priors are
    buffers, so ``.to(device)`` moves them. ``forward(pred, y)`` returns the scalar loss; it replaces
    the regression loss (the code passes no sample weights to it). Predictions of shape ``(B,)`` or
    ``(B, 1)``.

    ``noise_sigma`` is a parameter of this module, not of your model: give it to the optimiser,
    at its own learning rate as the authors do (:meth:`param_groups`), or it stays at its start.

    BMC contrasts each prediction with the others of its batch: a batch of one has nothing to
    contrast, its loss is 0 with no gradient (a warning says so).
    """

    def __init__(self, imp: str = "bmc", init_noise_sigma: float = 1.0, fix_sigma: bool = False,
                 gmm: Optional[dict] = None, bucket_centers=None, bucket_weights=None):
        super().__init__()
        if imp not in IMPS:
            raise ValueError(f"unknown Balanced MSE implementation {imp!r}; valid: {', '.join(IMPS)}")
        if not init_noise_sigma > 0:
            raise ValueError(f"init_noise_sigma must be > 0, got {init_noise_sigma!r}")
        self.imp = imp
        self.fix_sigma = bool(fix_sigma)
        self.noise_sigma = nn.Parameter(torch.tensor(float(init_noise_sigma)),
                                        requires_grad=not self.fix_sigma)
        if imp == "gai":
            if gmm is None:
                raise ValueError("imp='gai' needs gmm=fit_gmm(train_labels / target_scale)")
            for k in ("means", "variances", "weights"):
                v = torch.as_tensor(np.asarray(gmm[k], dtype=np.float32).reshape(-1))
                self.register_buffer(f"gmm_{k}", v)
            if not (self.gmm_variances >= 0).all() or not (self.gmm_weights > 0).all():
                raise ValueError("gmm variances must be >= 0 and weights > 0")
        if imp == "bni":
            if bucket_centers is None or bucket_weights is None:
                raise ValueError("imp='bni' needs bucket_centers and bucket_weights (see bni_buckets)")
            c = torch.as_tensor(np.asarray(bucket_centers, dtype=np.float32).reshape(-1))
            w = torch.as_tensor(np.asarray(bucket_weights, dtype=np.float32).reshape(-1))
            if c.shape != w.shape or c.numel() == 0:
                raise ValueError("bucket_centers and bucket_weights must be non-empty and equally long")
            if not (w > 0).all():
                raise ValueError("bucket_weights must be > 0 (drop empty buckets, as bni_buckets does)")
            self.register_buffer("bucket_centers", c)
            self.register_buffer("bucket_weights", w)

    @property
    def noise_var(self) -> torch.Tensor:
        return self.noise_sigma ** 2

    def forward(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The scalar loss; ``parts`` holds the detached noise variance.

        >>> import torch
        >>> m = BalancedMSE(init_noise_sigma=1.0)
        >>> loss = m(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 2.5]))
        >>> loss.shape, float(m.parts["noise_var"])
        (torch.Size([]), 1.0)
        """
        nv = self.noise_var
        self.record(nv, noise_var=nv)
        pred = pred.reshape(-1) if pred.dim() == 2 and pred.shape[1] == 1 else pred
        y = y.reshape(-1) if y.dim() == 2 and y.shape[1] == 1 else y
        if self.imp == "bmc" and pred.shape[0] == 1:
            warnings.warn("BalancedMSE(imp='bmc') on a batch of one: nothing to contrast, the loss "
                          "is 0 with no gradient", RuntimeWarning, stacklevel=2)
        if self.imp == "bmc":
            return bmc_loss(pred, y, nv)
        if self.imp == "gai":
            return gai_loss(pred, y, nv, self.gmm_means, self.gmm_variances, self.gmm_weights)
        return bni_loss(pred, y, nv, self.bucket_centers, self.bucket_weights)

    def param_groups(self, sigma_lr: float = 1e-2) -> list:
        """Optimizer parameter groups for sigma at its own lr (``--sigma_lr 1e-2``); empty when
        ``fix_sigma``. The group is named ``noise_sigma``: an lr schedule should skip it, as the
        authors' ``adjust_learning_rate`` does."""
        if self.fix_sigma:
            return []
        return [{"params": [self.noise_sigma], "lr": float(sigma_lr), "name": "noise_sigma",
                 "weight_decay": 0.0}]
