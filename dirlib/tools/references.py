"""Reference rows for every table: what a trivial predictor and a strong non-deep model get on the
same splits, with the same shot metrics (``docs/benchmark-plan.md``).

* ``training mean`` and ``training median``: one constant, the training labels' mean or median.
* ``gradient boosting``: scikit-learn's ``HistGradientBoostingRegressor`` on the same inputs, its
  settings chosen on the validation split (the benchmark's equal budget: :data:`HGB_SPACE`, 4
  points), then fitted once per seed (``random_state``) and read once on test.

Inputs (:func:`features`): a table's feature columns as they are; a sentence pair's mean GloVe
vectors ``u``, ``v`` with ``|u - v|`` and ``u * v`` (the words the BiLSTM embeds, padding left out);
images are refused by name (a face reference is not built here).

::

    python -m dirlib benchmark references --dataset sts-b-dir
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from ..data.base import DIRData
from ..metrics import shot_metrics

HGB_SPACE = [{"learning_rate": lr, "max_leaf_nodes": leaves}
             for lr in (0.05, 0.1) for leaves in (15, 31)]


def _stack(ds) -> np.ndarray:
    if hasattr(ds, "x"):
        return np.asarray(ds.x)
    return np.stack([np.asarray(ds[i][0]) for i in range(len(ds))])


def features(data: DIRData) -> dict:
    """``{"train", "val", "test"}`` -> a 2-D float array of the inputs a non-deep model gets."""
    x = {s: _stack(getattr(data, s)) for s in ("train", "val", "test")}
    emb = (data.model_kwargs or {}).get("embedding")
    if x["train"].ndim == 3 and emb is not None:           # sentence pairs of token ids
        emb = np.asarray(emb.detach().cpu() if hasattr(emb, "detach") else emb, dtype=np.float64)

        def mean_vec(ids):                                  # (N, T) -> (N, D), padding (0) left out
            mask = (ids != 0)[..., None]
            return (emb[ids] * mask).sum(1) / np.maximum(mask.sum(1), 1)
        out = {}
        for s, v in x.items():
            u, w = mean_vec(v[:, 0]), mean_vec(v[:, 1])
            out[s] = np.concatenate([u, w, np.abs(u - w), u * w], axis=1)
        return out
    if x["train"].ndim == 2:
        return {s: v.astype(np.float64) for s, v in x.items()}
    raise ValueError(f"reference rows: inputs of shape {x['train'].shape[1:]} (images?) have no "
                     f"non-deep reference here; give tables or sentence pairs")


def _metrics(data: DIRData, pred, split: str) -> dict:
    return shot_metrics(pred, getattr(data, f"{split}_labels"), data.shot_reference,
                        spec=data.shot_spec, binning=data.binning, gm_eps=data.gm_eps,
                        pearson=data.pearson)


def reference_rows(data: DIRData, seeds: Sequence[int] = (0, 1, 2, 3, 4), space=HGB_SPACE,
                   tune_seed: int = 0, log=print) -> dict:
    """Every reference's test metrics per seed, the gradient-boosting trials (validation only) and
    the choice, as one JSON-able dict."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    y = np.asarray(data.train_labels, dtype=np.float64)
    metric = data.main_metric
    out = {"dataset": data.name, "metric": metric, "seeds": list(seeds), "rows": {}}
    for name, c in (("training mean", float(y.mean())), ("training median", float(np.median(y)))):
        test = _metrics(data, np.full(len(data.test_labels), c), "test")
        out["rows"][name] = {"constant": c, "seeds": {str(s): test for s in seeds}}
    t0 = time.time()
    f = features(data)
    trials = []
    for point in space:
        m = HistGradientBoostingRegressor(random_state=tune_seed, **point).fit(f["train"], y)
        val = _metrics(data, m.predict(f["val"]), "val")["all"][metric]
        trials.append({"point": point, "val": float(val)})
        log(f"gradient boosting {point}: validation {metric} {val:.4f}")
    best = min(range(len(trials)), key=lambda i: (trials[i]["val"], i))
    chosen = space[best]
    per_seed = {}
    for s in seeds:
        m = HistGradientBoostingRegressor(random_state=s, **chosen).fit(f["train"], y)
        per_seed[str(s)] = _metrics(data, m.predict(f["test"]), "test")
    out["rows"]["gradient boosting"] = {
        "model": "sklearn HistGradientBoostingRegressor", "features": int(f["train"].shape[1]),
        "trials": trials, "chosen": chosen, "seeds": per_seed, "fit_s": time.time() - t0}
    return out
