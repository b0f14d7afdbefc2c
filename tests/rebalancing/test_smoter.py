"""SMOTER and SMOGN (``dirlib.rebalancing.smoter``): relevance, bumps, interpolated targets and SMOGN's
noise for distant neighbours."""

import math

import numpy as np
import torch

from dirlib.data.base import Binning
from dirlib.rebalancing.smoter import (boxplot_control_points, bumps, new_cases_per_bump, oversample,
                                  relevance_boxplot_fn, relevance_density, smoter_target)

D = torch.float64


def test_relevance_and_bumps():
    b = Binning.integer(0, 5)
    phi = relevance_density([0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 5], b)
    np.testing.assert_allclose(phi, [0.8, 0.6, 0.0, 0.6, 1.0, 0.8])
    ids, rare = bumps(phi, 0.8)
    np.testing.assert_array_equal(ids, [0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(rare, [True, False, True])
    y = np.array([10, 11, 12, 12, 13, 13, 13, 14, 15, 40.0])          # one high outlier
    pts = boxplot_control_points(y)
    assert pts[0] == (13.0, 0.0) and pts[1][1] == 1.0 and pts[1][0] == 15.0
    phi_fn = relevance_boxplot_fn(y)
    vals = phi_fn(np.array([5.0, 13.0, 14.0, 15.0, 30.0]))
    np.testing.assert_allclose(vals, [0.0, 0.0, 0.5, 1.0, 1.0])        # smoothstep midpoint = 0.5
    assert new_cases_per_bump(np.array([0, 1, 1, 1, 1, 1, 2, 2]), np.array([True, False, True])) == {0: 4, 2: 3}
    assert new_cases_per_bump(np.array([0, 1, 1]), np.array([True, False]), over=2.0) == {0: 2}


def test_smoter_target_and_interpolation():
    xa, xb = torch.tensor([[0.0, 0.0]], dtype=D), torch.tensor([[4.0, 2.0]], dtype=D)
    ya, yb = torch.tensor([1.0], dtype=D), torch.tensor([3.0], dtype=D)
    x_new = xa + 0.25 * (xb - xa)                 # on the segment: distance weighting = linear interp
    assert torch.allclose(smoter_target(x_new, xa, xb, ya, yb), torch.tensor([1.5], dtype=D))
    x_off = torch.tensor([[1.0, 2.0]], dtype=D)   # off the segment (per-dimension gaps)
    d1, d2 = math.hypot(1, 2), math.hypot(3, 0)
    assert abs(float(smoter_target(x_off, xa, xb, ya, yb)) - (d2 * 1 + d1 * 3) / (d1 + d2)) < 1e-12

    g = torch.Generator().manual_seed(7)
    x = torch.randn(12, 3, generator=g, dtype=D)
    y = torch.arange(12, dtype=D)
    sb = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2])
    is_rare = np.array([True, False, True])
    xs, ys, seed = oversample(x, y, sb, is_rare, method="smoter", gap="shared", k=5, generator=g)
    assert len(ys) == 4 + 5                       # balance: bump 0 -> 7 (4 new), bump 2 -> 7 (5 new)
    for xi, yi, si in zip(xs, ys, seed.tolist()):
        members = [j for j in range(12) if sb[j] == sb[si] and j != si]
        # the new case lies on the segment to a member of the same bump; its target interpolates
        ok = False
        for j in members:
            dx = x[j] - x[si]
            u = float((xi - x[si]) @ dx / (dx @ dx))
            if 0 <= u <= 1 and torch.allclose(x[si] + u * dx, xi, atol=1e-9):
                ok = ok or abs(float(yi) - (float(y[si]) + u * float(y[j] - y[si]))) < 1e-9
        assert ok
    xs2, ys2, seed2 = oversample(x, y, sb, is_rare, method="smoter", gap="per_dim", generator=g)
    for xi, si in zip(xs2, seed2.tolist()):
        lo = torch.minimum(x[si], x[sb == sb[si]].min(0).values)
        hi = torch.maximum(x[si], x[sb == sb[si]].max(0).values)
        assert bool(((xi >= lo - 1e-12) & (xi <= hi + 1e-12)).all())


def test_smogn_noise_for_distant_neighbours():
    """All neighbours at the same distance: maxD = median / 2 is closer than every one of them, so
    SMOGN perturbs the seed with N(0, (pert sd)^2) instead of interpolating."""
    x = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [10., 10.], [10., 11.], [11., 10.], [11., 11.], [10.5, 10.5]],
                     dtype=D)
    y = torch.tensor([0., 0.1, 0.2, 5., 5., 5., 5., 5.], dtype=D)
    sb = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    g = torch.Generator().manual_seed(8)
    xs, ys, seed = oversample(x, y, sb, np.array([True, False]), method="smogn", k=1,
                              sd_x=torch.tensor([1.0, 1.0], dtype=D), sd_y=1.0, pert=0.01, generator=g)
    assert len(ys) == 2
    dev = (xs - x[seed]).abs()
    assert bool((dev < 0.1).all()) and bool((dev > 0).any())
    assert bool(((ys - y[seed]).abs() < 0.1).all())
    # a rare bump with a single member: SMOTER has no neighbour and adds nothing, SMOGN adds noise
    sb1 = np.array([0, 1, 1, 1, 1, 1, 1, 1])
    assert len(oversample(x, y, sb1, np.array([True, False]), method="smoter")[1]) == 0
    assert len(oversample(x, y, sb1, np.array([True, False]), method="smogn", generator=g)[1]) == 6
