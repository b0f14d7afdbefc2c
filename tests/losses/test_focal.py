"""Focal-R (``dirlib.losses.focal``) against a slow loop reference, and its properties."""

import math

import pytest
import torch

from dirlib.losses.focal import focal_l1, focal_mse

D = torch.float64


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
