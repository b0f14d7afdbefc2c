"""The Frobenius-norm method: the pieces used by its three training phases, as plain functions and small modules.

Paper: *Enhancing Deep Imbalanced Regression via Frobenius Norm Regularization*, sections 3.3-3.5
(the paper's sections 3.3-3.5). The trainer composes them; nothing here loops over
epochs.

Phase 1 (eqs. 2-6): :func:`ordinal_kl` (eqs. 2-3) + ``alpha`` * :func:`prototype_ordinal_entropy` (eq. 4),
    bundled as :class:`FrobeniusRegularizer` (eq. 5). The trainer adds ``beta * L_ordinal`` to its
    base loss (eq. 6).
Phase 2 (section 3.4): :class:`NormNet` (``Linear(1, 1)`` + sigmoid) fitted by :func:`fit_norm_net` on the
    (label, prototype-norm) pairs of the majority-shot labels only.
Phase 3 (eq. 7): :func:`norm_alignment_loss` between ``||z_i||`` and the predicted norm of the sample's
    label, looked up with :func:`label_norm_lookup`.

Every choice the paper leaves open is stated in the docstring where it is made, and collected in
``docs/frobenius-choices.md`` of the dirlib repository. Notation: ``z`` (B, d) the penultimate feature (``pred, z = model(x)``),
``y`` (B,) the label of every sample in the units the trainer uses (model space), ``bins`` (B,) int64
label-bin ids (``Binning.index``); a *prototype* is the mean ``z`` of one bin present in the batch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .parts import LossWithParts

__all__ = [
    "batch_prototypes", "ordinal_kl", "prototype_ordinal_entropy", "OrdinalConfig",
    "FrobeniusRegularizer", "NormNet", "fit_norm_net", "norm_alignment_loss", "label_norm_lookup",
    "dataset_prototype_norms",
]

_EPS = 1e-12


# ----------------------------------------------------------------------------------- helpers
def _check_batch(z: torch.Tensor, y: Optional[torch.Tensor], bins: torch.Tensor, where: str):
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"{where}: z must be a 2-d tensor (B, d), got "
                         f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    if not isinstance(bins, torch.Tensor) or bins.dim() != 1 or bins.shape[0] != z.shape[0]:
        raise ValueError(f"{where}: bins must be a 1-d tensor of length B={z.shape[0]}, got "
                         f"{tuple(bins.shape) if isinstance(bins, torch.Tensor) else type(bins).__name__}")
    if bins.dtype.is_floating_point or bins.dtype == torch.bool or bins.is_complex():
        raise TypeError(f"{where}: bins must hold integer bin ids (int64), got {bins.dtype}")
    if y is not None:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{where}: y must be a tensor, got {type(y).__name__}")
        if y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1 or y.shape[0] != z.shape[0]:
            raise ValueError(f"{where}: y must have shape (B,) with B={z.shape[0]}, got {tuple(y.shape)}")
    return y


def _work_dtype(z: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 features (autocast) are upcast to float32 for the softmaxes; float64 stays."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def _graph_zero(z: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that is still connected to ``z`` (so ``.backward()`` works and gives zero grads)."""
    return (z * 0).sum()


def batch_prototypes(z: torch.Tensor, bins: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-bin mean feature of a batch, vectorised (``torch.unique`` + ``index_add``, no Python loop).

    Returns ``(labels_unique, protos, counts)``: the sorted distinct bin ids ``(m,)``, their prototypes
    ``c_j = mean of z_i with bins_i == j`` ``(m, d)`` (differentiable w.r.t. ``z``; same dtype as ``z``)
    and the number of samples of each ``(m,)``. This is the paper's ``c^j = 1/b_j sum_i z_i^j`` (section 3.3)
    and the public OE code's ``center_f`` (``OrdinalEntropy/AgeEstimation/OrdinalEntropy.py``).
    """
    _check_batch(z, None, bins, "batch_prototypes")
    uniq, inv, counts = torch.unique(bins, sorted=True, return_inverse=True, return_counts=True)
    protos = z.new_zeros((uniq.shape[0], z.shape[1])).index_add(0, inv, z)
    protos = protos / counts.to(z.dtype).unsqueeze(1)
    return uniq, protos, counts


def _prototype_stats(z, y, bins):
    """Prototypes, their labels (mean ``y`` of the bin) and the inverse index, computed once."""
    zf = _work_dtype(z)
    uniq, inv, counts = torch.unique(bins, sorted=True, return_inverse=True, return_counts=True)
    cnt = counts.to(zf.dtype)
    protos = zf.new_zeros((uniq.shape[0], zf.shape[1])).index_add(0, inv, zf) / cnt.unsqueeze(1)
    yf = y.to(zf.dtype)
    proto_y = zf.new_zeros(uniq.shape[0]).index_add(0, inv, yf) / cnt
    return uniq, inv, counts, protos, proto_y


def _pair_dist(v: torch.Tensor, distance: str) -> torch.Tensor:
    diff = v.unsqueeze(1) - v.unsqueeze(0)
    if distance == "l1":
        return diff.abs()
    if distance == "squared":
        return diff * diff
    raise ValueError(f"distance must be 'l1' or 'squared', got {distance!r}")


def _scale_norms(norms: torch.Tensor, norm_scale) -> torch.Tensor:
    if isinstance(norm_scale, str):
        if norm_scale == "mean":
            return norms / norms.mean().clamp_min(_EPS)
        if norm_scale == "mean_detached":
            return norms / norms.mean().detach().clamp_min(_EPS)
        if norm_scale == "none":
            return norms
        raise ValueError(f"norm_scale must be 'mean', 'mean_detached', 'none' or a positive float, "
                         f"got {norm_scale!r}")
    s = float(norm_scale)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"a numeric norm_scale must be a positive finite float, got {norm_scale!r}")
    return norms / s


def _kl_from_logits(logit_p: torch.Tensor, logit_q: torch.Tensor, softmax: str,
                    self_pairs: bool) -> torch.Tensor:
    """KL(P || Q) with P = softmax(logit_p), Q = softmax(logit_q) over (m, m) logits."""
    m = logit_p.shape[0]
    if not self_pairs:
        keep = ~torch.eye(m, dtype=torch.bool, device=logit_p.device)
        logit_p = logit_p[keep].view(m, m - 1)
        logit_q = logit_q[keep].view(m, m - 1)
    if softmax == "row":
        log_p = F.log_softmax(logit_p, dim=1)
        log_q = F.log_softmax(logit_q, dim=1)
        # == F.kl_div(log_q, log_p.exp(), reduction="batchmean"): sum over entries / number of rows
        return (log_p.exp() * (log_p - log_q)).sum() / m
    if softmax == "joint":
        log_p = F.log_softmax(logit_p.reshape(-1), dim=0)
        log_q = F.log_softmax(logit_q.reshape(-1), dim=0)
        return (log_p.exp() * (log_p - log_q)).sum()
    raise ValueError(f"softmax must be 'row' or 'joint', got {softmax!r}")


# ----------------------------------------------------------------------------------- phase 1: KL
def ordinal_kl(z: torch.Tensor, y: torch.Tensor, bins: torch.Tensor, *,
               label_tau: float = 0.1, norm_tau: float = 0.1,
               label_range: Optional[float] = None,
               norm_scale: Union[str, float] = "mean", softmax: str = "row",
               self_pairs: bool = False, distance: str = "squared") -> torch.Tensor:
    """Eqs. 2-3: KL between a label-distance distribution P and a prototype-norm-distance distribution Q.

    For the ``m`` bins present in the batch: prototype ``c_j`` (mean ``z``), its norm ``l_j = ||c_j||_2``
    (the Frobenius norm of a vector is its L2 norm) and its label ``y_j`` (mean ``y`` of its samples,
    i.e. the bin's label value when labels are exact bin values)::

        P_ij = softmax_j( -d( (y_i - y_j) / (label_range * label_tau) ) )
        Q_ij = softmax_j( -d( (s(l)_i - s(l)_j) / norm_tau ) )          s = norm_scale
        L_KL = KL(P || Q)                  d(u) = |u| ("l1")  or  u**2 ("squared")

    The taus are *length scales* (the kernel falls to 1/e at a difference of one tau, for both
    distances); with ``distance="l1"`` this is exactly eq. 2's ``exp(-d/tau)``.

    Choices the paper leaves open, and the defaults (peer-methods notes section 4.3):

    * **Temperatures and scales.** Eq. 2 has no temperature; with raw ages ``exp(-|dy|)`` is nearly
      one-hot (dy = 5 -> 0.007), with STS-B scores (0..5) nearly flat, and raw ResNet norms are in the
      tens. So labels are divided by ``label_range`` (in the units of ``y``: pass
      ``(binning.edges[-1] - binning.edges[0]) / target_scale``; ``None`` = the range of the prototype
      labels in this batch: unit-free, but batch-dependent) and norms by their batch mean
      (``norm_scale="mean"``). With ``label_tau = norm_tau = 0.1`` the label kernel spans a tenth of the
      label range (12 years for ages 0..120, 0.5 for STS-B 0..5), so both datasets get a P that is
      neither one-hot nor flat, and Q equals P (KL = 0) exactly when the prototype norms divided by
      their batch mean change by ``norm_tau / label_tau = 1`` over the whole label range
      (``|l_i - l_j| / mean(l) = |y_i - y_j| / label_range``, for either distance).
    * **norm_scale.** ``"mean"`` divides by the batch mean of the *prototype* norms and keeps it in the
      graph: the loss is then invariant to a global rescaling of the features, so the KL shapes only
      the relative spacing of the norms and cannot inflate or shrink them (the overall scale is left to
      the task loss and, later, to phase 3). ``"mean_detached"`` treats the mean as a constant,
      ``"none"`` uses raw norms (``norm_tau`` then carries the units), a float divides by that constant.
    * **softmax.** ``"row"`` (default): a conditional distribution per prototype, as in SNE (Hinton &
      Roweis, cited by the paper) and PRIME's proxy loss; the KL is averaged over rows
      (``F.kl_div(log Q, P, reduction="batchmean")`` semantics). ``"joint"``: one softmax over all
      (ordered) pairs and a single KL.
    * **self_pairs.** ``False`` (default) removes the diagonal from both softmaxes: with it, the d = 0
      self pairs carry the largest weight in every row of P and Q and mostly measure the temperature.
    * **distance.** ``"squared"`` (default; SNE's Gaussian kernel) or ``"l1"``. Measured in
      ``tests/losses/test_frobenius.py`` (Adam on the KL alone, 12 labels, random features, seeds 0-11): with
      ``"l1"`` 7 of 12 starts stall in a folded order (|Spearman| 0.03-0.63 after 400 steps):
      ``d|l_i - l_j|/dl`` does not vanish as two norms meet, so a wrongly ordered close pair keeps
      repelling and cannot swap. With ``"squared"`` the repulsion vanishes at contact and
      all 12 reached |Spearman| = 1.

    Note: because only distances enter, the KL cannot tell increasing norms from decreasing ones
    (``l -> 2 mean(l) - l`` leaves it unchanged): it asks for norms *monotone* in the label; the
    direction comes from the task loss / initialisation.

    Returns a scalar tensor. Fewer than 2 distinct bins in the batch: a graph-connected 0 (never NaN).
    With exactly 2 bins and ``self_pairs=False`` every row has one entry, P = Q = 1 and the KL is 0.
    """
    y = _check_batch(z, y, bins, "ordinal_kl")
    if not (label_tau > 0 and norm_tau > 0):
        raise ValueError(f"label_tau and norm_tau must be > 0, got {label_tau}, {norm_tau}")
    if label_range is not None and not (float(label_range) > 0 and math.isfinite(float(label_range))):
        raise ValueError(f"label_range must be a positive finite number or None, got {label_range!r}")
    if softmax not in ("row", "joint"):
        raise ValueError(f"softmax must be 'row' or 'joint', got {softmax!r}")
    if distance not in ("l1", "squared"):
        raise ValueError(f"distance must be 'l1' or 'squared', got {distance!r}")
    _scale_norms(torch.ones(1), norm_scale)  # validates norm_scale before any early return
    if z.shape[0] == 0:
        raise ValueError("ordinal_kl: empty batch")
    _, _, _, protos, proto_y = _prototype_stats(z, y, bins)
    if protos.shape[0] < 2:
        return _graph_zero(z)
    return _ordinal_kl_core(protos, proto_y, label_tau=label_tau, norm_tau=norm_tau,
                            label_range=label_range, norm_scale=norm_scale, softmax=softmax,
                            self_pairs=self_pairs, distance=distance)


def _ordinal_kl_core(protos, proto_y, *, label_tau, norm_tau, label_range, norm_scale, softmax,
                     self_pairs, distance):
    norms = torch.linalg.vector_norm(protos, dim=1)
    if label_range is None:
        rng = (proto_y.max() - proto_y.min()).detach().clamp_min(_EPS)
    else:
        rng = float(label_range)
    ys = proto_y / (rng * label_tau)
    ls = _scale_norms(norms, norm_scale) / norm_tau
    logit_p = -_pair_dist(ys, distance)
    logit_q = -_pair_dist(ls, distance)
    return _kl_from_logits(logit_p, logit_q, softmax, self_pairs)


# ----------------------------------------------------------------------------------- phase 1: OE
def prototype_ordinal_entropy(z: torch.Tensor, y: torch.Tensor, bins: torch.Tensor, *,
                              normalize: bool = True, tightness: bool = True,
                              squared: bool = False, weights: str = "minmax") -> torch.Tensor:
    """Eq. 4: Ordinal Entropy on the batch prototypes, as in the public OE code.

    Follows ``needylove/OrdinalEntropy/AgeEstimation/OrdinalEntropy.py::ordinalentropy`` (HEAD
    75fc9d5, 2023-09-15), written anew:

    * prototypes ``c_u`` = per-bin mean of the *raw* features, then ``p_u = c_u / ||c_u||``
      (``normalize=True``). So OE constrains the *directions* of the prototypes and is blind to their
      norms, which are left to :func:`ordinal_kl`; the two terms are complementary.
    * diversity = mean over unordered pairs u < v of ``w_uv * ||p_u - p_v||_2`` (``squared=False``: the
      code uses the distance itself, clamped at 1e-12 before the sqrt; the paper's eq. 4 writes the
      square: ``squared=True``). The mean over u < v equals eq. 4's ``1/(m(m-1)) sum_{i != j}``.
    * weights: ``"minmax"`` (code) ``w = (|y_u - y_v| - min) / max`` over the pairs of the batch (it
      divides by the max, not by max - min; so the closest pair gets weight 0 and, with exactly 2
      labels, the diversity term is 0); ``"l1"`` (eq. 4 as printed) ``w = |y_u - y_v|`` in the units of
      ``y``.
    * tightness (``tightness=True``, as the code): mean over samples of ``||z_i/||z_i|| - p_{u(i)}||_2``,
      skipping exact zeros (singleton bins), 0 when all are zero (the code would give NaN there).
      Eq. 4 as printed has no tightness term (the paper replaces its eq. 1 alignment by the task
      MSE): ``tightness=False``.
    * ``normalize=False`` uses raw features and prototypes. Then the diversity term is unbounded below
      (scaling ``z`` up lowers the loss): only for ablations.

    Returns ``tightness - diversity`` (scalar); a graph-connected 0 when fewer than 2 bins are present.
    """
    y = _check_batch(z, y, bins, "prototype_ordinal_entropy")
    if weights not in ("minmax", "l1"):
        raise ValueError(f"weights must be 'minmax' or 'l1', got {weights!r}")
    if z.shape[0] == 0:
        raise ValueError("prototype_ordinal_entropy: empty batch")
    _, inv, _, protos, proto_y = _prototype_stats(z, y, bins)
    if protos.shape[0] < 2:
        return _graph_zero(z)
    return _oe_core(_work_dtype(z), inv, protos, proto_y, normalize=normalize, tightness=tightness,
                    squared=squared, weights=weights)


def _oe_core(zf, inv, protos, proto_y, *, normalize, tightness, squared, weights):
    """The paper's OE term: the one OE core (:func:`dirlib.losses.oe.oe_core`) in its upstream-HEAD
    form (75fc9d5, the distance in the tightness), as ``tightness - diversity``."""
    from .oe import oe_core
    diversity, tight = oe_core(zf, inv, protos, proto_y, normalize=normalize, tightness=tightness,
                               tightness_form="75fc9d5", squared=squared, weights=weights)
    return tight - diversity if tightness else -diversity


# ----------------------------------------------------------------------------------- phase 1: module
@dataclass
class OrdinalConfig:
    """Configuration of :class:`FrobeniusRegularizer` (``L_ordinal = L_KL + alpha * L_OE``, eq. 5).

    ``beta`` (eq. 6) is the trainer's weight on the whole term. ``alpha = 1``: OE's README adds OE with
    weight 1 (``loss = loss + oe_loss``); the OE synthetic script and SRL's re-run use 1e-3. See
    :func:`ordinal_kl` and :func:`prototype_ordinal_entropy` for the other fields.
    """

    alpha: float = 1.0
    label_tau: float = 0.1
    norm_tau: float = 0.1
    label_range: Optional[float] = None
    norm_scale: Union[str, float] = "mean"
    softmax: str = "row"
    self_pairs: bool = False
    distance: str = "squared"
    oe_normalize: bool = True
    oe_tightness: bool = True
    oe_squared: bool = False
    oe_weights: str = "minmax"

    def __post_init__(self):
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha}")
        if not (self.label_tau > 0 and self.norm_tau > 0):
            raise ValueError("label_tau and norm_tau must be > 0")
        if self.softmax not in ("row", "joint"):
            raise ValueError(f"softmax must be 'row' or 'joint', got {self.softmax!r}")
        if self.distance not in ("l1", "squared"):
            raise ValueError(f"distance must be 'l1' or 'squared', got {self.distance!r}")
        if self.oe_weights not in ("minmax", "l1"):
            raise ValueError(f"oe_weights must be 'minmax' or 'l1', got {self.oe_weights!r}")
        if self.label_range is not None and not self.label_range > 0:
            raise ValueError(f"label_range must be > 0 or None, got {self.label_range}")
        _scale_norms(torch.ones(1), self.norm_scale)

    def to_dict(self) -> dict:
        return asdict(self)


class FrobeniusRegularizer(LossWithParts):
    """Phase-1 regulariser (eq. 5): ``FrobeniusRegularizer(bin_width=1.0)(z, y)`` -> the scalar
    ``L_KL + alpha * L_OE`` on any ``(B, d)`` features and ``(B,)`` float labels.

    The labels' bins come from the module, never from the caller: ``bin_width`` (bin
    ``floor(y / bin_width)``) or a :class:`dirlib.data.Binning` (``binning=``); without either, every
    distinct label value is its own bin. (The trainer passes its own bin ids with ``bins=``.)
    Prototypes are computed once per batch and shared by both terms (batch prototypes,
    differentiable, as in OE). ``parts`` holds detached 0-d tensors ``kl``, ``oe`` and the int
    ``n_labels`` (distinct bins in the batch). With fewer than 2 bins both terms are a
    graph-connected 0. The module has no parameters.

    >>> import torch
    >>> z, y = torch.randn(8, 16), torch.tensor([21., 21., 34., 34., 35., 50., 50., 70.])
    >>> reg = FrobeniusRegularizer(bin_width=1.0)
    >>> loss = reg(z, y)
    >>> loss.shape, reg.parts["n_labels"]
    (torch.Size([]), 5)
    """

    def __init__(self, config: Optional[OrdinalConfig] = None, *, bin_width: Optional[float] = None,
                 binning=None, **kwargs):
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("pass either an OrdinalConfig or keyword arguments, not both")
        if bin_width is not None and binning is not None:
            raise ValueError("FrobeniusRegularizer: pass bin_width or binning, not both")
        if bin_width is not None and not bin_width > 0:
            raise ValueError(f"FrobeniusRegularizer: bin_width must be > 0, got {bin_width!r}")
        self.config = config if config is not None else OrdinalConfig(**kwargs)
        self.bin_width, self.binning = bin_width, binning

    def bins_of(self, y: torch.Tensor) -> torch.Tensor:
        """Integer bin ids of float labels ``y``: by ``bin_width``, by ``binning`` or by value."""
        y = y.reshape(-1)
        if self.binning is not None:
            return torch.as_tensor(self.binning.index(y.detach().cpu().numpy()), dtype=torch.long,
                                   device=y.device)
        if self.bin_width is not None:
            b = torch.floor(y.detach() / self.bin_width).long()
            return b - b.min() if b.numel() else b
        return torch.unique(y.detach(), return_inverse=True)[1]

    def forward(self, z: torch.Tensor, y: torch.Tensor, bins: Optional[torch.Tensor] = None) -> torch.Tensor:
        c = self.config
        if isinstance(y, torch.Tensor) and y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if bins is None:
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"FrobeniusRegularizer: y must be a tensor, got {type(y).__name__}")
            bins = self.bins_of(y)
        y = _check_batch(z, y, bins, "FrobeniusRegularizer")
        if z.shape[0] == 0:
            raise ValueError("FrobeniusRegularizer: empty batch")
        _, inv, _, protos, proto_y = _prototype_stats(z, y, bins)
        m = int(protos.shape[0])
        if m < 2:
            zero = _graph_zero(z)
            return self.record(zero, kl=zero, oe=zero, n_labels=m)
        kl = _ordinal_kl_core(protos, proto_y, label_tau=c.label_tau, norm_tau=c.norm_tau,
                              label_range=c.label_range, norm_scale=c.norm_scale, softmax=c.softmax,
                              self_pairs=c.self_pairs, distance=c.distance)
        if c.alpha > 0:
            oe = _oe_core(_work_dtype(z), inv, protos, proto_y, normalize=c.oe_normalize,
                          tightness=c.oe_tightness, squared=c.oe_squared, weights=c.oe_weights)
            loss = kl + c.alpha * oe
        else:
            oe = torch.zeros((), dtype=kl.dtype, device=kl.device)
            loss = kl
        return self.record(loss, kl=kl, oe=oe, n_labels=m)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())


# ----------------------------------------------------------------------------------- phase 2
def dataset_prototype_norms(z, bins, n_bins: int) -> Tuple[np.ndarray, np.ndarray]:
    """Dataset-level prototype norms ``l_j = ||mean_{i in bin j} z_i||_2`` for every bin ``0..n_bins-1``
    (NaN for empty bins) and the counts. ``z`` (N, d) and ``bins`` (N,) as numpy arrays or tensors
    (computed in float64 on the CPU). This is what phase 2 fits (section 3.4: one pair per label)."""
    z = np.asarray(z.detach().cpu() if isinstance(z, torch.Tensor) else z, dtype=np.float64)
    b = np.asarray(bins.detach().cpu() if isinstance(bins, torch.Tensor) else bins)
    if z.ndim != 2 or b.ndim != 1 or len(b) != len(z):
        raise ValueError(f"z must be (N, d) and bins (N,), got {z.shape} and {b.shape}")
    if len(b) and (b.min() < 0 or b.max() >= n_bins):
        raise ValueError(f"bin ids must lie in [0, {n_bins}), got [{b.min()}, {b.max()}]")
    b = b.astype(np.int64)
    counts = np.bincount(b, minlength=n_bins)
    sums = np.zeros((n_bins, z.shape[1]))
    np.add.at(sums, b, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        protos = sums / counts[:, None]
    norms = np.linalg.norm(protos, axis=1)
    norms[counts == 0] = np.nan
    return norms, counts


class NormNet(nn.Module):
    """Phase 2's "Frobenius linear network" ``f_F``: ``Linear(1, 1)`` + sigmoid, with fixed input and
    output scalings (section 3.4 gives only ``l_hat = sigma(f(y))``)::

        x     = (label - x_lo) / x_span                  x_lo, x_span: min and range of the majority labels
        l_hat = out_span * sigmoid(w * x + b)            out_span = headroom * max majority norm

    * Input: majority labels map to [0, 1]; minority labels fall outside (AgeDB: age 1 -> -0.37,
      101 -> 1.56), so ``w`` and ``b`` are O(1) whatever the label units.
    * Output: a bare sigmoid lies in (0, 1) and cannot reach raw norms (tens for ResNets), so it is
      multiplied by ``out_span``. The lower end stays at 0, which keeps the paper's stated reason for the
      sigmoid (predicted norms are non-negative), and ``headroom = 1.5`` puts the majority targets in
      (0, 2/3] of the sigmoid's range: mostly its near-linear part, with room to extrapolate upwards
      up to 1.5 x the largest majority norm. A centred window (e.g. [min - spread/2, max + spread/2])
      would clip AgeDB's few-shot extrapolation (it reaches 0.56 x the majority spread beyond the top).

    The four scale constants are buffers (saved in ``state_dict``). ``predict(labels)`` returns the
    predicted norms as a float32 tensor (no grad).
    """

    def __init__(self, x_lo: float = 0.0, x_span: float = 1.0, out_span: float = 1.0):
        super().__init__()
        if not (x_span > 0 and out_span > 0):
            raise ValueError(f"x_span and out_span must be > 0, got {x_span}, {out_span}")
        self.linear = nn.Linear(1, 1)
        self.register_buffer("x_lo", torch.tensor(float(x_lo)))
        self.register_buffer("x_span", torch.tensor(float(x_span)))
        self.register_buffer("out_span", torch.tensor(float(out_span)))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        x = ((labels.to(self.x_lo.dtype) - self.x_lo) / self.x_span).reshape(-1, 1)
        return (self.out_span * torch.sigmoid(self.linear(x))).reshape(-1)

    @torch.no_grad()
    def predict(self, labels) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(labels, dtype=np.float64) if not isinstance(labels, torch.Tensor)
                            else labels, dtype=torch.float32, device=self.x_lo.device)
        if not torch.isfinite(t).all():
            raise ValueError("NormNet.predict: labels must be finite")
        return self.forward(t).float()

    @property
    def weight(self) -> float:
        return float(self.linear.weight.detach().reshape(()))

    @property
    def bias(self) -> float:
        return float(self.linear.bias.detach().reshape(()))


def fit_norm_net(labels, norms, majority_mask, *, epochs: int = 2000, lr: float = 0.05,
                 seed: int = 0, headroom: float = 1.5, init: str = "logit_lsq"):
    """Fit :class:`NormNet` on the (label, prototype norm) pairs of the majority labels only (section 3.4).

    ``labels``, ``norms`` and ``majority_mask`` are per-label (per-bin) arrays of equal length; entries
    with ``majority_mask`` False (median / few-shot labels) are ignored, as are non-finite norms among
    them. Loss: MSE between ``NormNet(label)`` and the norm (the paper's ``L_fF``), full batch (the
    paper: one pair per label, so ~51 pairs on AgeDB, 22 on STS-B), Adam with ``lr`` for ``epochs``
    steps. ``init="logit_lsq"`` (default) starts from the least-squares line through
    ``logit(norm / out_span)``, which is already close and makes the fit independent of the seed;
    ``init="random"`` uses PyTorch's default ``Linear`` init under ``torch.manual_seed(seed)``. The
    caller's global RNG state is left untouched either way. Needs >= 2 distinct majority labels.

    Returns ``(net, info)`` with ``info = {"weight", "bias", "final_loss", "initial_loss",
    "n_majority", "x_lo", "x_span", "out_span", "epochs", "lr", "init"}``.
    """
    lab = np.asarray(labels, dtype=np.float64).reshape(-1)
    nrm = np.asarray(norms, dtype=np.float64).reshape(-1)
    maj = np.asarray(majority_mask, dtype=bool).reshape(-1)
    if not (len(lab) == len(nrm) == len(maj)):
        raise ValueError(f"labels, norms and majority_mask differ in length: {len(lab)}, {len(nrm)}, "
                         f"{len(maj)}")
    if init not in ("logit_lsq", "random"):
        raise ValueError(f"init must be 'logit_lsq' or 'random', got {init!r}")
    if not headroom > 1:
        raise ValueError(f"headroom must be > 1 (targets must lie inside the sigmoid), got {headroom}")
    xl, yl = lab[maj], nrm[maj]
    if not np.all(np.isfinite(xl)) or not np.all(np.isfinite(yl)):
        raise ValueError("fit_norm_net: majority labels/norms contain NaN or inf (empty bin marked "
                         "majority?)")
    if np.any(yl < 0):
        raise ValueError("fit_norm_net: norms must be >= 0")
    if len(np.unique(xl)) < 2:
        raise ValueError(f"fit_norm_net needs >= 2 distinct majority labels, got {len(np.unique(xl))}")
    if not yl.max() > 0:
        raise ValueError("fit_norm_net: all majority norms are 0")
    x_lo, x_span = float(xl.min()), float(xl.max() - xl.min())
    out_span = float(headroom * yl.max())
    with torch.random.fork_rng(devices=[]):  # leaves the caller's global RNG untouched
        torch.manual_seed(seed)
        net = NormNet(x_lo, x_span, out_span)   # "random" init: PyTorch's Linear default, seeded
    x = torch.tensor(xl, dtype=torch.float32)
    t = torch.tensor(yl, dtype=torch.float32)
    if init == "logit_lsq":
        u = np.clip(yl / out_span, 1e-4, 1 - 1e-4)
        A = np.stack([(xl - x_lo) / x_span, np.ones_like(xl)], 1)
        (w0, b0), *_ = np.linalg.lstsq(A, np.log(u / (1 - u)), rcond=None)
        with torch.no_grad():
            net.linear.weight.fill_(float(w0))
            net.linear.bias.fill_(float(b0))
    opt = torch.optim.Adam(net.linear.parameters(), lr=lr)
    with torch.no_grad():
        initial = float(F.mse_loss(net(x), t))
    # keep the best parameters seen: Adam at a fixed lr can end slightly above the closed-form start
    best = (initial, net.linear.weight.detach().clone(), net.linear.bias.detach().clone())
    # its own three-line step, not dirlib.train.optimizer_step: the loss package stays below the
    # trainer, and a full-batch fit of two parameters needs no clipping or scaling
    for _ in range(int(epochs)):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x), t)
        loss.backward()
        opt.step()
        with torch.no_grad():
            cur = float(F.mse_loss(net(x), t))
        if cur < best[0]:
            best = (cur, net.linear.weight.detach().clone(), net.linear.bias.detach().clone())
    with torch.no_grad():
        net.linear.weight.copy_(best[1])
        net.linear.bias.copy_(best[2])
        final = float(F.mse_loss(net(x), t))
    if not math.isfinite(final):
        raise FloatingPointError("fit_norm_net diverged (non-finite loss); lower lr")
    net.eval()
    info = {"weight": net.weight, "bias": net.bias, "final_loss": final, "initial_loss": initial,
            "n_majority": int(maj.sum()), "x_lo": x_lo, "x_span": x_span, "out_span": out_span,
            "epochs": int(epochs), "lr": lr, "init": init}
    return net, info


# ----------------------------------------------------------------------------------- phase 3
def norm_alignment_loss(z: torch.Tensor, target_norm: torch.Tensor, *,
                        relative: bool = False) -> torch.Tensor:
    """Eq. 7 averaged over the batch: ``mean_i (l_hat_i - ||z_i||_2)^2``.

    ``target_norm`` (B,) is the NormNet prediction for each sample's label (:func:`label_norm_lookup`);
    it is detached (a constant: NormNet is frozen in phase 3). ``relative=True`` divides each residual
    by its target (``mean((1 - ||z||/l_hat)^2)``), a scale-free variant that is *not* in the paper,
    useful when raw norms are in the tens and the squared residual would dwarf the task loss.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError("norm_alignment_loss: z must be a 2-d tensor (B, d)")
    t = torch.as_tensor(target_norm, device=z.device)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.shape != (z.shape[0],):
        raise ValueError(f"norm_alignment_loss: target_norm must have shape ({z.shape[0]},), "
                         f"got {tuple(t.shape)}")
    zf = _work_dtype(z)
    t = t.detach().to(zf.dtype)
    n = torch.linalg.vector_norm(zf, dim=1)
    r = t - n
    if relative:
        r = r / t.clamp_min(_EPS)
    return (r * r).mean()


def label_norm_lookup(norm_per_bin: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Target norm of every sample: ``norm_per_bin[bins]`` (on ``bins``' device), with a clear error for
    bin ids outside ``[0, len(norm_per_bin))`` and for NaN targets (a bin NormNet has no prediction
    for)."""
    norm_per_bin = torch.as_tensor(norm_per_bin)
    if norm_per_bin.dim() != 1:
        raise ValueError(f"norm_per_bin must be 1-d (n_bins,), got {tuple(norm_per_bin.shape)}")
    if not isinstance(bins, torch.Tensor) or bins.dtype.is_floating_point:
        raise TypeError("bins must be an integer tensor of bin ids")
    if bins.numel():
        lo, hi = int(bins.min()), int(bins.max())
        if lo < 0 or hi >= norm_per_bin.shape[0]:
            raise IndexError(f"bin ids must lie in [0, {norm_per_bin.shape[0]}), got [{lo}, {hi}]")
    out = norm_per_bin.to(bins.device)[bins]
    if out.dtype.is_floating_point and torch.isnan(out).any():
        raise ValueError("label_norm_lookup: some samples fall in bins whose target norm is NaN")
    return out


class NormAlignment(LossWithParts):
    """Phase 3 (eq. 7) as a module: ``NormAlignment(norm_net)(z, y)`` -> the scalar
    ``mean_i (l_hat(y_i) - ||z_i||_2)^2``, where ``norm_net`` maps float labels to target norms (a
    fitted :class:`NormNet`, from :func:`fit_norm_net`, or any callable). The targets are constants
    (the norm network is frozen in phase 3). ``relative=True``: the scale-free variant (not in the
    paper). ``parts`` holds the detached value and the mean target norm.

    >>> import torch
    >>> align = NormAlignment(lambda y: 1.0 + 0.1 * y)
    >>> z = torch.tensor([[3.0, 4.0], [0.0, 2.0]])          # norms 5 and 2
    >>> float(align(z, torch.tensor([40.0, 10.0])))          # targets 5 and 2
    0.0
    """

    repr_fields = ("relative",)

    def __init__(self, norm_net, relative: bool = False):
        super().__init__()
        if not callable(norm_net):
            raise TypeError("NormAlignment: norm_net must map labels to target norms (a NormNet or a callable)")
        self.norm_net, self.relative = norm_net, bool(relative)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = torch.as_tensor(y).reshape(-1)
        with torch.no_grad():
            predict = getattr(self.norm_net, "predict", self.norm_net)
            target = torch.as_tensor(predict(y.detach().float())).reshape(-1).to(z.device)
        loss = norm_alignment_loss(z, target, relative=self.relative)
        return self.record(loss, align=loss, target_norm=target.float().mean())
