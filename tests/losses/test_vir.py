"""VIR and VAE pieces (``dirlib.losses.vir``): the conjugate-prior loss, the Gaussian KL, PRM's
statistics, smoothing and calibration against loop references, and the decoders' shapes."""

import math

import numpy as np
import torch

from dirlib.losses.der import nig_nll
from dirlib.rebalancing.fds import fds_kernel
from dirlib.losses.vir import (PRM, ConjugatePriorParams, ImageDecoder, ProbabilisticFeature,
                               conjugate_to_nig, gaussian_kl, make_decoder, vir_nig_loss)

D = torch.float64


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
