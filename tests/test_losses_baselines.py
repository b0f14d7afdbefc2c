"""Baseline losses (weighting/LDS, Focal-R, Balanced MSE, RankSim, OE, ConR) against slow,
obviously-correct loop references on tiny tensors, plus the properties the papers state."""
import math

import numpy as np
import pytest
import torch

from dirlib.data.base import Binning
from dirlib.losses.bmse import BalancedMSE, bmc_loss, bni_buckets, fit_gmm, gai_loss, bni_loss
from dirlib.losses.conr import conr_loss
from dirlib.losses.focal import focal_l1, focal_mse
from dirlib.losses.oe import ordinal_entropy, ordinal_entropy_terms
from dirlib.losses.ranksim import (TrueRanker, rank_normalised, ranksim_loss,
                                   sample_one_per_label)
from dirlib.losses.weighting import (effective_counts, lds_kernel, sample_weights,
                                     weighted_loss)

D = torch.float64


# =============================================================================== weighting / LDS
def _gaussian_filter_delta_loop(ks, sigma, truncate=4.0):
    """scipy.ndimage.gaussian_filter1d of a centred delta, written out: weights exp(-j^2/2s^2)/Z on
    j = -r..r (r = int(truncate*sigma + 0.5)), input extended by 'reflect' (d c b a | a b c d)."""
    r = int(truncate * sigma + 0.5)
    wts = [math.exp(-j * j / (2 * sigma * sigma)) for j in range(-r, r + 1)]
    Z = sum(wts)
    x = [0.0] * ks
    x[(ks - 1) // 2] = 1.0

    def at(i):  # reflect including the edge sample
        while i < 0 or i >= ks:
            i = -i - 1 if i < 0 else 2 * ks - i - 1
        return x[i]

    return [sum(wts[j + r] / Z * at(i + j) for j in range(-r, r + 1)) for i in range(ks)]


@pytest.mark.parametrize("ks,sigma", [(5, 2.0), (9, 1.0), (3, 0.7)])
def test_lds_gaussian_kernel_matches_loop(ks, sigma):
    ref = _gaussian_filter_delta_loop(ks, sigma)
    ref = [v / max(ref) for v in ref]
    k = lds_kernel("gaussian", ks, sigma)
    assert k.shape == (ks,) and k.max() == 1.0
    np.testing.assert_allclose(k, ref, rtol=1e-12, atol=1e-14)


def test_lds_other_kernels_by_hand():
    np.testing.assert_allclose(lds_kernel("triang", 5), [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])
    e = math.exp(-1.0)
    np.testing.assert_allclose(lds_kernel("laplace", 3, 1.0), [e, 1.0, e])
    for bad in [dict(kind="box"), dict(ks=4), dict(ks=0), dict(sigma=0.0)]:
        with pytest.raises(ValueError):
            lds_kernel(**{**dict(kind="gaussian", ks=5, sigma=2.0), **bad})


def _weights_loop(labels, lo, hi, reweight, lds, kernel_window, clip, int_trunc):
    """Per-integer-label counts in a dict, sqrt / clip, LDS as an explicit zero-padded sum."""
    nb = hi - lo + 1
    counts = {b: 0 for b in range(nb)}
    for v in labels:
        counts[min(max(int(round(v)) - lo, 0), nb - 1)] += 1
    if reweight == "sqrt_inv":
        counts = {b: math.sqrt(c) for b, c in counts.items()}
    elif clip is not None:
        counts = {b: min(max(c, clip[0]), clip[1]) for b, c in counts.items()}
    if lds:
        h = (len(kernel_window) - 1) // 2
        sm = {}
        for b in range(nb):
            s = 0.0
            for j in range(-h, h + 1):
                if 0 <= b + j < nb:
                    s += kernel_window[j + h] * counts[b + j]
            sm[b] = math.trunc(s) if int_trunc else s
        counts = sm
    w = [1.0 / counts[min(max(int(round(v)) - lo, 0), nb - 1)] for v in labels]
    scale = len(w) / sum(w)
    return [scale * x for x in w]


@pytest.mark.parametrize("reweight", ["inverse", "sqrt_inv"])
@pytest.mark.parametrize("lds", [False, True])
@pytest.mark.parametrize("clip", [(5, 1000), None])
@pytest.mark.parametrize("int_quirk", [True, False])
def test_sample_weights_match_loop(reweight, lds, clip, int_quirk):
    rng = np.random.default_rng(1)
    labels = np.concatenate([rng.integers(3, 9, 60), rng.integers(9, 20, 12), [25, 30]]).astype(float)
    kw = lds_kernel("gaussian", 5, 2.0)
    got = sample_weights(labels, Binning.integer(0, 22), reweight, lds=lds, ks=5, sigma=2.0,
                         clip=clip, int_quirk=int_quirk)
    ref = _weights_loop(labels, 0, 22, reweight, lds, kw, clip,
                        int_trunc=int_quirk and reweight == "inverse")
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_sample_weights_properties():
    # two clusters: bins 0-9 hold 100 samples each, bins 10-19 hold 5 each, bins 20-30 are empty
    labels = np.concatenate([np.repeat(np.arange(10), 100), np.repeat(np.arange(10, 20), 5)]).astype(float)
    b = Binning.integer(0, 30)
    for rw in ("inverse", "sqrt_inv"):
        for lds in (False, True):
            w = sample_weights(labels, b, rw, lds=lds)
            assert np.isfinite(w).all() and (w > 0).all()
            assert w.mean() == pytest.approx(1.0, rel=1e-12)
            assert w[labels >= 10].min() > w[labels < 10].max()  # rarer bins weigh more
    assert (sample_weights(labels, b, "none") == 1).all()
    with pytest.raises(ValueError):
        sample_weights(labels, b, "none", lds=True)
    with pytest.raises(ValueError):
        sample_weights(labels, b, "sqrtinv")
    # clip (age code) vs no clip (STS-B): counts 100 vs 1 -> ratio 20 with clip 5, 100 without
    lab = np.concatenate([np.zeros(100), [5.0]])
    w_clip = sample_weights(lab, b, "inverse", clip=(5, 1000))
    w_raw = sample_weights(lab, b, "inverse", clip=None)
    assert w_clip[-1] / w_clip[0] == pytest.approx(20.0)
    assert w_raw[-1] / w_raw[0] == pytest.approx(100.0)
    # INV+LDS integer truncation: by hand with the triangular kernel [0.5, 1, 0.5]
    eff = effective_counts(np.array([2.0, 1.0, 0.0, 1.0, 0.0]), "inverse", lds=True, kernel="triang",
                           ks=3, clip=None)
    np.testing.assert_array_equal(eff, [2.0, 2.0, 1.0, 1.0, 0.0])  # exact: 2.5, 2, 1, 1, 0.5
    eff = effective_counts(np.array([2.0, 1.0, 0.0, 1.0, 0.0]), "inverse", lds=True, kernel="triang",
                           ks=3, clip=None, int_quirk=False)
    np.testing.assert_allclose(eff, [2.5, 2.0, 1.0, 1.0, 0.5])


def test_weighted_loss():
    loss = torch.tensor([1.0, 2.0, 3.0])
    assert weighted_loss(loss).item() == pytest.approx(2.0)
    assert weighted_loss(loss, torch.tensor([[2.0], [0.0], [1.0]])).item() == pytest.approx(5 / 3)
    with pytest.raises(ValueError):
        weighted_loss(loss, torch.ones(2))


# =============================================================================== Focal-R
def _focal_loop(pred, y, beta, gamma, act, mse, w=None):
    tot = 0.0
    for i, (p, t) in enumerate(zip(pred.tolist(), y.tolist())):
        e = abs(p - t)
        f = (2.0 / (1.0 + math.exp(-beta * e)) - 1.0) if act == "sigmoid" else math.tanh(beta * e)
        tot += (e * e if mse else e) * f ** gamma * (1.0 if w is None else w[i])
    return tot / len(pred)


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_focal_matches_loop(act, gamma):
    g = torch.Generator().manual_seed(0)
    pred, y = torch.randn(7, generator=g, dtype=D) * 5, torch.randn(7, generator=g, dtype=D) * 5
    w = torch.rand(7, generator=g, dtype=D) + 0.5
    for fn, mse in ((focal_l1, False), (focal_mse, True)):
        for beta in (0.2, 20.0):
            got = fn(pred, y, beta=beta, gamma=gamma, activate=act).item()
            assert got == pytest.approx(_focal_loop(pred, y, beta, gamma, act, mse), rel=1e-12)
            got_w = fn(pred, y, beta=beta, gamma=gamma, activate=act, weights=w).item()
            assert got_w == pytest.approx(_focal_loop(pred, y, beta, gamma, act, mse, w.tolist()), rel=1e-12)


def test_focal_properties():
    pred = torch.tensor([0.0, 0.5, -3.0, 10.0, 40.0], dtype=D)
    y = torch.zeros(5, dtype=D)
    l1 = (pred - y).abs()
    prev = None
    for beta in (0.01, 0.2, 1.0, 5.0, 100.0):
        f = focal_l1(pred, y, beta=beta, reduction="none")
        assert (f <= l1).all()
        if prev is not None:
            assert (f >= prev).all()  # grows with beta ...
        prev = f
    # ... towards L1 (and focal MSE towards MSE)
    torch.testing.assert_close(focal_l1(pred, y, beta=1e4, reduction="none"), l1, rtol=1e-9, atol=0)
    torch.testing.assert_close(focal_mse(pred, y, beta=1e4), ((pred - y) ** 2).mean(), rtol=1e-9, atol=0)
    with pytest.raises(ValueError):
        focal_l1(pred, y[:, None])  # would silently broadcast to (B, B)
    with pytest.raises(ValueError):
        focal_l1(pred, y, activate="relu")


# =============================================================================== Balanced MSE
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


# =============================================================================== RankSim
def test_true_ranker_by_hand():
    seq = torch.tensor([[0.3, 0.1, 0.2]], dtype=D, requires_grad=True)
    r = TrueRanker.apply(seq, 1.0)
    torch.testing.assert_close(r, torch.tensor([[1 / 3, 1.0, 2 / 3]], dtype=D))
    r.backward(torch.tensor([[0.0, 1.0, 0.0]], dtype=D))
    # seq' = seq + 1*grad = [0.3, 1.1, 0.2] -> ranks [2/3, 1/3, 1]; grad = -(r - r') / (1 + 1e-8)
    torch.testing.assert_close(seq.grad, torch.tensor([[1 / 3, -2 / 3, 1 / 3]], dtype=D) / (1 + 1e-8))
    # ties: stable, the later index ranks first
    torch.testing.assert_close(rank_normalised(torch.tensor([1.0, 1.0, 0.0])), torch.tensor([2 / 3, 1 / 3, 1.0]))


def _ranksim_loop(z, y, lam):
    """The authors' per-anchor loop (ranksim.py) on an already one-per-label batch."""
    xn = torch.nn.functional.normalize(z.reshape(len(z), -1), dim=1)
    sim = xn @ xn.t()
    loss = 0
    for i in range(len(y)):
        label_ranks = rank_normalised(-(y[i] - y).abs()[None, :])
        feature_ranks = TrueRanker.apply(sim[i][None, :], lam)
        loss = loss + ((feature_ranks - label_ranks) ** 2).mean()
    return loss


@pytest.mark.parametrize("dup", [False, True])
def test_ranksim_vectorised_equals_per_anchor_loop(dup):
    g = torch.Generator().manual_seed(3)
    if dup:
        y = torch.tensor([5.0, 1.0, 5.0, 3.0, 2.0, 1.0, 7.0, 3.0, 3.0, 4.0], dtype=D)
    else:
        y = torch.tensor([5.0, 1.0, 6.0, 3.0, 2.0, 0.0, 7.0, 4.0], dtype=D)
    z = torch.randn(len(y), 3, 2, generator=g, dtype=D, requires_grad=True)
    loss = ranksim_loss(z, y, lam=2.0, generator=torch.Generator().manual_seed(11))
    (gv,) = torch.autograd.grad(loss, z)
    idx = sample_one_per_label(y, torch.Generator().manual_seed(11))
    ref = _ranksim_loop(z[idx], y[idx], 2.0)
    (gr,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gv, gr, rtol=1e-12, atol=1e-12)
    assert gv.abs().sum() > 0


def test_ranksim_zero_when_ranks_agree():
    y = torch.tensor([0.0, 1.0, 3.0, 7.0, 15.0])  # no distance ties from any anchor
    theta = 0.1  # points on an arc: cosine similarity decreases with |y_i - y_j|
    z = torch.stack([torch.cos(theta * y), torch.sin(theta * y)], 1).to(D)
    assert ranksim_loss(z, y).item() == 0.0
    perm = [4, 2, 0, 3, 1]  # invariant to a batch permutation and a rotation of the features
    assert ranksim_loss(z[perm].flip(1) * torch.tensor([1.0, -1.0], dtype=D), y[perm]).item() == 0.0
    # swapping two features breaks the agreement: the loss becomes positive
    assert ranksim_loss(z[[0, 1, 3, 2, 4]], y).item() > 0.0


def test_sample_one_per_label():
    y = torch.tensor([2.0, 1.0, 2.0, 2.0, 0.0, 1.0])
    seen = set()
    for s in range(60):
        idx = sample_one_per_label(y, torch.Generator().manual_seed(s))
        assert y[idx].tolist() == [0.0, 1.0, 2.0]
        seen.add(tuple(idx.tolist()))
        torch.testing.assert_close(idx, sample_one_per_label(y, torch.Generator().manual_seed(s)))
    assert {i[2] for i in seen} == {0, 2, 3} and {i[1] for i in seen} == {1, 5}
    torch.testing.assert_close(sample_one_per_label(torch.tensor([3.0, 1.0])), torch.tensor([0, 1]))


# =============================================================================== Ordinal Entropy
def _oe_loop(z, y, form="75fc9d5"):
    z, y = z.tolist(), y.tolist()
    labels = sorted(set(y))
    norm = lambda v: [a / math.sqrt(sum(b * b for b in v)) for a in v]
    proto = {}
    for u in labels:
        rows = [z[i] for i in range(len(y)) if y[i] == u]
        proto[u] = norm([sum(c) / len(rows) for c in zip(*rows)])
    pairs = [(labels[a], labels[b]) for a in range(len(labels)) for b in range(a + 1, len(labels))]
    div = 0.0
    if pairs:
        dy = [abs(u - v) for u, v in pairs]
        mn, mx = min(dy), max(dy)
        for (u, v), d in zip(pairs, dy):
            div += math.dist(proto[u], proto[v]) * (d - mn) / mx
        div /= len(pairs)
    t = [sum((a - b) ** 2 for a, b in zip(norm(z[i]), proto[y[i]])) for i in range(len(y))]
    t = [v if form == "4a4dd5f" else math.sqrt(v) for v in t if v > 0]   # HEAD takes the root
    return div, (sum(t) / len(t) if t else 0.0)


def test_oe_hand_computed():
    # labels 0, 1, 3 (+ a second label-0 sample); 2-d features
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]], dtype=D)
    y = torch.tensor([0.0, 1.0, 3.0, 0.0], dtype=D)
    p0 = (2 / math.sqrt(5), 1 / math.sqrt(5))  # normalize(mean((1,0), (1,1))) = normalize((1, .5))
    d01 = math.dist(p0, (0, 1))
    d03 = math.dist(p0, (-1, 0))
    d13 = math.sqrt(2)
    # |dy| = 1, 3, 2 -> (w - 1) / 3 = 0, 2/3, 1/3
    div = (0 * d01 + 2 / 3 * d03 + 1 / 3 * d13) / 3
    r2 = 1 / math.sqrt(2)
    sq = [(1 - p0[0]) ** 2 + p0[1] ** 2, (r2 - p0[0]) ** 2 + (r2 - p0[1]) ** 2]   # the two non-zero terms
    t_first = sum(sq) / 2                                  # 4a4dd5f: squared distances
    t = sum(math.sqrt(v) for v in sq) / 2                  # 75fc9d5 (HEAD, default): distances
    d, tt = ordinal_entropy_terms(z, y)
    assert d.item() == pytest.approx(div, rel=1e-12)
    assert tt.item() == pytest.approx(t, rel=1e-12)
    assert ordinal_entropy(z, y).item() == pytest.approx(t - div, rel=1e-12)
    assert ordinal_entropy(z, y, lambda_d=1e-3, lambda_t=0.5).item() == pytest.approx(0.5 * t - 1e-3 * div)
    d1, t1 = ordinal_entropy_terms(z, y, tightness_form="4a4dd5f")
    assert d1.item() == pytest.approx(div, rel=1e-12) and t1.item() == pytest.approx(t_first, rel=1e-12)
    with pytest.raises(ValueError, match="75fc9d5"):
        ordinal_entropy_terms(z, y, tightness_form="sqrt")


def test_oe_matches_loop_and_edges():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(12, 4, generator=g, dtype=D, requires_grad=True)
    y = torch.tensor([1.0, 2, 2, 5, 1, 7, 7, 7, 3, 2, 5, 9], dtype=D)
    for form in ("75fc9d5", "4a4dd5f"):
        d, t = ordinal_entropy_terms(z, y, form)
        rd, rt = _oe_loop(z.detach(), y, form)
        assert d.item() == pytest.approx(rd, rel=1e-12) and t.item() == pytest.approx(rt, rel=1e-12)
    ordinal_entropy(z, y).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    # one label: no pair -> diversity 0; all labels unique: every tightness term is 0 -> 0, no NaN
    d, t = ordinal_entropy_terms(z.detach(), torch.zeros(12, dtype=D))
    assert d.item() == 0.0 and t.item() > 0
    d, t = ordinal_entropy_terms(z.detach(), torch.arange(12, dtype=D))
    assert t.item() == 0.0 and math.isfinite(d.item())


# =============================================================================== ConR
def _conr_loop(z, y, p, w, e, tau, wts, quirk):
    n = len(y)
    q = [[a / math.sqrt(sum(b * b for b in row)) for a in row] for row in z.tolist()]
    s = [[sum(a * b for a, b in zip(q[i], q[j])) / tau for j in range(n)] for i in range(n)]
    y, p = y.tolist(), p.tolist()
    tot = 0.0
    for i in range(n):
        P = [j for j in range(n) if j != i and abs(y[i] - y[j]) <= w]
        N = [j for j in range(n) if abs(y[i] - y[j]) > w and abs(p[i] - p[j]) <= w]
        if not P or not N:
            continue
        den = sum(math.exp(s[i][j]) for j in P) + (n - len(P) if quirk else 0)
        den += sum(wts[i] * math.exp(e * abs(y[i] - y[j])) * math.exp(s[i][j]) for j in N)
        tot += wts[i] * sum(-math.log(math.exp(s[i][j]) / den) for j in P) / len(P)
    return tot / n


def test_conr_hand_computed():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=D)
    y = torch.tensor([0.0, 0.0, 3.0, 3.0], dtype=D)
    E, pw = math.e, math.exp(0.03)
    pred = torch.tensor([0.1, 0.2, 0.9, 0.8], dtype=D)
    # every anchor: one positive (sim 1/tau = 1), two negatives (sim 0, pushing weight e^{0.03})
    assert conr_loss(z, y, pred, tau=1.0).item() == pytest.approx(math.log(E + 3 + 2 * pw) - 1)
    assert conr_loss(z, y, pred, tau=1.0, keep_quirk=False).item() == pytest.approx(math.log(E + 2 * pw) - 1)
    # predictions far apart: no mis-ranked pair, no negative, loss 0
    assert conr_loss(z, y, torch.tensor([0.0, 0.0, 3.0, 3.0], dtype=D), tau=1.0).item() == 0.0
    # anchor 3 (pred 5) has no negative; anchors 0, 1 have one; anchor 2 has two
    pred = torch.tensor([0.1, 0.2, 0.9, 5.0], dtype=D)
    ref = (2 * (math.log(E + 3 + pw) - 1) + (math.log(E + 3 + 2 * pw) - 1) + 0) / 4
    assert conr_loss(z, y, pred, tau=1.0).item() == pytest.approx(ref)


@pytest.mark.parametrize("quirk", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
def test_conr_matches_loop(quirk, weighted):
    g = torch.Generator().manual_seed(7)
    yb = torch.tensor([0.0, 0.5, 2.0, 3.0, 3.2, 6.0], dtype=D)
    y = torch.cat([yb, yb])  # two views
    z = torch.randn(12, 5, generator=g, dtype=D, requires_grad=True)
    pred = y + 1.2 * torch.randn(12, generator=g, dtype=D)
    wts = torch.rand(12, generator=g, dtype=D) + 0.5 if weighted else None
    got = conr_loss(z, y, pred, weights=wts, keep_quirk=quirk)
    ref = _conr_loop(z.detach(), y, pred, 1.0, 0.01, 0.07, [1.0] * 12 if wts is None else wts.tolist(), quirk)
    assert got.item() == pytest.approx(ref, rel=1e-10)
    assert got.item() > 0
    got.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_conr_edge_rows_and_detached_pred():
    # anchor 2 has no positive at all (clean mode: its row would be log(0)); gradients stay finite
    z = torch.randn(3, 2, dtype=D, requires_grad=True)
    y = torch.tensor([0.0, 0.5, 5.0], dtype=D)
    pred = torch.tensor([0.0, 0.5, 0.6], dtype=D, requires_grad=True)
    for quirk in (True, False):
        loss = conr_loss(z, y, pred, keep_quirk=quirk)
        ref = _conr_loop(z.detach(), y, pred.detach(), 1.0, 0.01, 0.07, [1.0] * 3, quirk)
        assert loss.item() == pytest.approx(ref, rel=1e-10)
        (gz,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(gz).all()
    assert not conr_loss(z, y, pred).grad_fn is None
    assert pred.grad is None
    with pytest.raises(ValueError):
        conr_loss(z, y, pred, weights=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError):
        conr_loss(z, y[:2], pred)
