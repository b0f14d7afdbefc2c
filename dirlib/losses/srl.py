"""SRL: Surrogate-driven Representation Learning (Dong, Wu et al., CVPR 2025, "Improving
Representation for Imbalanced Regression through Geometric Constraints").

Source: ``yilei-wu/imbalanced-regression`` at commit ``1ac666e`` (the training scripts were later
removed): ``agedb-dir/dfr.py::dfr_simple`` and its helpers, ``agedb-dir/train.py`` (defaults, the
projector, the surrogate store), ``agedb-dir/resnet.py``, ``sts-b-dir/dfr.py``,
``sts-b-dir/trainer.py``, ``sts-b-dir/models.py``, ``sts-b-dir/README.md``.

With ``f_i = normalize(projector(z_i))`` and one row per label ``k = 0..L-1``:

* **centroids**: ``c_k`` = mean of the batch's ``f_i`` with label ``k``; a label absent from the batch
  takes the (detached) **surrogate** ``s_k``; then every row is L2-normalised (a zero row stays 0);
* ``L_con`` = cross-entropy of ``cos(f_i, c_k) / tau`` over all ``L`` rows with the sample's own
  label as the target, centroids **detached** (``regression_contrastive_loss``);
* ``L_uni`` (enveloping) = ``1 - mean_p max_k cos(c_k, p)`` over a fixed set of random unit
  vectors ``p`` (``uniformity_loss``; gradient through the batch centroids);
* ``L_smo`` (homogeneity) = ``-sum_k cos(c_k, c_{k+1}) + 0.1 Var_k cos(c_k, c_{k+1})`` (unbiased
  variance, ``smooth_loss``);
* total added to the regression loss: ``w1 L_con + w2 L_uni + w3 L_smo``.

Surrogates (:class:`SurrogateBank`): the code reuses its FDS module as a per-label store of EMA
(momentum 0.9) of epoch means of the *un-normalised* projector features (``start_smooth=1000`` so
FDS never smooths), and reads ``FDS.running_mean_last_epoch``. That buffer is the initial zeros
until ``_update_last_epoch_stats`` first runs (end of epoch 1) and aliases the running mean from
then on, so epochs 0 and 1 train with **zero** surrogates and later epochs with the EMA that
includes the previous epoch (``delay_quirk=True``, default). ``delay_quirk=False`` uses the EMA as
soon as one statistics pass exists (from epoch 1).

Choices made explicit (defaults in ``docs/methods.md`` of the dirlib repository):

* Rows ``L``: the label bins ``0 .. max training bin`` (AgeDB: ages 0..101 = the code's
  ``range(102)``). STS-B: dirlib uses the 50 benchmark bins of width 0.1 for every term. *Changed:*
  the STS-B code indexes its contrastive targets by the nearest point of ``linspace(0, 5, 50)``
  (spacing 5/49) but its batch centroids by ``label.long()`` (scores truncated to 0..5, so only 6
  rows ever hold batch centroids); we use one consistent bin index.
* Absent rows are detected by a presence mask (the code tests ``row.sum() == 0``).
* Random points: ``n = 2000`` (AgeDB ``--n``) / 1000 (STS-B ``trainer.py``) unit Gaussian vectors
  drawn once per run (the code draws them once, unseeded).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def uniform_points(n: int, dim: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n`` random unit vectors (normalised standard Gaussians), as ``generate_gaussian_vectors``."""
    g = torch.randn(n, dim, generator=generator)
    return g / g.norm(dim=1, keepdim=True)


def batch_centroids(f: torch.Tensor, labels: torch.Tensor, n_rows: int):
    """Per-label means of the rows of ``f`` (zeros where absent) and the presence mask."""
    labels = labels.long().reshape(-1)
    if labels.numel() != f.shape[0]:
        raise ValueError(f"{f.shape[0]} features but {labels.numel()} labels")
    if ((labels < 0) | (labels >= n_rows)).any():
        raise ValueError(f"label index outside [0, {n_rows})")
    cnt = torch.bincount(labels, minlength=n_rows)
    sums = torch.zeros(n_rows, f.shape[1], dtype=f.dtype, device=f.device).index_add(0, labels, f)
    return sums / cnt.clamp(min=1)[:, None].to(f.dtype), cnt > 0


def complete_centroids(f_normed: torch.Tensor, labels: torch.Tensor, surrogate: torch.Tensor):
    """Batch centroids of the (normalised) features, absent labels filled with the detached
    surrogate, every row L2-normalised."""
    cent, present = batch_centroids(f_normed, labels, surrogate.shape[0])
    full = torch.where(present[:, None], cent, surrogate.detach().to(cent.dtype))
    return F.normalize(full, dim=1), present


def srl_contrastive(f: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """``L_con``: mean cross-entropy of ``cos(f_i, c_k) / tau`` with target ``labels[i]``
    (centroids detached)."""
    logits = F.normalize(f, dim=1) @ F.normalize(centroids.detach(), dim=1).t() / temperature
    return F.cross_entropy(logits, labels.long().reshape(-1))


def srl_uniformity(centroids: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``L_uni = 1 - mean_p max_k cos(c_k, p)``."""
    cos = F.normalize(centroids, dim=1) @ F.normalize(points.to(centroids), dim=1).t()
    return 1.0 - cos.max(dim=0).values.mean()


def srl_smoothness(centroids: torch.Tensor, alpha: float = -1.0, beta: float = 0.1) -> torch.Tensor:
    """``L_smo = alpha * sum_k cos(c_k, c_{k+1}) + beta * Var_k cos(c_k, c_{k+1})``."""
    c = F.normalize(centroids, dim=1)
    if c.shape[0] < 3:
        raise ValueError("srl_smoothness needs at least 3 label rows")
    lengths = (c[1:] * c[:-1]).sum(1)
    return alpha * lengths.sum() + beta * lengths.var()


def srl_loss(features: torch.Tensor, labels: torch.Tensor, surrogate: torch.Tensor,
             points: torch.Tensor, temperature: float = 0.3, w1: float = 10.0, w2: float = 100.0,
             w3: float = 1e-2):
    """``(w1 L_con + w2 L_uni + w3 L_smo, {"con", "uni", "smo"})`` for projector features
    ``features`` (not yet normalised) and integer label rows ``labels``."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if features.shape[1] != surrogate.shape[1]:
        raise ValueError(f"features have dim {features.shape[1]}, surrogates {surrogate.shape[1]}")
    f = F.normalize(features, dim=1)
    c, _ = complete_centroids(f, labels, surrogate)
    con = srl_contrastive(f, labels, c, temperature)
    uni = srl_uniformity(c, points)
    smo = srl_smoothness(c)
    return w1 * con + w2 * uni + w3 * smo, {"con": con, "uni": uni, "smo": smo}


class SurrogateBank(nn.Module):
    """Per-label EMA of epoch means of (un-normalised) projector features, with the code's timing
    (see the module docstring)."""

    def __init__(self, n_rows: int, dim: int, momentum: float = 0.9, start_update: int = 0,
                 delay_quirk: bool = True):
        super().__init__()
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum, self.start_update, self.delay_quirk = float(momentum), int(start_update), bool(delay_quirk)
        self.register_buffer("running_mean", torch.zeros(n_rows, dim))
        self.register_buffer("count", torch.zeros(n_rows))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, epoch: int):
        """Fold one full pass (features ``(N, d)``, label rows ``(N,)``) into the EMA."""
        mean, present = batch_centroids(features.detach().to(self.running_mean), labels.to(features.device),
                                        self.running_mean.shape[0])
        mean, present = mean.to(self.running_mean.device), present.to(self.running_mean.device)
        m = 0.0 if int(epoch) == self.start_update else self.momentum
        new = (1 - m) * mean + m * self.running_mean
        self.running_mean.copy_(torch.where(present[:, None], new, self.running_mean))
        self.count += present.to(self.count.dtype)
        self.n_updates += 1

    def surrogate(self) -> torch.Tensor:
        """The surrogates to use now: zeros before the code's alias exists (``delay_quirk``)."""
        needed = 2 if self.delay_quirk else 1
        if int(self.n_updates) < needed:
            return torch.zeros_like(self.running_mean)
        return self.running_mean.clone()
