"""Dist Loss (``dirlib.losses.distloss``): the isotonic blocks and soft sort against scipy/sklearn,
the label density, the loss against a loop reference, and its pseudo-label policies."""

import itertools

import numpy as np
import pytest
import torch

from dirlib.losses.distloss import (PseudoLabels, batch_label_counts, dist_loss,
                                    isotonic_decreasing_blocks, label_density, label_grid,
                                    pseudo_labels, soft_sort)

D = torch.float64


def test_isotonic_blocks_match_sklearn():
    from sklearn.isotonic import isotonic_regression
    rng = np.random.RandomState(4)
    for _ in range(20):
        u = rng.randn(rng.randint(1, 15))
        blocks = isotonic_decreasing_blocks(u)
        fit = np.array([u[blocks == b].mean() for b in blocks])
        np.testing.assert_allclose(fit, isotonic_regression(u, increasing=False), atol=1e-12)


def projection_on_permutahedron(z, w):
    """argmin_{mu in P(w)} |mu - z|^2, with P(w) written by Rado's theorem: for every subset S,
    sum_{i in S} mu_i <= sum of the |S| largest w, with equality for the full set (interior point)."""
    from scipy.optimize import LinearConstraint, minimize
    n = len(w)
    top = np.cumsum(np.sort(w)[::-1])
    rows = [np.isin(np.arange(n), S).astype(float) for r in range(1, n)
            for S in itertools.combinations(range(n), r)]
    ub = [top[int(r.sum()) - 1] for r in rows] + [top[-1]]
    lb = [-np.inf] * len(rows) + [top[-1]]
    res = minimize(lambda mu: 0.5 * np.sum((mu - z) ** 2), np.full(n, top[-1] / n),
                   jac=lambda mu: mu - z, hess=lambda mu: np.eye(n), method="trust-constr",
                   constraints=[LinearConstraint(np.array(rows + [np.ones(n)]), lb, ub)],
                   options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000})
    assert res.success
    return res.x


@pytest.mark.parametrize("eps", [0.05, 0.8, 2.0, 20.0])
def test_soft_sort_is_the_permutahedron_projection(eps):
    """Blondel et al. 2020: softsort_desc(theta) = P(rho / eps, theta)."""
    theta = np.array([0.3, -1.2, 2.0, 0.9])
    rho = np.arange(4, 0, -1, dtype=float)
    ref = projection_on_permutahedron(rho / eps, theta)
    got = soft_sort(torch.tensor(theta, dtype=D), eps, descending=True).numpy()
    np.testing.assert_allclose(got, ref, atol=2e-4)      # the interior-point reference's accuracy
    asc = soft_sort(torch.tensor(theta, dtype=D), eps).numpy()
    np.testing.assert_allclose(asc, -projection_on_permutahedron(rho / eps, -theta), atol=2e-4)


def test_soft_sort_limits_sum_and_gradient():
    theta = torch.tensor([3.0, -1.0, 0.5, 10.0, 2.0], dtype=D)
    hard = torch.sort(theta).values
    assert torch.allclose(soft_sort(theta, 0.01), hard)                      # gaps < 1/eps: exact
    assert torch.allclose(soft_sort(theta, 1e6), theta.mean().expand(5), atol=1e-4)
    for eps in (0.1, 1.0, 5.0):
        s = soft_sort(theta, eps)
        assert abs(float(s.sum() - theta.sum())) < 1e-9 and bool((s[1:] >= s[:-1] - 1e-12).all())
    x = torch.tensor([0.3, -1.2, 2.0, 0.9, 0.1], dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_sort(t, 0.7), (x,))


def test_label_density_and_batch_counts():
    grid = label_grid(0, 3, 1)
    np.testing.assert_allclose(grid, [0, 1, 2, 3])
    dens = label_density([0, 1, 1, 2, 2, 2, 9], grid, bw_method=0.5)     # 9 is outside the grid
    from scipy.stats import gaussian_kde
    ref = gaussian_kde(np.array([0, 1, 1, 2, 2, 2.]), bw_method=0.5)(grid)
    np.testing.assert_allclose(dens, ref / ref.sum())
    # by hand: m = B p = [.5, 1.5, 6, 2] -> mass up to label 1 lumped there (2), 6, 2
    np.testing.assert_array_equal(batch_label_counts([0.05, 0.15, 0.6, 0.2], 10), [0, 2, 6, 2])
    # rounding 1.5 -> 2 everywhere gives 8; the residual -2 is taken from a window at the mode,
    # kept inside the grid (the code's slice [-1:1] would be empty and leave 8 slots for 6)
    np.testing.assert_array_equal(batch_label_counts([0.25] * 4, 6), [1, 1, 2, 2])
    rng = np.random.RandomState(5)
    for _ in range(30):
        p = rng.rand(rng.randint(2, 30)) ** 3
        B = int(rng.randint(1, 300))
        c = batch_label_counts(p, B)
        assert c.sum() == B and (c >= 0).all()
        t = pseudo_labels(p, np.arange(len(p)), B)
        assert len(t) == B and np.all(np.diff(t) >= 0)
    # large batches follow the prior's quantiles
    p = np.exp(-0.5 * ((np.arange(50) - 20) / 6.0) ** 2)
    c = batch_label_counts(p, 512)
    assert np.abs(np.cumsum(c) / 512 - np.cumsum(p / p.sum())).max() < 0.03


def test_dist_loss_matches_loop_and_weight_quirk():
    pred = torch.tensor([2.0, 0.0, 3.0, 1.0], dtype=D, requires_grad=True)
    y = torch.tensor([1.5, 0.5, 2.0, 1.0], dtype=D)
    pl = torch.tensor([0.0, 1.0, 1.0, 4.0], dtype=D)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=D)
    l1 = lambda a, b: (a - b).abs()  # noqa: E731
    total, plain, dist = dist_loss(pred, y, pl, l1, weight=0.5, weights=w, regularization_strength=0.01)
    srt = sorted(pred.tolist())                      # gaps < 1 / eps: the soft sort is exact
    ref_plain = sum(float(w[i]) * abs(float(pred[i].detach() - y[i])) for i in range(4)) / 4
    ref_dist = sum(float(w[k]) * abs(srt[k] - float(pl[k])) for k in range(4)) / 4   # quirk: by position
    assert abs(float(plain.detach()) - ref_plain) < 1e-12 and abs(float(dist.detach()) - ref_dist) < 1e-12
    assert abs(float(total.detach()) - (ref_plain + 0.5 * ref_dist)) < 1e-12
    _, _, d2 = dist_loss(pred, y, pl, l1, weights=w, regularization_strength=0.01, sorted_weight_quirk=False)
    order = np.argsort(pred.detach().numpy())
    ref2 = sum(float(w[order[k]]) * abs(srt[k] - float(pl[k])) for k in range(4)) / 4
    assert abs(float(d2.detach()) - ref2) < 1e-12
    total.backward()
    assert torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError):
        dist_loss(pred, y, pl[:3], l1)


def test_pseudo_label_policies():
    p = PseudoLabels([0.2, 0.3, 0.5], np.array([0.0, 0.5, 1.0]), batch_size=8, incomplete="drop")
    assert p.get(5) is None and len(p.get(8)) == 8
    r = PseudoLabels([0.2, 0.3, 0.5], np.array([0.0, 0.5, 1.0]), batch_size=8, incomplete="resize")
    assert len(r.get(5)) == 5
    with pytest.raises(ValueError):
        PseudoLabels([1.0], [0.0], 4, incomplete="pad")
