"""Section 3.2's closed form: a ridge regressor on features whose norm grows with the label, and
the weight a shared head would need (the Explore page and its finding)."""
from __future__ import annotations

from typing import Dict

import numpy as np


def ridge_weight(z, y: float, lam: float) -> np.ndarray:
    """The paper's closed form (section 3.2) of ``argmin_w (z^T w - y)^2 + lam ||w||^2`` for one
    feature vector ``z``: ``w = y z / (||z||^2 + lam)``. ``lam >= 0``; ``z = 0`` with ``lam = 0``
    has no unique minimiser (error)."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if lam < 0:
        raise ValueError(f"lambda must be >= 0, got {lam}")
    d = float(z @ z) + lam
    if d == 0:
        raise ValueError("z = 0 with lambda = 0: the ridge objective has no unique minimiser")
    return y * z / d


def ridge_weight_norm(y, znorm, lam: float):
    """``||w|| = |y| ||z|| / (||z||^2 + lam)`` (elementwise over arrays): the size of the closed-form
    weight as a function of the feature norm. It peaks at ``||z||^2 = lam`` and falls beyond."""
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(znorm, dtype=np.float64)
    if lam < 0 or np.any(s < 0):
        raise ValueError("lambda and the norms must be >= 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(y) * s / (s ** 2 + lam)


def label_norms(labels, slope: float, base: float = 1.0) -> np.ndarray:
    """A feature-norm profile over labels: ``||z_y|| = base + slope * (y - min y)`` (``slope = 0``:
    the same norm for every label; larger ``slope``: the norm grows with the label)."""
    y = np.asarray(labels, dtype=np.float64)
    s = base + slope * (y - y.min())
    if np.any(s < 0):
        raise ValueError("the norm profile goes negative; use a non-negative base and slope")
    return s


def shared_ridge_fit(labels, norms, lam: float) -> Dict[str, np.ndarray]:
    """One regressor ``w`` for all labels when every label's feature is ``z_y = ||z_y|| u`` along one
    unit direction ``u``: the ridge solution over all labels is ``w = u * sum(s y) / (sum(s^2) + lam)``
    and predicts ``y_hat = s_y * w``. Returns ``w`` (scalar along ``u``), ``pred``, the per-label
    closed-form weights ``w_y = y s_y / (s_y^2 + lam)`` and the RMSE of the shared fit."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(norms, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError("labels and norms differ in length")
    den = float(s @ s) + lam
    if den == 0:
        raise ValueError("all norms are 0 with lambda = 0: no unique minimiser")
    w = float(s @ y) / den
    pred = s * w
    per = ridge_weight_norm(y, s, lam) * np.sign(y)
    return {"w": w, "pred": pred, "per_label_w": per, "rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}

