"""Deep evidential regression (``dirlib.losses.der``): the NIG likelihood against Student-t, the loss
against a loop reference, and the head's constraints."""

import math

import numpy as np
import pytest
import torch

from dirlib.losses.der import NIGParams, der_loss, nig_nll, nig_reg

D = torch.float64


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
