"""One harness over every loss module that ``dirlib.losses`` exports: each equals its functional
form, returns a scalar, keeps its named parts detached, gives finite gradients, takes ``(B,)`` float
labels (and ``(B, 1)`` columns, as the benchmarks' code passes them) and says its settings in its
``repr``. A newly exported loss fails :func:`test_every_exported_loss_has_a_case` until it has a case
here. The per-loss checks against slow loop references are in the other files of this folder."""
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch

import dirlib.losses as L
from dirlib.losses import functional as LF
from dirlib.losses.parts import LossWithParts

# float labels with ties (every label twice but two), as a batch of a DIR benchmark would have
LABELS = torch.tensor([20.5, 20.5, 31.0, 31.0, 44.2, 44.2, 58.0, 58.0, 63.3, 70.1, 70.1, 85.0])
TRAIN_LABELS = np.r_[np.full(30, 22.0), np.full(12, 35.0), np.full(5, 60.0), 80.0, 90.0]


def _norm_target(y):
    return 1.0 + 0.05 * y


def _confused(y):
    return 45.0 + 0.001 * y.reshape(-1)


def _frobenius_functional(m, z, y):
    bins = torch.unique(y, return_inverse=True)[1]   # no bin_width: every label value is a bin
    c = m.config
    kl = LF.ordinal_kl(z, y, bins, label_tau=c.label_tau, norm_tau=c.norm_tau,
                       label_range=c.label_range, norm_scale=c.norm_scale, softmax=c.softmax,
                       self_pairs=c.self_pairs, distance=c.distance)
    oe = LF.prototype_ordinal_entropy(z, y, bins, normalize=c.oe_normalize, tightness=c.oe_tightness,
                                      squared=c.oe_squared, weights=c.oe_weights)
    return kl + c.alpha * oe


def _dist_functional(m, p, y):
    return LF.dist_loss(p, y, m.pseudo.get(p.numel()), lambda a, b: (a - b).abs(), weight=m.weight,
                        regularization_strength=m.regularization_strength)[0]


@dataclass
class Case:
    """How to build one loss, what it is called on, and its functional form ``(module, x, y)``."""
    make: Callable
    functional: Callable
    on: str = "features"                      # or "predictions"
    call_kwargs: Callable = field(default=lambda x, y: {})
    parts: tuple = ()                          # the names ``parts`` must hold
    seeded: bool = False                       # it samples (RankSim: one anchor per label)


CASES = {
    "BalancedMSE": Case(lambda: L.BalancedMSE(init_noise_sigma=2.0),
                        lambda m, p, y: LF.bmc_loss(p, y, m.noise_var), on="predictions",
                        parts=("noise_var",)),
    # predictions that confuse labels far apart: ConR's negatives (without any, it is 0)
    "ConR": Case(lambda: L.ConR(), lambda m, z, y: LF.conr_loss(z, y, _confused(y)),
                 call_kwargs=lambda z, y: {"pred": _confused(y)}, parts=("conr",)),
    "DistLoss": Case(lambda: L.DistLoss(TRAIN_LABELS, step=1.0), _dist_functional, on="predictions",
                     parts=("plain", "dist")),
    "FocalR": Case(lambda: L.FocalR(beta=0.2), lambda m, p, y: LF.focal_l1(p, y, 0.2),
                   on="predictions", parts=("focal",)),
    "FrobeniusRegularizer": Case(lambda: L.FrobeniusRegularizer(), _frobenius_functional,
                                 parts=("kl", "oe", "n_labels")),
    "NormAlignment": Case(lambda: L.NormAlignment(_norm_target),
                          lambda m, z, y: LF.norm_alignment_loss(z, _norm_target(y)),
                          parts=("align", "target_norm")),
    "OrdinalEntropy": Case(lambda: L.OrdinalEntropy(), lambda m, z, y: LF.ordinal_entropy(z, y),
                           parts=("diversity", "tightness")),
    "RankSim": Case(lambda: L.RankSim(lam=2.0), lambda m, z, y: LF.ranksim_loss(z, y, 2.0),
                    parts=("ranksim",), seeded=True),
    "RnCLoss": Case(lambda: L.RnCLoss(temperature=2.0), lambda m, z, y: LF.rnc_loss(z, y, 2.0),
                    parts=("rnc",)),
}


def _inputs(case, seed=0, b=12, d=6):
    """``(x, y)``: ``(B, d)`` features, or ``(B,)`` predictions near the labels, with gradients."""
    g = torch.Generator().manual_seed(seed)
    y = LABELS[:b].clone()
    if case.on == "features":
        x = torch.randn(b, d, generator=g)
    else:
        x = y + 3.0 * torch.randn(b, generator=g)
    return x.requires_grad_(True), y


def _call(case, m, x, y):
    if case.seeded:
        torch.manual_seed(0)
    return m(x, y, **case.call_kwargs(x, y))


def test_every_exported_loss_has_a_case():
    exported = {n for n in L.__all__ if isinstance(getattr(L, n), type)
                and issubclass(getattr(L, n), LossWithParts)}
    assert exported == set(CASES), "give each exported loss a Case in this file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_equals_functional(name):
    case = CASES[name]
    m = case.make()
    for seed in (0, 1):
        x, y = _inputs(case, seed)
        got = _call(case, m, x, y)
        if case.seeded:
            torch.manual_seed(0)
        want = case.functional(m, x, y)
        assert got.shape == () and torch.allclose(got, want, rtol=1e-6, atol=1e-7), (got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parts_are_named_and_detached(name):
    case = CASES[name]
    m = case.make()
    assert m.parts == {}
    _call(case, m, *_inputs(case))
    assert set(case.parts) <= set(m.parts), sorted(m.parts)
    for k, v in m.parts.items():
        assert not (torch.is_tensor(v) and v.requires_grad), f"{name}.parts[{k!r}] keeps its graph"


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_are_finite_and_reach_the_input(name):
    case = CASES[name]
    x, y = _inputs(case)
    loss = _call(case, case.make(), x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0, f"{name}: no gradient reaches the input"


@pytest.mark.parametrize("name", sorted(CASES))
def test_float_labels_as_a_vector_or_a_column_give_one_value(name):
    case = CASES[name]
    x, y = _inputs(case)
    assert y.dtype == torch.float32 and y.dim() == 1 and (y != y.round()).any()
    m = case.make()
    flat = _call(case, m, x, y)
    xc = x.detach().reshape(-1, 1) if case.on == "predictions" else x.detach()
    col = _call(case, m, xc, y.reshape(-1, 1))
    assert torch.allclose(flat, col.reshape(()), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(CASES))
def test_repr_names_the_loss_and_its_settings(name):
    m = CASES[name].make()
    r = repr(m)
    assert r.startswith(f"{name}(") and len(r) < 400, r
    if type(m).repr_fields:
        assert all(f"{f}=" in r for f in type(m).repr_fields), r
