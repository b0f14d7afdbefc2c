"""Shot metrics with the DIR benchmark's semantics (functional, numpy in / dict out).

``agedb-dir/train.py::shot_metrics`` of the DIR benchmark (Yang et al. 2021):

* overall MAE / MSE are per-sample means; overall GM is ``scipy.stats.gmean`` of all |errors|;
* shots: each *unique test label* is many (train count > 100), few (< 20) or median, and a shot's
  metrics are per-sample means over the test samples whose label is in that shot (labels with more
  test samples weigh more);
* GM has no epsilon for the age datasets (one exact zero error makes GM 0); STS-B adds 1e-10 to
  exact zeros (``gm_eps``);
* STS-B (``sts-b-dir/util.py::STSShotAverage``) uses hard-coded 0.1-bin shot lists and reports
  Pearson and Spearman (we report them x100, as the tables).

An empty shot gives NaN metrics plus a ``RuntimeWarning``, never a crash (the benchmark's gmean
crashes, issue #19). NaN or infinite predictions are an error: a diverged model must not produce
a number that looks like a metric.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from scipy import stats

from .data.base import SHOTS, Binning, ShotSpec, assign_shots


def _gmean(abs_err: np.ndarray, eps: float) -> float:
    e = abs_err.astype(np.float64)
    if eps > 0:
        e = np.where(e == 0, eps, e)
    if np.any(e == 0):
        return 0.0
    return float(np.exp(np.mean(np.log(e))))


def regression_metrics(pred, target, *, gm_eps: float = 0.0, pearson: bool = False) -> dict:
    """MAE, MSE, GM (and Pearson/Spearman in %) of one group of samples; NaN when empty."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    out = {"n": int(len(pred))}
    if len(pred) == 0:
        out.update(mae=np.nan, mse=np.nan, gm=np.nan)
        if pearson:
            out.update(pearson=np.nan, spearman=np.nan)
        return out
    err = pred - target
    out["mae"] = float(np.mean(np.abs(err)))
    out["mse"] = float(np.mean(err ** 2))
    out["gm"] = _gmean(np.abs(err), gm_eps)
    if pearson:
        if len(pred) > 1 and np.std(pred) > 0 and np.std(target) > 0:
            out["pearson"] = float(stats.pearsonr(pred, target)[0] * 100)
            out["spearman"] = float(stats.spearmanr(pred, target)[0] * 100)
        else:
            out["pearson"] = out["spearman"] = np.nan
    return out


def shot_metrics(pred, target, train_target, *, spec: Optional[ShotSpec] = None,
                 binning: Optional[Binning] = None, gm_eps: float = 0.0, pearson: bool = False,
                 shots: Optional[np.ndarray] = None) -> dict:
    """Metrics overall and per shot: ``{"all": {...}, "many": {...}, "median": {...}, "few": {...}}``.

    ``pred`` and ``target`` are in label space. ``train_target`` are the training labels that define
    the shots (``spec``, ``binning``: see :func:`dirlib.data.base.assign_shots`); ``shots`` may be
    given precomputed instead. Without ``spec``, shots are counted per bin when ``binning`` is
    given and per exact label otherwise (the DIR benchmark's integer ages).
    """
    if spec is None:
        spec = ShotSpec(by="bin") if binning is not None else ShotSpec()
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in length: {pred.shape} vs {target.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"{int((~np.isfinite(pred)).sum())} non-finite prediction(s): the model diverged")
    if not np.all(np.isfinite(target)):
        raise ValueError(f"{int((~np.isfinite(target)).sum())} non-finite target(s): NaN or inf "
                         f"labels have no error to measure; drop or fix them")
    if binning is not None and shots is None:
        e = binning.edges
        outside = int(((target < e[0]) | (target > e[-1])).sum())
        if outside:
            # a label beyond the training bins would be clipped into an end bin and get its shot
            warnings.warn(f"{outside} target(s) lie outside the training bins [{e[0]:g}, {e[-1]:g}]: "
                          f"their shot is that of the nearest end bin", RuntimeWarning, stacklevel=2)
    if binning is None and spec.by == "label" and spec.lists is None and shots is None and \
            not np.all(target == np.round(target)):
        warnings.warn("shot_metrics: float labels without a binning: shots are counted per exact "
                      "label value, so almost every test label is few-shot; pass binning=...",
                      RuntimeWarning, stacklevel=2)
    if shots is None:
        shots = assign_shots(target, train_target, spec, binning)
    out = {"all": regression_metrics(pred, target, gm_eps=gm_eps, pearson=pearson)}
    for s in SHOTS:
        m = shots == s
        if not m.any():
            warnings.warn(f"shot '{s}' is empty in this evaluation set: its metrics are NaN",
                          RuntimeWarning, stacklevel=2)
        out[s] = regression_metrics(pred[m], target[m], gm_eps=gm_eps, pearson=pearson)
    return out


def per_label_errors(pred, target, binning: Binning) -> list:
    """Per-bin test errors: ``[{"bin", "label", "n", "mae", "mse"}]`` for every non-empty bin."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    b = binning.index(target)
    rows = []
    for k in np.unique(b):
        m = b == k
        e = pred[m] - target[m]
        rows.append({"bin": int(k), "label": float(binning.centers[k]), "n": int(m.sum()),
                     "mae": float(np.mean(np.abs(e))), "mse": float(np.mean(e ** 2))})
    return rows


class ShotMetrics:
    """Shot metrics for your own loop, torchmetrics-style: the shots are fixed at construction
    from the training labels (and ``binning`` / ``spec``, as :func:`shot_metrics`), ``update``
    takes one batch of predictions and targets (label space, tensors or arrays, ``(B,)`` or
    ``(B, 1)``), and ``compute`` gives what :func:`shot_metrics` gives on all of them at once.

    >>> import numpy as np
    >>> m = ShotMetrics(train_target=np.repeat([1.0, 2.0, 3.0], [150, 50, 5]))
    >>> m.update([1.0, 2.5], [1.0, 2.0]); m.update([2.0], [3.0])
    >>> out = m.compute()
    >>> out["all"]["n"], out["many"]["mae"], out["median"]["mae"], out["few"]["mae"]
    (3, 0.0, 0.5, 1.0)
    """

    def __init__(self, train_target, *, spec: Optional[ShotSpec] = None,
                 binning: Optional[Binning] = None, gm_eps: float = 0.0, pearson: bool = False):
        # copies, as torchmetrics keeps its states: a caller's buffer reused later changes nothing
        self.train_target = np.array(train_target, dtype=np.float64).reshape(-1)
        self.spec, self.binning, self.gm_eps, self.pearson = spec, binning, gm_eps, pearson
        self.reset()

    def reset(self) -> None:
        self._pred, self._target = [], []

    @staticmethod
    def _flat(v) -> np.ndarray:
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        return np.array(v, dtype=np.float64).reshape(-1)     # a copy, never a view (S7)

    def update(self, pred, target) -> None:
        p, t = self._flat(pred), self._flat(target)
        if p.shape != t.shape:
            raise ValueError(f"ShotMetrics.update: {p.size} predictions for {t.size} targets")
        self._pred.append(p)
        self._target.append(t)

    def compute(self) -> dict:
        if not self._pred:
            raise ValueError("ShotMetrics.compute: no batch was given to update()")
        return shot_metrics(np.concatenate(self._pred), np.concatenate(self._target),
                            self.train_target, spec=self.spec, binning=self.binning,
                            gm_eps=self.gm_eps, pearson=self.pearson)
