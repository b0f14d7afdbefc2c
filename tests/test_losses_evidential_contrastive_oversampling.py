"""The evidential, contrastive and oversampling baseline losses (RnC, DER, VIR/VAE pieces,
Dist Loss, SRL, SMOTER/SMOGN) against slow, obviously-correct loop references on tiny tensors, plus the properties the papers state."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dirlib.data.base import Binning
from dirlib.losses.der import NIGParams, der_loss, nig_nll, nig_reg
from dirlib.losses.distloss import (PseudoLabels, batch_label_counts, dist_loss,
                                    isotonic_decreasing_blocks, label_density, label_grid,
                                    pseudo_labels, soft_sort)
from dirlib.losses.fds import fds_kernel
from dirlib.losses.rnc import rnc_loss
from dirlib.losses.smoter import (boxplot_control_points, bumps, new_cases_per_bump, oversample,
                                  relevance_boxplot_fn, relevance_density, smoter_target)
from dirlib.losses.srl import (SurrogateBank, complete_centroids, srl_contrastive, srl_loss,
                               srl_smoothness, srl_uniformity)
from dirlib.losses.vir import (PRM, ConjugatePriorParams, ImageDecoder, ProbabilisticFeature,
                               conjugate_to_nig, gaussian_kl, make_decoder, vir_nig_loss)

D = torch.float64


# =============================================================================== RnC
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


# =============================================================================== DER
def test_nig_nll_is_student_t_nll():
    """Amini et al. eq. 8: the NIG marginal is St(y; gamma, beta(1+nu)/(nu alpha), 2 alpha)."""
    from scipy.stats import t as student_t
    rng = np.random.RandomState(0)
    y, g = rng.randn(20), rng.randn(20)
    nu, a, b = rng.rand(20) * 3 + 0.1, rng.rand(20) * 3 + 1.0, rng.rand(20) * 2 + 0.1
    ref = -student_t.logpdf(y, df=2 * a, loc=g, scale=np.sqrt(b * (1 + nu) / (nu * a)))
    got = nig_nll(*(torch.tensor(v, dtype=D) for v in (y, g, nu, a, b))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_der_loss_matches_loop_and_head_constraints():
    rng = np.random.RandomState(1)
    vals = [torch.tensor(v, dtype=D) for v in (rng.randn(6), rng.randn(6), rng.rand(6) + .1,
                                                 rng.rand(6) + 1.0, rng.rand(6) + .1, rng.rand(6) + .5)]
    y, g, nu, a, b, w = vals
    ref = 0.0
    for i in range(6):
        nll = (0.5 * math.log(math.pi / nu[i]) - a[i] * math.log(2 * b[i] * (1 + nu[i]))
               + (a[i] + .5) * math.log(nu[i] * (y[i] - g[i]) ** 2 + 2 * b[i] * (1 + nu[i]))
               + math.lgamma(a[i]) - math.lgamma(a[i] + .5))
        ref += float(w[i]) * (nll + 0.01 * abs(y[i] - g[i]) * (2 * nu[i] + a[i]))
    assert abs(float(der_loss(y, g, nu, a, b, 0.01, weights=w)) - ref / 6) < 1e-10
    assert torch.allclose(nig_reg(y, g, nu, a), (y - g).abs() * (2 * nu + a))
    head = NIGParams(4, softplus_beta=0.01)
    h = torch.randn(5, 4) * 50
    n_, a_, b_ = head(h)
    assert (n_ > 0).all() and (a_ > 1).all() and (b_ > 0).all()
    lin = head.linear(h)
    assert torch.allclose(n_, 100 * torch.log1p(torch.exp(0.01 * lin[:, 0])), atol=1e-4)
    with pytest.raises(ValueError):
        der_loss(y, g, nu, a - 1.0, b)


# =============================================================================== VIR / VAE
def test_conjugate_prior_loss_matches_loop():
    rng = np.random.RandomState(2)
    y, xb = torch.tensor(rng.randn(5), dtype=D), torch.tensor(rng.randn(5), dtype=D)
    n, om, w = (torch.tensor(rng.rand(5) * 3 + 2, dtype=D), torch.tensor(rng.rand(5) + .2, dtype=D),
                torch.tensor(rng.rand(5) + .5, dtype=D))
    ref = 0.0
    for i in range(5):
        nu, al, be, g = 0.0 + n[i] * w[i], 0.3 + n[i] * w[i] / 2, om[i], xb[i]
        nll = float(nig_nll(y[i], g, nu, al, be))
        ref += nll + 0.01 * abs(float(y[i] - g)) * float(2 * nu + al)
    assert abs(float(vir_nig_loss(y, xb, n, om, weights=w)) - ref / 5) < 1e-10
    g, nu, al, be = conjugate_to_nig(xb, n, om)       # evaluation: no weights
    assert torch.allclose(nu, n) and torch.allclose(al, 0.3 + n / 2) and torch.equal(be, om)
    cp = ConjugatePriorParams(3)
    nn_, oo = cp(torch.randn(4, 3))
    assert (nn_ > 2).all() and (oo > 0).all()


def test_gaussian_kl_matches_torch_distributions():
    mu, var = torch.randn(4, 3, dtype=D), torch.rand(4, 3, dtype=D) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, var.sqrt()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert torch.allclose(gaussian_kl(mu, var), ref)
    assert float(gaussian_kl(torch.zeros(2, 3), torch.ones(2, 3))) == 0.0
    assert (ProbabilisticFeature(3)(torch.randn(5, 3)) > 0).all()


def prm_stats_loop(mu, var, rows, K):
    d = len(mu[0])
    cnt = np.zeros(K)
    mean = np.zeros((K, 2 * d))
    vr = np.zeros((K, 2 * d))
    for k in range(K):
        idx = [i for i in range(len(rows)) if rows[i] == k]
        n = len(idx)
        cnt[k] = n
        if n == 0:
            continue
        for a in range(d):
            m_mu = sum(mu[i][a] for i in idx) / n
            m_var = sum(var[i][a] for i in idx) / n ** 2
            v_mu = sum(var[i][a] - m_var + mu[i][a] ** 2 - m_mu ** 2 for i in idx) / n
            mean[k, a], mean[k, d + a] = m_mu, m_var
            vr[k, a] = v_mu
            vr[k, d + a] = 0.0 if n == 1 else v_mu ** 2 * 2 / (n - 1)
    return cnt, mean, vr


def smooth_loop(col, kernel):
    """conv1d with reflect padding, written out."""
    K, h = len(col), (len(kernel) - 1) // 2

    def at(i):
        if i < 0:
            return col[-i]
        if i >= K:
            return col[2 * K - 2 - i]
        return col[i]
    return [sum(kernel[j] * at(i + j - h) for j in range(len(kernel))) for i in range(K)]


def test_prm_statistics_smoothing_and_calibration_match_loops():
    g = torch.Generator().manual_seed(3)
    K, d = 6, 2
    mu = torch.randn(14, d, generator=g, dtype=D)
    var = torch.rand(14, d, generator=g, dtype=D) + 0.1
    bins = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 3, 3, 4, 5, 5, 0])
    prm = PRM(d, n_buckets=K, ks=3, sigma=1.0, momentum=0.9).double()
    cnt, mean, vr = PRM.bucket_stats(mu, var, bins, K)
    c2, m2, v2 = prm_stats_loop(mu.tolist(), var.tolist(), bins.tolist(), K)
    np.testing.assert_allclose(cnt.numpy(), c2)
    np.testing.assert_allclose(mean.numpy(), m2, atol=1e-12)
    np.testing.assert_allclose(vr.numpy(), v2, atol=1e-12)

    prm.update_running_stats(mu, var, bins, epoch=0)          # start_update: no EMA
    np.testing.assert_allclose(prm.running_mean.numpy(), m2, atol=1e-12)
    prm.update_last_epoch_stats(1)
    k = fds_kernel("gaussian", 3, 1.0)
    for col in range(2 * d):
        kern = k if col < d else k ** 2                        # variance parts: kernel squared
        np.testing.assert_allclose(prm.smoothed_mean_last_epoch[:, col].numpy(),
                                   smooth_loop(m2[:, col], kern), atol=1e-6)
        np.testing.assert_allclose(prm.smoothed_var_last_epoch[:, col].numpy(),
                                   smooth_loop(v2[:, col], kern), atol=1e-6)
    # EMA with momentum after start_update
    mu2, var2 = mu + 1.0, var * 2
    prm.update_running_stats(mu2, var2, bins, epoch=1)
    _, m3, _ = prm_stats_loop(mu2.tolist(), var2.tolist(), bins.tolist(), K)
    np.testing.assert_allclose(prm.running_mean.numpy(), 0.1 * m3 + 0.9 * m2, atol=1e-12)

    # calibration: aliased running stats (epoch > start_update) against the smoothed snapshot
    zb, vb = torch.randn(4, d, dtype=D), torch.rand(4, d, dtype=D) + 0.2
    rb = torch.tensor([1, 3, 3, 2])
    mu_c, var_c = prm.smooth(zb, vb, rb, epoch=2)
    for i in range(4):
        r = int(rb[i])
        for a in range(d):
            vm_r, vm_s = float(prm.running_var[r, a]), float(prm.smoothed_var_last_epoch[r, a])
            if vm_r == 0:      # singleton bucket (bin 2): this dimension is left unchanged
                assert float(mu_c[i, a]) == float(zb[i, a]) and float(var_c[i, a]) == float(vb[i, a])
                continue
            f = min(max(vm_s / vm_r, 0.1), 10.0)
            exp_mu = (float(zb[i, a]) - float(prm.running_mean[r, a])) * math.sqrt(f) + float(prm.smoothed_mean_last_epoch[r, a])
            exp_var = (float(vb[i, a]) + float(prm.running_mean[r, d + a])) * math.sqrt(f) + float(prm.smoothed_mean_last_epoch[r, d + a])
            assert abs(float(mu_c[i, a]) - exp_mu) < 1e-6 and abs(float(var_c[i, a]) - exp_var) < 1e-6
    # identity before start_smooth and in eval mode; a singleton bucket (var_mu 0) is left alone
    assert prm.smooth(zb, vb, rb, epoch=0)[0] is zb
    prm.eval()
    assert prm.smooth(zb, vb, rb, epoch=5)[1] is vb
    prm.train()
    single = PRM(d, n_buckets=K, ks=3, sigma=1.0).double()
    single.update_running_stats(mu[:1], var[:1], bins[:1], epoch=0)
    single.update_last_epoch_stats(1)
    out, _ = single.smooth(mu[:1], var[:1], bins[:1], epoch=2)
    assert torch.equal(out, mu[:1])


def test_decoders_shapes():
    assert make_decoder(8, torch.zeros(5, dtype=torch.long)) is None
    assert make_decoder(8, torch.zeros(5)).forward(torch.randn(3, 8)).shape == (3, 5)
    dec = make_decoder(8, torch.zeros(3, 40, 40))
    assert isinstance(dec, ImageDecoder) and dec(torch.randn(2, 8)).shape == (2, 3, 40, 40)
    assert make_decoder(8, torch.zeros(2, 3, 32, 32))(torch.randn(2, 8)).shape == (2, 3, 32, 32)


# =============================================================================== Dist Loss
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


# =============================================================================== SRL
def test_srl_terms_match_loops():
    g = torch.Generator().manual_seed(6)
    f = torch.randn(7, 3, generator=g, dtype=D)
    labels = torch.tensor([0, 0, 2, 2, 2, 4, 1])
    sur = torch.randn(5, 3, generator=g, dtype=D)
    sur[3] = 0.0                                   # an all-zero surrogate stays a zero row
    fn = F.normalize(f, dim=1)
    c, present = complete_centroids(fn, labels, sur)
    for k in range(5):
        rows = [i for i in range(7) if int(labels[i]) == k]
        raw = torch.stack([fn[i] for i in rows]).mean(0) if rows else sur[k]
        exp = raw / raw.norm() if raw.norm() > 0 else raw
        assert torch.allclose(c[k], exp, atol=1e-12)
        assert bool(present[k]) == bool(rows)
    tau = 0.3
    ref_con = 0.0
    for i in range(7):
        logits = [float(fn[i] @ c[k]) / tau for k in range(5)]
        ref_con += -(logits[int(labels[i])] - math.log(sum(math.exp(v) for v in logits)))
    assert abs(float(srl_contrastive(f, labels, c, tau)) - ref_con / 7) < 1e-10
    pts = F.normalize(torch.randn(9, 3, generator=g, dtype=D), dim=1)
    ref_uni = 1 - sum(max(float(c[k] @ pts[p]) for k in range(5)) for p in range(9)) / 9
    assert abs(float(srl_uniformity(c, pts)) - ref_uni) < 1e-10
    lens = [float(c[k + 1] @ c[k]) for k in range(4)]
    ref_smo = -sum(lens) + 0.1 * float(np.var(lens, ddof=1))
    assert abs(float(srl_smoothness(c)) - ref_smo) < 1e-10
    total, parts = srl_loss(f, labels, sur, pts, tau, w1=2.0, w2=3.0, w3=0.5)
    assert abs(float(total) - (2 * ref_con / 7 + 3 * ref_uni + 0.5 * ref_smo)) < 1e-10


def test_srl_contrastive_centroids_detached_and_bank_timing():
    f = torch.randn(6, 3, dtype=D, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    sur = torch.zeros(3, 3, dtype=D)
    fn = F.normalize(f, dim=1)
    c, _ = complete_centroids(fn, labels, sur)
    c.retain_grad()
    srl_contrastive(f, labels, c, 0.3).backward()
    assert c.grad is None and f.grad is not None and torch.isfinite(f.grad).all()
    bank = SurrogateBank(3, 2, momentum=0.9)
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    bank.update(feats, torch.tensor([0, 0, 2]), epoch=0)      # start: no EMA
    assert torch.all(bank.surrogate() == 0)                   # code: zeros during epochs 0 and 1
    assert torch.allclose(bank.running_mean, torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
    bank.update(torch.tensor([[0.0, 4.0]]), torch.tensor([0]), epoch=1)
    assert torch.allclose(bank.surrogate()[0], torch.tensor([1.8, 0.4]))
    assert torch.allclose(bank.surrogate()[2], torch.tensor([0.0, 2.0]))   # absent: kept
    eager = SurrogateBank(3, 2, delay_quirk=False)
    eager.update(feats, torch.tensor([0, 0, 2]), epoch=0)
    assert torch.allclose(eager.surrogate()[0], torch.tensor([2.0, 0.0]))


# =============================================================================== SMOTER / SMOGN
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
