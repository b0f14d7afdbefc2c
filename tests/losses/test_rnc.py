"""Rank-N-Contrast (``dirlib.losses.rnc``) against a three-loop reference (ties included), its
gradient, and the properties the paper states."""

import math

import numpy as np
import pytest
import torch

from dirlib.losses.rnc import rnc_loss

D = torch.float64


def rnc_loop(z, y, t):
    """loss.py::RnCLoss written as three loops over anchor i, positive j and candidates k."""
    n = len(z)
    z, y = z.tolist(), [list(np.atleast_1d(v)) for v in y.tolist()]

    def s(i, j):
        return -math.sqrt(sum((a - b) ** 2 for a, b in zip(z[i], z[j]))) / t

    def d(i, j):
        return sum(abs(a - b) for a, b in zip(y[i], y[j]))

    tot = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            den = sum(math.exp(s(i, k)) for k in range(n) if k != i and d(i, k) >= d(i, j))
            tot += -(s(i, j) - math.log(den))
    return tot / (n * (n - 1))


@pytest.mark.parametrize("t", [2.0, 0.5])
def test_rnc_matches_loop_with_ties(t):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 3, generator=g, dtype=D)
    y = torch.tensor([1., 3., 3., 7., 1., 3., 3., 7.], dtype=D)   # two views: labels repeat
    assert torch.allclose(rnc_loss(z, y, t), torch.tensor(rnc_loop(z, y, t), dtype=D), atol=1e-10)
    y2 = torch.tensor([[0., 1.], [2., 0.], [1., 1.], [0., 2.]], dtype=D).repeat(2, 1)  # vector labels
    assert torch.allclose(rnc_loss(z, y2, t), torch.tensor(rnc_loop(z, y2, t), dtype=D), atol=1e-10)


def test_rnc_gradient_matches_loop_and_is_finite_for_identical_views():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 2, generator=g, dtype=D, requires_grad=True)
    y = torch.tensor([0., 1., 2., 0., 1., 2.], dtype=D)
    rnc_loss(z, y, 2.0).backward()

    z2 = z.detach().clone().requires_grad_(True)
    n = 6
    dist = torch.stack([torch.stack([(z2[i] - z2[j]).norm() if i != j else z2.new_zeros(())
                                     for j in range(n)]) for i in range(n)])
    tot = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            ks = [k for k in range(n) if k != i and abs(y[i] - y[k]) >= abs(y[i] - y[j])]
            tot = tot - (-dist[i, j] / 2 - torch.logsumexp(torch.stack([-dist[i, k] / 2 for k in ks]), 0))
    (tot / (n * (n - 1))).backward()
    assert torch.allclose(z.grad, z2.grad, atol=1e-8)
    # identical views (no augmentation): zero distances must not give NaN gradients
    zz = torch.randn(3, 4, dtype=D).repeat(2, 1).requires_grad_(True)
    rnc_loss(zz, torch.tensor([1., 2., 3.] * 2, dtype=D)).backward()
    assert torch.isfinite(zz.grad).all()


def test_rnc_properties():
    """Every term is -log of a probability whose denominator contains the positive itself, so the
    loss is >= 0; features spaced like the labels reach the bound sum log(#ties) / N(N-1); the
    reversed order costs more."""
    y = torch.tensor([0., 1., 2., 4., 0., 1., 2., 4.], dtype=D)
    n = len(y)
    bound = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                dij = abs(y[i] - y[j])
                bound += math.log(sum(1 for k in range(n) if k != i and abs(y[i] - y[k]) == dij))
    bound /= n * (n - 1)
    ordered = (y * 1000.0)[:, None]
    assert abs(float(rnc_loss(ordered, y, 2.0)) - bound) < 1e-6
    rev = (torch.tensor([4., 2., 1., 0., 4., 2., 1., 0.], dtype=D) * 1.5)[:, None]
    assert float(rnc_loss(rev, y, 2.0)) > float(rnc_loss(y[:, None] * 1.5, y, 2.0))
    assert float(rnc_loss(torch.randn(8, 5, dtype=D), y)) >= 0
    perm = torch.randperm(n)
    z = torch.randn(8, 5, dtype=D)
    assert torch.allclose(rnc_loss(z[perm], y[perm]), rnc_loss(z, y))
    with pytest.raises(ValueError):
        rnc_loss(z[:1], y[:1])
    with pytest.raises(ValueError):
        rnc_loss(z, y[:3])
