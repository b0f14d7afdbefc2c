"""Balanced MSE (BMC, GAI, BNI; ``dirlib.losses.bmse``) against its closed forms and slow loop
references, and its priors and parameter groups."""

import math

import numpy as np
import pytest
import torch

from dirlib.losses.bmse import BalancedMSE, bmc_loss, bni_buckets, fit_gmm, gai_loss, bni_loss

D = torch.float64


def _bmc_loop(pred, y, s2):
    B, tot = len(pred), 0.0
    for i in range(B):
        logit = [-(pred[i] - y[j]) ** 2 / (2 * s2) for j in range(B)]
        m = max(logit)
        tot += -(logit[i] - (m + math.log(sum(math.exp(v - m) for v in logit))))
    return tot / B * 2 * s2


def test_bmc_equals_ce_formula_and_sigma_gradient():
    pred = [1.0, 2.5, -0.5, 4.0]
    y = [1.2, 2.0, 0.0, 3.0]
    crit = BalancedMSE("bmc", init_noise_sigma=1.3)
    loss = crit(torch.tensor(pred, dtype=D), torch.tensor(y, dtype=D))
    assert loss.item() == pytest.approx(_bmc_loop(pred, y, 1.3 ** 2), rel=1e-6)
    loss.backward()
    g = crit.noise_sigma.grad
    assert g is not None and torch.isfinite(g).all()
    # d/dsigma with the (2 s2) factor detached: 2*s2 * d CE / d sigma (central differences)
    h, s = 1e-5, 1.3
    ce = lambda sig: _bmc_loop(pred, y, sig ** 2) / (2 * sig ** 2)
    fd = 2 * s ** 2 * (ce(s + h) - ce(s - h)) / (2 * h)
    assert g.item() == pytest.approx(fd, rel=1e-4)
    # BMC with a single sample is 0 (one class)
    assert bmc_loss(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor(1.0)).item() == 0.0


def _gai_loop(pred, y, s2, means, vars_, wts):
    tot = 0.0
    for p, t in zip(pred, y):
        terms = [-0.5 * math.log(v + s2) - 0.5 * (p - m) ** 2 / (v + s2) + math.log(w)
                 for m, v, w in zip(means, vars_, wts)]
        mx = max(terms)
        lse = mx + math.log(sum(math.exp(a - mx) for a in terms))
        tot += ((p - t) ** 2 / (2 * s2) + 0.5 * math.log(s2) + lse) * 2 * s2
    return tot / len(pred)


def _bni_loop(pred, y, s2, centers, wts):
    tot = 0.0
    for p, t in zip(pred, y):
        terms = [-0.5 * (p - c) ** 2 / s2 + math.log(w) for c, w in zip(centers, wts)]
        mx = max(terms)
        lse = mx + math.log(sum(math.exp(a - mx) for a in terms))
        tot += ((p - t) ** 2 / (2 * s2) + lse) * 2 * s2
    return tot / len(pred)


def test_gai_bni_match_loops():
    pred, y = [10.0, 30.0, 55.0], [12.0, 25.0, 70.0]
    means, vars_, wts = [20.0, 50.0], [25.0, 100.0], [0.7, 0.3]
    s2 = 4.0
    t = lambda v: torch.tensor(v, dtype=D)
    got = gai_loss(t(pred), t(y), t(s2), t(means), t(vars_), t(wts)).item()
    assert got == pytest.approx(_gai_loop(pred, y, s2, means, vars_, wts), rel=1e-10)
    centers, bw = [0.0, 20.0, 40.0, 60.0], [0.1, 0.4, 0.3, 0.2]
    got = bni_loss(t(pred), t(y), t(s2), t(centers), t(bw)).item()
    assert got == pytest.approx(_bni_loop(pred, y, s2, centers, bw), rel=1e-10)
    # the module wires the same priors
    m = BalancedMSE("gai", 2.0, gmm={"means": means, "variances": vars_, "weights": wts})
    assert m(t(pred), t(y)).item() == pytest.approx(_gai_loop(pred, y, 4.0, means, vars_, wts), rel=1e-5)
    m = BalancedMSE("bni", 2.0, bucket_centers=centers, bucket_weights=bw)
    assert m(t(pred), t(y)).item() == pytest.approx(_bni_loop(pred, y, 4.0, centers, bw), rel=1e-5)


def test_priors_and_param_groups():
    rng = np.random.default_rng(0)
    lab = np.concatenate([rng.normal(20, 1, 300), rng.normal(70, 2, 100)])
    g1, g2 = fit_gmm(lab, K=2, seed=0), fit_gmm(lab, K=2, seed=0)
    for k in ("means", "variances", "weights"):
        assert g1[k].shape == (2,)
        np.testing.assert_array_equal(g1[k], g2[k])
    order = np.argsort(g1["means"])
    np.testing.assert_allclose(g1["means"][order], [20, 70], atol=0.5)
    np.testing.assert_allclose(g1["weights"][order], [0.75, 0.25], atol=0.01)
    # BNI buckets: integer centres, labels >= max_target dropped, empty buckets removed
    c, w = bni_buckets([0, 0, 1, 3, 250], max_target=5)
    np.testing.assert_array_equal(c, [0, 1, 3])
    np.testing.assert_allclose(w, [0.5, 0.25, 0.25])
    c, w = bni_buckets([0, 0, 1, 3], max_target=5, lds=True, kernel="triang", ks=3)
    np.testing.assert_array_equal(c, [0, 1, 2, 3])  # smoothed 2.5, 2, 1, 1, 0.5 -> trunc 2, 2, 1, 1, 0
    np.testing.assert_allclose(w, np.array([2, 2, 1, 1]) / 6)
    c, w = bni_buckets([0, 0, 1, 3], max_target=5, lds=True, kernel="triang", ks=3, int_quirk=False)
    np.testing.assert_allclose(w, np.array([2.5, 2, 1, 1, 0.5]) / 7)
    crit = BalancedMSE("bmc", 10.0)
    (grp,) = crit.param_groups(sigma_lr=0.01)
    assert grp["lr"] == 0.01 and grp["name"] == "noise_sigma" and grp["params"][0] is crit.noise_sigma
    fixed = BalancedMSE("bmc", 10.0, fix_sigma=True)
    assert fixed.param_groups() == [] and not fixed.noise_sigma.requires_grad
    for bad in [dict(imp="xyz"), dict(imp="gai"), dict(imp="bni"), dict(init_noise_sigma=0.0)]:
        with pytest.raises(ValueError):
            BalancedMSE(**bad)
