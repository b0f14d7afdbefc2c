"""Your own data as a :class:`~dirlib.data.base.DIRData`: arrays (any input shape) or torch datasets.

>>> import numpy as np
>>> from dirlib.data import from_arrays
>>> rng = np.random.RandomState(0)
>>> y = np.round(rng.gamma(2.0, 10.0, 300), 1)              # float labels, long-tailed
>>> x = np.c_[y / 50, np.sin(y / 10)] + 0.1 * rng.randn(300, 2)
>>> data = from_arrays(x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:], bin_width=5.0)
>>> data.name, data.binning.n_bins >= 10, data.shot_spec.by, data.info["task_family"]
('custom', True, 'bin', 'age (unstated: the documented default for custom data)')

Bins: ``edges`` (increasing bin edges) or ``bin_width`` (equal bins over the labels' range); with
neither, integer-valued labels get one bin per integer and float labels are an error naming both
options. Shots follow the DIR rule on the training counts (``many_thr``, ``few_thr``): per exact
label for integer labels without bins, per bin otherwise (exact float labels would all be
few-shot). ``task_family`` picks which published defaults the methods use: ``"age"`` (the
AgeDB/IMDB-WIKI recipes) or ``"sts"`` (STS-B); unstated, custom data gets the age family, and the
record says so (``data.info["task_family"]``). ``main_metric`` (``"mae"`` or ``"mse"``) chooses the
model-selection metric and the default loss (L1 or MSE); ``target_scale`` divides the labels the
model regresses.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np
import torch

from .base import Binning, DIRData, ShotSpec
from .synthetic import TensorItems

FAMILIES = ("age", "sts")
UNSTATED = "age (unstated: the documented default for custom data)"


def _tensor(a, what: str) -> torch.Tensor:
    t = torch.as_tensor(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
    if t.dim() == 0 or t.shape[0] == 0:
        raise ValueError(f"from_arrays: {what} must hold at least one sample, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        return t.float() if t.dtype != torch.float32 else t
    raise TypeError(f"from_arrays: {what} must be numeric, got {t.dtype}")


def _labels(a, what: str) -> np.ndarray:
    y = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"from_arrays: {what} must be 1-d (N,), got shape {y.shape}")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"from_arrays: {what} holds {len(bad)} NaN or infinite label(s), the first "
                         f"at row {bad[0]} ({y[bad[0]]}); drop or fix those rows")
    return y


def _finite_inputs(x: torch.Tensor, what: str) -> None:
    if x.dtype.is_floating_point:
        rows = torch.nonzero(~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)).reshape(-1)
        if len(rows):
            raise ValueError(f"from_arrays: {what} holds NaN or infinite values in {len(rows)} "
                             f"row(s), the first at row {int(rows[0])}; impute or drop them")


#: more bins than this from integer labels without bins is almost surely a unit or outlier problem
MAX_INTEGER_BINS = 10_000


def make_binning(labels: np.ndarray, bin_width: Optional[float] = None, edges=None) -> Binning:
    """The bins of :func:`from_arrays` (see the module docstring)."""
    if bin_width is not None and edges is not None:
        raise ValueError("from_arrays: give bin_width or edges, not both")
    lo, hi = float(np.min(labels)), float(np.max(labels))
    if edges is not None:
        e = np.asarray(edges, dtype=np.float64)
        outside = int(((labels < e[0]) | (labels > e[-1])).sum()) if e.size else len(labels)
        if outside:
            raise ValueError(f"from_arrays: {outside} label(s) lie outside the edges [{e[0]:g}, "
                             f"{e[-1]:g}] (the labels span [{lo:g}, {hi:g}]); widen the edges, "
                             f"or they would be clipped into the end bins")
        return Binning(e)
    if bin_width is not None:
        if not (isinstance(bin_width, numbers.Real) and not isinstance(bin_width, bool)
                and bin_width > 0 and math.isfinite(bin_width)):
            raise ValueError(f"from_arrays: bin_width must be a number > 0, got {bin_width!r}")
        bin_width = float(bin_width)
        a = math.floor(lo / bin_width) * bin_width
        b = max(math.ceil(hi / bin_width) * bin_width, a + bin_width)
        if b <= hi:
            b += bin_width
        n_bins = (b - a) / bin_width
        if n_bins > MAX_INTEGER_BINS:       # refused before anything is allocated
            raise ValueError(f"from_arrays: bin_width {bin_width:g} over labels {lo:g} to {hi:g} "
                             f"would make {n_bins:.3g} bins (at most {MAX_INTEGER_BINS}); choose a "
                             f"wider bin_width or edges=[...]")
        return Binning.uniform(a, b, bin_width)
    if np.all(labels == np.round(labels)):
        if hi - lo + 1 > MAX_INTEGER_BINS:
            raise ValueError(f"from_arrays: integer labels from {lo:g} to {hi:g} would make "
                             f"{int(hi - lo + 1)} bins of one unit; pass bin_width=... or edges=[...] "
                             f"(or check the labels' units and outliers)")
        return Binning.integer(int(lo), int(hi))
    raise ValueError("from_arrays: the labels are not integers, so the bins must be given: pass "
                     "bin_width=... (equal bins) or edges=[...] (bin edges)")


def _check_item_targets(ds, model_targets: np.ndarray, split: str, probes: int = 20) -> None:
    """The items' ``y`` must be the labels divided by ``target_scale``, at the same index: every item
    of a dataset that holds its targets as ``.y``, else ``probes`` items spread over the split."""
    y = getattr(ds, "y", None)
    if isinstance(y, (torch.Tensor, np.ndarray)) and len(y) == len(model_targets):
        idx = np.arange(len(model_targets))
        got = np.asarray(y, dtype=np.float64).reshape(-1)
    else:
        idx = np.unique(np.linspace(0, len(model_targets) - 1, min(probes, len(model_targets)))
                        .astype(int))
        got = np.array([float(ds[int(i)][1]) for i in idx])
    want = model_targets[idx]
    bad = np.flatnonzero(~np.isclose(got, want, rtol=1e-5, atol=1e-6))
    if len(bad):
        i = int(idx[bad[0]])
        raise ValueError(f"from_datasets: the {split} items' targets disagree with {split}_labels / "
                         f"target_scale at {len(bad)} checked index(es), the first at {i} (item y "
                         f"{got[bad[0]]:g}, label / target_scale {want[bad[0]]:g}): the labels must "
                         f"be aligned with the items, and the items must hold label / target_scale")


def from_datasets(train, val, test, *, train_labels, val_labels, test_labels, bin_width=None,
                  edges=None, name: str = "custom", many_thr: int = 100, few_thr: int = 20,
                  task_family: Optional[str] = None, main_metric: str = "mae", target_scale: float = 1.0,
                  model: Optional[str] = None, model_kwargs: Optional[dict] = None) -> DIRData:
    """A :class:`DIRData` over torch datasets whose items are ``(x, y, index)`` (images, text ...),
    with their labels given as arrays aligned with the datasets' indices. ``model``: a dirlib
    encoder name for ``dirlib.run`` without ``encoder=`` (``None``: an encoder must be given)."""
    if task_family is not None and task_family not in FAMILIES:
        raise ValueError(f"task_family must be one of {', '.join(FAMILIES)} or None, got {task_family!r}")
    if main_metric not in ("mae", "mse"):
        raise ValueError(f"main_metric must be 'mae' or 'mse', got {main_metric!r}")
    labels = {s: _labels(v, f"y_{s}") for s, v in (("train", train_labels), ("val", val_labels),
                                                   ("test", test_labels))}
    if not (isinstance(target_scale, numbers.Real) and not isinstance(target_scale, bool)
            and target_scale > 0 and math.isfinite(target_scale)):
        raise ValueError(f"target_scale must be a number > 0, got {target_scale!r}")
    for s, ds in (("train", train), ("val", val), ("test", test)):
        if len(ds) != len(labels[s]):
            raise ValueError(f"from_arrays: {len(ds)} {s} inputs but {len(labels[s])} {s} labels")
        _check_item_targets(ds, labels[s] / float(target_scale), s)
    binning = make_binning(np.concatenate(list(labels.values())), bin_width, edges)
    given_bins = bin_width is not None or edges is not None
    spec = ShotSpec(many_thr=int(many_thr), few_thr=int(few_thr), by="bin" if given_bins else "label")
    info = {"source": "dirlib.data.from_arrays", "task_family": task_family or UNSTATED,
            "bins": {"bin_width": bin_width, "edges": None if edges is None else list(map(float, edges))},
            "shots": {"many_thr": spec.many_thr, "few_thr": spec.few_thr, "by": spec.by}}
    return DIRData(name=name, train=train, val=val, test=test, train_labels=labels["train"],
                   val_labels=labels["val"], test_labels=labels["test"], binning=binning,
                   shot_spec=spec, target_scale=float(target_scale), main_metric=main_metric,
                   model=model or "none", model_kwargs=dict(model_kwargs or {}), info=info)


def from_arrays(x_train, y_train, x_val, y_val, x_test, y_test, *, bin_width=None, edges=None,
                name: str = "custom", many_thr: int = 100, few_thr: int = 20,
                task_family: Optional[str] = None, main_metric: str = "mae",
                target_scale: float = 1.0, loss: Optional[str] = None) -> DIRData:
    """A :class:`DIRData` from numpy arrays or tensors (inputs of any shape ``(N, ...)``, labels
    ``(N,)``). Flat inputs ``(N, d)`` get dirlib's MLP encoder by default; other shapes need an
    ``encoder`` in ``dirlib.run``. See the module docstring for bins, shots and defaults.
    ``loss``: the regression loss runs on this data use when their config names none (``mse``,
    ``l1``, ...; default: MSE when ``main_metric`` is MSE, else L1)."""
    from ..train import LOSSES
    if loss is not None and loss not in LOSSES:
        raise ValueError(f"from_arrays: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    xs = {s: _tensor(x, f"x_{s}") for s, x in (("train", x_train), ("val", x_val), ("test", x_test))}
    shapes = {tuple(x.shape[1:]) for x in xs.values()}
    if len(shapes) != 1:
        raise ValueError(f"from_arrays: the splits' inputs differ in shape: {sorted(shapes)}")
    if not (isinstance(target_scale, numbers.Real) and not isinstance(target_scale, bool)
            and target_scale > 0 and math.isfinite(target_scale)):
        raise ValueError(f"from_arrays: target_scale must be a number > 0, got {target_scale!r}")
    # the model regresses label / target_scale (as the STS-B loader's 0-5 scores / 5); metrics
    # multiply its predictions back
    ys = {s: torch.tensor(_labels(y, f"y_{s}") / float(target_scale), dtype=torch.float32)
          for s, y in (("train", y_train), ("val", y_val), ("test", y_test))}
    for s in xs:
        if len(xs[s]) != len(ys[s]):
            raise ValueError(f"from_arrays: {len(xs[s])} {s} inputs but {len(ys[s])} {s} labels")
        _finite_inputs(xs[s], f"x_{s}")
    flat = xs["train"].dim() == 2
    data = from_datasets(*(TensorItems(xs[s], ys[s]) for s in ("train", "val", "test")),
                         train_labels=y_train, val_labels=y_val, test_labels=y_test,
                         bin_width=bin_width, edges=edges, name=name, many_thr=many_thr,
                         few_thr=few_thr, task_family=task_family, main_metric=main_metric,
                         target_scale=target_scale, model="mlp" if flat else None,
                         model_kwargs={"in_dim": int(xs["train"].shape[1])} if flat else None)
    if loss is not None:
        data.info["loss"] = loss             # stated by the caller: the runs' default loss
    return data
