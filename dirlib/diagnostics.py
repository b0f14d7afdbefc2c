"""Per-label diagnostics behind the paper's Figs. 2, 3 and 5.

* :func:`collect_features`: ``z``, predictions and targets of a model over a loader (eval mode, no grad).
* :func:`per_label_stats`: one row per label bin: count, prototype norm ``||mean z||`` (the red/blue
  line of Figs. 2 and 5), mean per-sample norm, training MAE (the bars), shot.
* :func:`ordinality_score`: how ordinal the prototype norms are (Spearman, adjacent violations,
  discordant pairs), overall and within each shot.

All functions take numpy arrays (or anything ``np.asarray`` accepts) and work in float64.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .data.base import SHOTS, Binning, ShotSpec, label_shots

__all__ = ["collect_features", "per_label_stats", "ordinality_score"]


def _to_device(x, device):
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


@torch.no_grad()
def collect_features(model: torch.nn.Module, loader, device=None, *, progress: bool = False,
                     max_samples: Optional[int] = None):
    """Run ``model`` over ``loader`` (items ``(x, y, idx)``) in eval mode without gradients.

    Returns numpy arrays ``(z (N, d), pred (N,), y_model (N,))``: the penultimate features, the
    predictions and the targets, both in *model space* (multiply by ``target_scale`` for labels).
    ``device`` defaults to the device of the model's first parameter. The model's train/eval mode is
    restored afterwards. ``max_samples`` stops after that many samples (whole batches).
    """
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    zs, preds, ys = [], [], []
    n = 0
    it = loader
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(loader, desc="features", leave=False)
    try:
        for batch in it:
            if not isinstance(batch, (list, tuple)) or len(batch) < 2:
                raise ValueError("collect_features: loader items must be (x, y, idx) tuples")
            x, y = batch[0], batch[1]
            out = model(_to_device(x, device))
            if not (isinstance(out, (list, tuple)) and len(out) == 2):
                raise ValueError("collect_features: model(x) must return (pred, z)")
            pred, z = out
            zs.append(z.detach().float().reshape(z.shape[0], -1).cpu())
            preds.append(pred.detach().float().reshape(-1).cpu())
            ys.append(torch.as_tensor(y).float().reshape(-1).cpu())
            n += zs[-1].shape[0]
            if max_samples is not None and n >= max_samples:
                break
    finally:
        model.train(was_training)
    if not zs:
        raise ValueError("collect_features: the loader yielded no batches")
    return torch.cat(zs).numpy(), torch.cat(preds).numpy(), torch.cat(ys).numpy()


def per_label_stats(z, pred, labels, binning: Binning, target_scale: float = 1.0, *,
                    shots: Optional[Sequence[str]] = None,
                    shot_spec: ShotSpec = ShotSpec()) -> pd.DataFrame:
    """One row per bin of ``binning`` (all bins, empty ones with ``count`` 0 and NaN statistics).

    ``z`` (N, d) features, ``pred`` (N,) predictions in model space, ``labels`` (N,) in label space
    (the training labels when ``z`` comes from the training set). Columns:

    * ``bin``, ``label`` (bin centre), ``label_mean`` (mean label of the bin's samples), ``count``;
    * ``proto_norm`` = ``||mean_i z_i||_2`` over the bin (the paper's per-label Frobenius norm);
    * ``mean_norm`` = mean of ``||z_i||_2`` (>= ``proto_norm``; the gap shows how spread the bin is);
    * ``mae`` = mean ``|pred * target_scale - label|`` (the training MAE of Fig. 2);
    * ``shot``: from ``shots`` (one entry per bin, e.g. ``DIRData.bin_shots()``), else from this
      set's bin counts with ``shot_spec`` (>100 many, <20 few by default).
    """
    z = np.asarray(z, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if z.ndim != 2 or not (len(z) == len(pred) == len(labels)):
        raise ValueError(f"z must be (N, d) and pred, labels (N,): got {z.shape}, {pred.shape}, "
                         f"{labels.shape}")
    if not np.all(np.isfinite(labels)):
        raise ValueError("per_label_stats: labels contain NaN or inf")
    nb = binning.n_bins
    b = binning.index(labels)
    counts = np.bincount(b, minlength=nb)
    sums = np.zeros((nb, z.shape[1]))
    np.add.at(sums, b, z)
    norm_sum = np.bincount(b, weights=np.linalg.norm(z, axis=1), minlength=nb)
    err_sum = np.bincount(b, weights=np.abs(pred * float(target_scale) - labels), minlength=nb)
    lab_sum = np.bincount(b, weights=labels, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        proto_norm = np.linalg.norm(sums / counts[:, None], axis=1)
        mean_norm = norm_sum / counts
        mae = err_sum / counts
        label_mean = lab_sum / counts
    empty = counts == 0
    for a in (proto_norm, mean_norm, mae, label_mean):
        a[empty] = np.nan
    if shots is None:
        spec = shot_spec
        shot_arr = label_shots(binning, labels, spec)
    else:
        shot_arr = np.asarray(shots).astype(str)
        if shot_arr.shape != (nb,):
            raise ValueError(f"shots must have one entry per bin ({nb}), got shape {shot_arr.shape}")
    return pd.DataFrame({"bin": np.arange(nb), "label": binning.centers, "label_mean": label_mean,
                         "count": counts, "proto_norm": proto_norm, "mean_norm": mean_norm,
                         "mae": mae, "shot": shot_arr})


def _adjacent_violations(labels: np.ndarray, norms: np.ndarray, direction: int) -> int:
    o = np.argsort(labels, kind="stable")
    return int(np.sum(direction * np.diff(norms[o]) < 0))


def _discordant(labels: np.ndarray, norms: np.ndarray, direction: int):
    dl = np.sign(labels[None, :] - labels[:, None])
    dn = np.sign(norms[None, :] - norms[:, None])
    iu = np.triu_indices(len(labels), k=1)
    dl, dn = dl[iu], dn[iu]
    valid = dl != 0
    n_pairs = int(valid.sum())
    n_disc = int(np.sum(valid & (direction * dl * dn < 0)))
    return n_disc, n_pairs


def _spearman(x, y, what: str) -> float:
    if len(x) < 3:
        warnings.warn(f"ordinality_score: {what} has {len(x)} point(s) (< 3): Spearman is NaN",
                      RuntimeWarning, stacklevel=3)
        return float("nan")
    if np.all(x == x[0]) or np.all(y == y[0]):
        warnings.warn(f"ordinality_score: {what} is constant: Spearman is NaN", RuntimeWarning,
                      stacklevel=3)
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


def ordinality_score(labels, norms, shots=None, counts=None, *, direction: Optional[int] = None
                     ) -> dict:
    """How ordinal the prototype norms are along the label axis.

    ``labels`` and ``norms`` have one entry per label (bin); entries with NaN norm, and with
    ``counts == 0`` when ``counts`` is given, are dropped (their number is ``n_dropped``).

    * ``spearman``: Spearman rho between label and norm over all points; ``spearman_<shot>`` within
      each shot when ``shots`` is given (NaN with a warning if a shot has < 3 points).
    * ``direction``: the trend the others are measured against, +1 (norm grows with the label) or -1;
      by default the sign of the overall Spearman rho (+1 when it is 0 or NaN). Pass ``direction`` to
      fix it (e.g. the sign over the majority labels only).
    * ``adjacent_violations``: among the points sorted by label, the number of consecutive pairs whose
      norm moves against ``direction`` (out of ``adjacent_pairs = n - 1``); ``adjacent_violations_<shot>``
      counts the same within each shot's own sorted subsequence.
    * ``discordant_fraction``: the fraction of pairs with different labels whose norm order is against
      ``direction`` (Kendall's discordant pairs; norm ties are not discordant); also per shot.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    norms = np.asarray(norms, dtype=np.float64).reshape(-1)
    if labels.shape != norms.shape:
        raise ValueError(f"labels and norms differ in length: {labels.shape} vs {norms.shape}")
    keep = ~np.isnan(norms)
    if np.any(np.isinf(norms)) or not np.all(np.isfinite(labels)):
        raise ValueError("ordinality_score: labels must be finite and norms finite or NaN")
    if counts is not None:
        counts = np.asarray(counts).reshape(-1)
        if counts.shape != labels.shape:
            raise ValueError("counts must have one entry per label")
        keep &= counts > 0
    if shots is not None:
        shots = np.asarray(shots).astype(str).reshape(-1)
        if shots.shape != labels.shape:
            raise ValueError("shots must have one entry per label")
        shots = shots[keep]
    n_dropped = int((~keep).sum())
    labels, norms = labels[keep], norms[keep]
    out = {"n_points": int(len(labels)), "n_dropped": n_dropped}
    rho = _spearman(labels, norms, "the whole sequence")
    out["spearman"] = rho
    if direction is None:
        direction = -1 if (np.isfinite(rho) and rho < 0) else 1
    elif direction not in (1, -1):
        raise ValueError(f"direction must be +1, -1 or None, got {direction!r}")
    out["direction"] = int(direction)
    out["adjacent_violations"] = _adjacent_violations(labels, norms, direction)
    out["adjacent_pairs"] = max(len(labels) - 1, 0)
    nd, npairs = _discordant(labels, norms, direction)
    out["discordant_pairs"] = nd
    out["discordant_fraction"] = nd / npairs if npairs else float("nan")
    if shots is not None:
        for s in SHOTS:
            m = shots == s
            out[f"n_{s}"] = int(m.sum())
            out[f"spearman_{s}"] = _spearman(labels[m], norms[m], f"shot '{s}'")
            out[f"adjacent_violations_{s}"] = _adjacent_violations(labels[m], norms[m], direction)
            nd, npairs = _discordant(labels[m], norms[m], direction)
            out[f"discordant_fraction_{s}"] = nd / npairs if npairs else float("nan")
    return out
