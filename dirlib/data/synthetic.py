"""Seconds-fast long-tailed regression data for smoke tests, widgets and the quick book build.

Labels are integers ``0..n_labels-1``. Training labels follow a discretised Gaussian bump (a
majority region in the middle, tails on both sides, like AgeDB's age histogram); val and test
hold the same number of samples per label (balanced). Features carry the label through a random
non-linear map plus Gaussian noise, so the regressor has something to learn and the tails are
genuinely harder (fewer samples).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import Binning, DIRData, ShotSpec


class TensorItems(Dataset):
    """``(x[i], y[i], i)`` items over in-memory tensors."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError("x and y differ in length")
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i


def long_tailed_counts(n_labels: int, n_max: int, center: float, width: float, n_min: int = 1):
    k = np.arange(n_labels)
    c = n_max * np.exp(-0.5 * ((k - center) / width) ** 2)
    return np.maximum(np.round(c).astype(int), n_min)


def load_synthetic(n_labels: int = 50, n_max: int = 200, width: float = 8.0, dim: int = 16,
                   noise: float = 0.5, per_label_eval: int = 10, seed: int = 0) -> DIRData:
    """A long-tailed synthetic DIR task (shots by the 100/20 rule on the training counts)."""
    for name, v, lo in (("n_labels", n_labels, 2), ("n_max", n_max, 1), ("dim", dim, 1),
                        ("per_label_eval", per_label_eval, 1)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            why = " (the labels 0..n_labels-1 are scaled by n_labels - 1)" if name == "n_labels" else ""
            raise ValueError(f"load_synthetic: {name} (--data-arg {name}=...) must be an integer >= "
                             f"{lo}{why}, got {v!r}")
    for name, v, strict in (("width", width, True), ("noise", noise, False)):
        if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0 or (strict and v == 0):
            raise ValueError(f"load_synthetic: {name} (--data-arg {name}=...) must be a number "
                             f"{'> 0' if strict else '>= 0'}, got {v!r}")
    rng = np.random.RandomState(seed)
    counts = long_tailed_counts(n_labels, n_max, center=n_labels * 0.4, width=width)
    proj = rng.randn(3, dim)

    def make(labels):
        t = (labels / (n_labels - 1))[:, None]
        base = np.concatenate([np.sin(3 * t), np.cos(2 * t), t], axis=1) @ proj
        x = base + noise * rng.randn(len(labels), dim) * 0.3
        return torch.tensor(x, dtype=torch.float32), torch.tensor(labels, dtype=torch.float32)

    train_y = np.repeat(np.arange(n_labels), counts).astype(np.float64)
    eval_y = np.repeat(np.arange(n_labels), per_label_eval).astype(np.float64)
    (xtr, ytr), (xva, yva), (xte, yte) = make(train_y), make(eval_y), make(eval_y)
    return DIRData(
        name="synthetic", train=TensorItems(xtr, ytr), val=TensorItems(xva, yva),
        test=TensorItems(xte, yte), train_labels=train_y, val_labels=eval_y, test_labels=eval_y,
        binning=Binning.integer(0, n_labels - 1), shot_spec=ShotSpec(), target_scale=1.0,
        main_metric="mae", model="mlp", model_kwargs={"in_dim": dim},
        info={"generator": "dirlib.data.synthetic.load_synthetic", "seed": seed,
              "n_labels": n_labels, "n_max": n_max, "width": width, "dim": dim, "noise": noise})
