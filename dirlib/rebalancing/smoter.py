"""SMOTER (Torgo et al., EPIA 2013) and SMOGN (Branco, Torgo & Ribeiro, LIDTA 2017) for deep
imbalanced regression.

No public deep-learning code exists (the DIR benchmark's SMOTER / SMOGN rows, which the paper
quotes, come from an unpublished adaptation). These functions follow the two papers; the *design
choice* for deep models is dirlib's and is documented in ``docs/methods.md`` of the dirlib repository:

* **Relevance** ``phi(y)`` in [0, 1]. ``"density"`` (default): ``phi = 1 - c_b / max_b c_b`` on the
  training histogram of the label bins (rare = low label density, which is what DIR calls the
  few/median shots, wherever they lie). ``"boxplot"``: Torgo & Ribeiro's automatic relevance for
  extreme values (R ``UBL::phi.control(method="extremes", coef=1.5)``): control points
  ``(adjL, 1)`` (only if there are values below the lower adjacent value), ``(median, 0)``,
  ``(adjH, 1)`` (likewise above), joined by cubic Hermite pieces with zero slope at the control
  points and constant outside. Quartiles are ``numpy.percentile`` (R uses Tukey's hinges).
* **Rare regions**: bins with ``phi >= threshold``; every maximal run of consecutive rare bins is a
  *bump* and neighbours are only taken inside the same bump; runs of common bins are the common
  bumps. Threshold: UBL's ``thr.rel`` default is 0.5 (for its box-plot ``phi``); with the density
  ``phi`` dirlib uses **0.8** (*ours*): rare = bins with at most 20 % of the modal count, which on
  AgeDB-DIR (mode ~350) is about the benchmark's median + few shots (< 100 training images).
* **SMOTER** (Torgo 2013; R ``DMwR::smoteR`` / ``UBL::SmoteRegress``): for a rare seed ``x``, pick
  one of its ``k = 5`` nearest neighbours ``n`` in the same bump; ``x_new = x + u (n - x)`` with one
  ``u ~ U(0, 1)`` per new case (``gap="shared"``, the R code's ``runif(1) * diff``; ``"per_dim"``
  draws one ``u`` per attribute as SMOTE's pseudo-code); target ``y_new = (d2 y_x + d1 y_n) /
  (d1 + d2)``, ``d1 = |x_new - x|``, ``d2 = |x_new - n|`` (Euclidean; with a shared gap this is the
  linear interpolation ``(1 - u) y_x + u y_n``).
* **SMOGN** (Branco 2017, Alg. 1): per seed, ``maxD = median(distances to its k neighbours) / 2``;
  for each new case pick a random neighbour: closer than ``maxD`` -> SMOTER interpolation,
  otherwise Gaussian noise around the seed: ``x + N(0, (pert sd_a)^2)`` per attribute and
  ``y + N(0, (pert sd_y)^2)``, ``pert = 0.01``. A seed without a neighbour in its bump gets noise.
* **Amount** (``over``): ``"balance"`` brings every rare bump up to the mean size of the common
  bumps (no under-sampling of the common cases: the real batch / data set stays intact); a number
  ``r`` creates ``round(r * size)`` new cases per rare bump. New cases are spread round-robin over
  the bump's seeds in random order.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch


# ------------------------------------------------------------------------------ relevance
def relevance_density(train_labels, binning) -> np.ndarray:
    """``phi`` per bin: ``1 - count_b / max count`` of the training labels."""
    c = binning.counts(np.asarray(train_labels, dtype=np.float64)).astype(np.float64)
    if c.max() <= 0:
        raise ValueError("relevance_density: no training labels")
    return 1.0 - c / c.max()


def _hermite_step(t):
    return 3 * t ** 2 - 2 * t ** 3


def boxplot_control_points(train_labels, coef: float = 1.5):
    y = np.asarray(train_labels, dtype=np.float64).reshape(-1)
    if y.size < 2:
        raise ValueError("boxplot relevance needs at least 2 labels")
    q1, med, q3 = np.percentile(y, [25, 50, 75])
    iqr = q3 - q1
    adj_lo = y[y >= q1 - coef * iqr].min()
    adj_hi = y[y <= q3 + coef * iqr].max()
    pts = []
    if (y < adj_lo).any():
        pts.append((adj_lo, 1.0))
    pts.append((med, 0.0))
    if (y > adj_hi).any():
        pts.append((adj_hi, 1.0))
    return pts


def relevance_boxplot_fn(train_labels, coef: float = 1.5):
    """Torgo & Ribeiro's automatic ``phi`` for extremes, as a function of labels."""
    pts = boxplot_control_points(train_labels, coef)
    xs = np.array([p[0] for p in pts])
    vs = np.array([p[1] for p in pts])

    def phi(y):
        y = np.asarray(y, dtype=np.float64)
        out = np.empty_like(y)
        out[y <= xs[0]] = vs[0]
        out[y >= xs[-1]] = vs[-1]
        for a in range(len(xs) - 1):
            m = (y > xs[a]) & (y < xs[a + 1])
            t = (y[m] - xs[a]) / (xs[a + 1] - xs[a])
            out[m] = vs[a] + (vs[a + 1] - vs[a]) * _hermite_step(t)
        return out
    return phi


def relevance_boxplot(train_labels, binning, coef: float = 1.5) -> np.ndarray:
    """``phi`` of the boxplot relevance at the bin centres."""
    return relevance_boxplot_fn(train_labels, coef)(binning.centers)


def bumps(phi, threshold: float = 0.8):
    """Consecutive runs of rare (``phi >= threshold``) / common bins. Returns ``(bump id per bin,
    is_rare per bump)``."""
    rare = np.asarray(phi, dtype=np.float64) >= threshold
    ids = np.zeros(len(rare), dtype=np.int64)
    kinds = [bool(rare[0])] if len(rare) else []
    for b in range(1, len(rare)):
        ids[b] = ids[b - 1] + (rare[b] != rare[b - 1])
        if rare[b] != rare[b - 1]:
            kinds.append(bool(rare[b]))
    return ids, np.array(kinds, dtype=bool)


# ------------------------------------------------------------------------------ synthesis
def smoter_target(x_new, x_a, x_b, y_a, y_b):
    """``(d2 y_a + d1 y_b) / (d1 + d2)`` with ``d1 = |x_new - x_a|``, ``d2 = |x_new - x_b|`` (rows);
    the mean of the two targets when both distances are 0."""
    d1 = (x_new - x_a).norm(dim=-1)
    d2 = (x_new - x_b).norm(dim=-1)
    s = d1 + d2
    safe = torch.where(s > 0, s, torch.ones_like(s))
    return torch.where(s > 0, (d2 * y_a + d1 * y_b) / safe, 0.5 * (y_a + y_b))


def new_cases_per_bump(sample_bumps: np.ndarray, is_rare: np.ndarray,
                       over: Union[str, float] = "balance") -> dict:
    """How many new cases each rare bump (present in ``sample_bumps``) gets."""
    sample_bumps = np.asarray(sample_bumps)
    sizes = np.bincount(sample_bumps, minlength=len(is_rare)) if sample_bumps.size else np.zeros(len(is_rare), int)
    out = {}
    if over == "balance":
        common = sizes[(~is_rare) & (sizes > 0)]
        if common.size == 0:
            return {}
        target = float(common.mean())
        for b in np.flatnonzero(is_rare & (sizes > 0)):
            out[int(b)] = max(0, int(round(target - sizes[b])))
    else:
        r = float(over)
        if r < 0:
            raise ValueError(f"over must be 'balance' or >= 0, got {over!r}")
        for b in np.flatnonzero(is_rare & (sizes > 0)):
            out[int(b)] = int(round(r * sizes[b]))
    return out


def oversample(x: torch.Tensor, y: torch.Tensor, sample_bumps, is_rare, *, method: str = "smoter",
               over: Union[str, float] = "balance", k: int = 5, pert: float = 0.01,
               gap: str = "shared", sd_x: Optional[torch.Tensor] = None,
               sd_y: Optional[float] = None, generator: Optional[torch.Generator] = None):
    """Synthesise new cases for the rare bumps among the rows of ``x`` (``(N, D)``, features or
    inputs) with targets ``y`` (``(N,)``). ``sample_bumps``: bump id of every row; ``is_rare``: per
    bump. Neighbours are searched on detached values; the new ``x`` is differentiable w.r.t. ``x``.

    Returns ``(x_new (M, D), y_new (M,), seed (M,) row index of each new case's seed)``.
    """
    if method not in ("smoter", "smogn"):
        raise ValueError(f"method must be 'smoter' or 'smogn', got {method!r}")
    if gap not in ("per_dim", "shared"):
        raise ValueError(f"gap must be 'per_dim' or 'shared', got {gap!r}")
    if x.dim() != 2 or y.reshape(-1).numel() != x.shape[0]:
        raise ValueError(f"oversample: x must be (N, D) with one target per row, got {tuple(x.shape)}")
    y = y.reshape(-1)
    dev, dt = x.device, x.dtype
    sb = torch.as_tensor(np.asarray(sample_bumps), dtype=torch.long)
    is_rare = np.asarray(is_rare, dtype=bool)
    plan = new_cases_per_bump(sb.numpy(), is_rare, over)
    if method == "smogn":
        if sd_x is None:
            sd_x = x.detach().std(0, unbiased=True) if x.shape[0] > 1 else torch.zeros(x.shape[1], device=dev, dtype=dt)
        if sd_y is None:
            sd_y = float(y.detach().std()) if y.numel() > 1 else 0.0
    seeds, nbrs, use_noise = [], [], []
    xd = x.detach()
    for b, n_new in plan.items():
        if n_new <= 0:
            continue
        rows = torch.nonzero(sb == b).reshape(-1)
        order = rows[torch.randperm(rows.numel(), generator=generator)]
        per = torch.full((rows.numel(),), n_new // rows.numel(), dtype=torch.long)
        per[: n_new % rows.numel()] += 1
        kk = min(k, rows.numel() - 1)
        if kk > 0:
            dist = torch.cdist(xd[rows].double(), xd[rows].double())
            dist.fill_diagonal_(float("inf"))
            knn_d, knn_i = (t.cpu() for t in torch.topk(dist, kk, dim=1, largest=False))
        pos = {int(r): i for i, r in enumerate(rows.tolist())}
        for seed, cnt in zip(order.tolist(), per.tolist()):
            for _ in range(cnt):
                if kk == 0:
                    if method == "smoter":
                        break   # SMOTER needs a neighbour
                    seeds.append(seed)
                    nbrs.append(seed)
                    use_noise.append(True)
                    continue
                i = pos[seed]
                j = int(torch.randint(kk, (1,), generator=generator))
                nb = int(rows[knn_i[i, j]])
                noise = False
                if method == "smogn":
                    max_d = float(knn_d[i].median()) / 2.0
                    noise = not float(knn_d[i, j]) < max_d
                seeds.append(seed)
                nbrs.append(nb)
                use_noise.append(noise)
    if not seeds:
        return x[:0], y[:0], torch.zeros(0, dtype=torch.long, device=dev)
    s_idx = torch.tensor(seeds, device=dev)
    n_idx = torch.tensor(nbrs, device=dev)
    noise = torch.tensor(use_noise, device=dev)
    m = len(seeds)
    xs, xn, ys, yn = x[s_idx], x[n_idx], y[s_idx], y[n_idx]
    if gap == "per_dim":
        u = torch.rand(m, x.shape[1], generator=generator).to(dev, dt)
    else:
        u = torch.rand(m, 1, generator=generator).to(dev, dt).expand(m, x.shape[1])
    x_int = xs + u * (xn - xs)
    y_int = smoter_target(x_int.detach(), xs.detach(), xn.detach(), ys, yn)
    if method == "smogn" and bool(noise.any()):
        ex = torch.randn(m, x.shape[1], generator=generator).to(dev, dt)
        ey = torch.randn(m, generator=generator).to(dev, y.dtype)
        x_noise = xs + ex * (pert * torch.as_tensor(sd_x, device=dev, dtype=dt))
        y_noise = ys + ey * (pert * float(sd_y))
        x_new = torch.where(noise[:, None], x_noise, x_int)
        y_new = torch.where(noise, y_noise, y_int)
    else:
        x_new, y_new = x_int, y_int
    return x_new, y_new, s_idx
