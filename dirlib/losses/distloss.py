"""Dist Loss (Nie, Tang & Hong, ICLR 2025): match the batch's sorted predictions to pseudo-labels
drawn from the training-label distribution.

Sources: ``Ngk03/DIR-Dist-Loss`` ``agedb-dir/loss_utils.py`` (``get_label_distribution``,
``get_batch_label_distribution``, ``get_batch_theoretical_labels``), ``imdb-wiki-dir/dist_loss.py``
(``DistLoss``), ``agedb-dir/train.py`` (defaults, call order), ``agedb-dir/README.md`` (recipe).

1. **Prior.** ``scipy.stats.gaussian_kde(labels, bw_method=0.5)`` of the training labels inside
   ``[min_label, max_label]``, evaluated on ``arange(min_label, max_label + step, step)`` and normalised
   to sum 1 (AgeDB code: 0, 120, 1).
2. **Pseudo-labels** for a batch of ``B``: each grid label gets ``round(B p_k)`` slots; the mass
   below the first label whose cumulative count reaches 1 is lumped into that label, likewise at the
   top; the rounding residual is spread over a window of ``int(0.5 K)`` labels centred on the mode
   (:func:`batch_label_counts`). The sorted vector ``repeat(grid, counts)`` is fixed for the run.
3. **Loss** (``DistLoss.forward``, mean reduction)::

       loss = mean_i w_i l(p_i, y_i) + lambda * mean_k w_k l(softsort(p)_k, t_k)

   ``l`` is the run's element-wise loss (L1 for ages), ``lambda = 1`` (``--distribution_loss_term_weight``),
   ``t`` the pseudo-labels (ascending), ``softsort`` an ascending differentiable sort with
   regularisation strength 0.1 (``--regularization_strength``; the README example shows 0.01).
   **Quirk kept by default** (``sorted_weight_quirk=True``): the code multiplies the distribution
   term element-wise by the batch's sample weights although its rows are *sorted positions*, so
   ``w_k`` is the weight of whichever sample sits at batch position ``k``. ``False`` uses the weight
   of the sample whose (hard) rank is ``k``.

**Soft sort (ours).** The code calls ``fast_soft_sort.pytorch_ops.soft_sort`` (Blondel et al., ICML
2020; L2 regularisation, on the CPU). :func:`soft_sort` implements the same operator from the paper's
definition, not from that package: the descending soft sort of ``theta`` is the Euclidean projection
of ``rho / eps`` (``rho = (n, ..., 1)``) onto the permutahedron of ``theta``; with ``theta`` sorted
descending (``w``) it is ``rho / eps - v`` where ``v`` is the decreasing isotonic regression of
``rho / eps - w`` (pool-adjacent-violators). Ascending: ``-softsort_desc(-theta)``. Differences from
``fast_soft_sort``: PAV runs in Python on a detached copy (``O(n)`` per call; ties between adjacent
blocks are not merged, which only matters on a measure-zero set) and the backward pass comes from
autograd through per-block means (the exact Jacobian of the projection: block-wise averaging),
instead of the package's hand-written VJP; values agree to float precision. For
``eps -> 0`` it is the hard sort (exactly, as soon as every gap of ``theta`` is below ``1 / eps``); for
``eps -> inf`` every entry tends to ``mean(theta)``; it always preserves ``sum(theta)``.

**Fixed batch size.** The pseudo-label vector has exactly ``B`` entries and the code drops the last
incomplete batch (``drop_last=True``). The dirlib trainer keeps incomplete batches, so
:func:`dist_loss` needs a policy (``incomplete``): ``"drop"`` (default) leaves out the *distribution
term* of a batch whose size differs from ``B`` (its plain term stays: a zero-loss step would still
move Adam's parameters through its moments); ``"resize"`` allocates pseudo-labels for that batch's
own size with the same rule.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .parts import LossWithParts


# ------------------------------------------------------------------------------ prior / pseudo-labels
def label_grid(min_label: float, max_label: float, step: float) -> np.ndarray:
    if not step > 0 or not max_label > min_label:
        raise ValueError(f"label grid needs step > 0 and max > min, got {min_label}, {max_label}, {step}")
    n = int(np.floor((max_label - min_label) / step + 1e-9)) + 1
    return min_label + step * np.arange(n)


def label_density(train_labels, grid, bw_method=0.5) -> np.ndarray:
    """Gaussian-KDE density of the labels inside ``[grid[0], grid[-1]]`` on ``grid``, summing to 1."""
    from scipy.stats import gaussian_kde
    y = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    grid = np.asarray(grid, dtype=np.float64)
    y = y[(y >= grid[0]) & (y <= grid[-1])]
    if len(np.unique(y)) < 2:
        raise ValueError("label_density: need at least two distinct training labels inside the grid")
    dens = gaussian_kde(y, bw_method=bw_method)(grid)
    if not np.all(np.isfinite(dens)) or dens.sum() <= 0:
        raise ValueError("label_density: the KDE is zero or non-finite on the grid")
    return dens / dens.sum()


def batch_label_counts(density, batch_size: int, region_adjustment: float = 0.5) -> np.ndarray:
    """Integer slots per grid label for one batch (``get_batch_label_distribution``), summing to
    ``batch_size``. *Changed edge cases:* the residual window is kept inside the grid (the code's
    slice wraps or empties near the ends), a large negative residual is subtracted (the code's floor
    division adds it back), and no count goes negative."""
    p = np.asarray(density, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise ValueError("batch_label_counts: density must be finite, >= 0 and not all zero")
    B = int(batch_size)
    if B < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    p = p / p.sum()
    K = len(p)
    m = p * B
    width = max(1, int(region_adjustment * K))
    fwd = np.cumsum(m)
    bwd = np.cumsum(m[::-1])[::-1]
    lo = min(int(np.searchsorted(fwd, 1.0)), K - 1)
    hi = max(K - 1 - int(np.searchsorted(np.cumsum(m[::-1]), 1.0)), 0)
    counts = np.zeros(K, dtype=np.int64)
    if lo + 1 < hi:
        counts[lo + 1:hi] = np.round(m[lo + 1:hi]).astype(np.int64)
    counts[lo] = int(round(float(fwd[lo])))
    counts[hi] = int(round(float(bwd[hi])))
    res = B - int(counts.sum())
    peak = int(np.argmax(counts))

    def window(length):
        length = min(length, K)
        start = min(max(peak - length // 2, 0), K - length)
        return slice(start, start + length)

    s = int(np.sign(res))
    if abs(res) <= width:
        counts[window(abs(res))] += s
    else:
        counts[window(width)] += s * (abs(res) // width)
        counts[peak] += s * (abs(res) % width)
    counts = np.maximum(counts, 0)
    while counts.sum() != B:  # only after clipping negatives (tiny batches, peaked priors)
        d = B - int(counts.sum())
        if d > 0:
            counts[int(np.argmax(p))] += d
        else:
            k = int(np.argmax(counts))
            counts[k] -= min(-d, counts[k])
    return counts


def pseudo_labels(density, grid, batch_size: int, region_adjustment: float = 0.5) -> np.ndarray:
    """The sorted (ascending) theoretical labels of one batch (``get_batch_theoretical_labels``)."""
    grid = np.asarray(grid, dtype=np.float64)
    counts = batch_label_counts(density, batch_size, region_adjustment)
    if len(counts) != len(grid):
        raise ValueError(f"{len(counts)} density values for {len(grid)} grid labels")
    return np.repeat(grid, counts)


# ------------------------------------------------------------------------------ soft sort
def isotonic_decreasing_blocks(u: np.ndarray) -> np.ndarray:
    """Block index per position of the decreasing isotonic regression of ``u`` (uniform weights,
    pool-adjacent-violators): the fitted value of a block is the mean of ``u`` over it."""
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    sums, counts, starts = [], [], []
    for i, val in enumerate(u):
        sums.append(float(val))
        counts.append(1)
        starts.append(i)
        while len(sums) > 1 and sums[-2] / counts[-2] < sums[-1] / counts[-1]:
            s, c = sums.pop(), counts.pop()
            starts.pop()
            sums[-1] += s
            counts[-1] += c
    blocks = np.empty(len(u), dtype=np.int64)
    for b, (st, c) in enumerate(zip(starts, counts)):
        blocks[st:st + c] = b
    return blocks


def soft_sort(values: torch.Tensor, regularization_strength: float = 0.1,
              descending: bool = False) -> torch.Tensor:
    """Differentiable sort of a 1-d tensor (L2-regularised permutahedron projection, see above)."""
    if values.dim() != 1:
        raise ValueError(f"soft_sort expects a 1-d tensor, got shape {tuple(values.shape)}")
    if not regularization_strength > 0:
        raise ValueError(f"regularization_strength must be > 0, got {regularization_strength!r}")
    if not torch.isfinite(values).all():
        raise ValueError("soft_sort: non-finite values")
    n = values.numel()
    if n == 0:
        return values
    sign = 1.0 if descending else -1.0
    theta = sign * values
    w, _ = torch.sort(theta, descending=True)
    rho = torch.arange(n, 0, -1, dtype=values.dtype, device=values.device)
    z = rho / regularization_strength
    u = z - w
    blocks = torch.as_tensor(isotonic_decreasing_blocks(u.detach().cpu().numpy()), device=values.device)
    nb = int(blocks[-1]) + 1
    sums = torch.zeros(nb, dtype=u.dtype, device=u.device).index_add(0, blocks, u)
    cnt = torch.bincount(blocks, minlength=nb).to(u.dtype)
    v = (sums / cnt)[blocks]
    return sign * (z - v)


# ------------------------------------------------------------------------------ loss
def dist_loss(pred: torch.Tensor, target: torch.Tensor, pseudo: torch.Tensor, elementwise,
              weight: float = 1.0, weights: Optional[torch.Tensor] = None,
              regularization_strength: float = 0.1, sorted_weight_quirk: bool = True):
    """``mean(w l(p, y)) + weight * mean(w l(softsort(p), pseudo))``; ``elementwise(a, b)`` is the
    per-element loss. ``pseudo`` must have as many entries as ``pred``. Returns ``(total, plain,
    dist)``."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    pseudo = torch.as_tensor(pseudo, dtype=pred.dtype, device=pred.device).reshape(-1)
    if pseudo.numel() != pred.numel() or target.numel() != pred.numel():
        raise ValueError(f"dist_loss: {pred.numel()} predictions, {target.numel()} targets, "
                         f"{pseudo.numel()} pseudo-labels")
    plain = elementwise(pred, target)
    dist = elementwise(soft_sort(pred, regularization_strength), pseudo)
    if weights is not None:
        w = weights.reshape(-1).to(pred.dtype)
        plain = plain * w
        if sorted_weight_quirk:
            dist = dist * w
        else:
            dist = dist * w[torch.argsort(pred.detach(), stable=True)]
    plain, dist = plain.mean(), dist.mean()
    return plain + weight * dist, plain, dist


class PseudoLabels:
    """Pseudo-label vectors per batch size (cached), in model space."""

    def __init__(self, density, grid_model, batch_size: int, incomplete: str = "drop",
                 region_adjustment: float = 0.5):
        if incomplete not in ("drop", "resize"):
            raise ValueError(f"incomplete must be 'drop' or 'resize', got {incomplete!r}")
        self.density = np.asarray(density, dtype=np.float64)
        self.grid = np.asarray(grid_model, dtype=np.float64)
        self.batch_size, self.incomplete = int(batch_size), incomplete
        self.region_adjustment = region_adjustment
        self._cache = {}

    def get(self, n: int) -> Optional[np.ndarray]:
        """The pseudo-labels for a batch of ``n`` (``None``: drop the distribution term)."""
        if n != self.batch_size and self.incomplete == "drop":
            return None
        if n not in self._cache:
            self._cache[n] = pseudo_labels(self.density, self.grid, n, self.region_adjustment)
        return self._cache[n]


class DistLoss(LossWithParts):
    """Dist Loss as a module: ``DistLoss(train_labels, step=1.0)(pred, target)`` -> scalar
    ``mean l(p, y) + weight * mean l(softsort(p), t)``, with pseudo-labels ``t`` drawn for each batch
    size from the training labels' KDE on the grid ``min_label .. max_label`` (default: the training
    labels' range) in steps of ``step``. ``base``: ``"l1"`` or ``"mse"``. ``parts`` holds the detached
    ``plain`` and ``dist`` terms.

    >>> import torch
    >>> loss = DistLoss([20., 25., 25., 30., 60.], step=5.0)(torch.tensor([21., 24., 40.]), torch.tensor([20., 25., 60.]))
    >>> loss.shape
    torch.Size([])
    """

    repr_fields = ("base", "weight", "regularization_strength")

    def __init__(self, train_labels, *, step: float = 1.0, min_label: Optional[float] = None,
                 max_label: Optional[float] = None, base: str = "l1", weight: float = 1.0,
                 regularization_strength: float = 0.1, bw_method: float = 0.5):
        super().__init__()
        labels = np.asarray(train_labels, dtype=np.float64).reshape(-1)
        if labels.size < 2 or not np.isfinite(labels).all():
            raise ValueError("DistLoss: train_labels must hold at least 2 finite labels")
        if base not in ("l1", "mse"):
            raise ValueError(f"DistLoss: base must be 'l1' or 'mse', got {base!r}")
        lo = float(labels.min()) if min_label is None else float(min_label)
        hi = float(labels.max()) if max_label is None else float(max_label)
        grid = label_grid(lo, hi, step)
        self.pseudo = PseudoLabels(label_density(labels, grid, bw_method), grid, batch_size=0,
                                   incomplete="resize")
        self.base, self.weight = base, float(weight)
        self.regularization_strength = float(regularization_strength)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        def elementwise(a, b):
            return (a - b).abs() if self.base == "l1" else (a - b) ** 2
        pseudo = self.pseudo.get(pred.numel())
        total, plain, dist = dist_loss(pred, target, pseudo, elementwise, weight=self.weight,
                                       regularization_strength=self.regularization_strength)
        return self.record(total, plain=plain, dist=dist)
