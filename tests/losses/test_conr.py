"""ConR (``dirlib.losses.conr``) by hand and against a slow loop reference, with and without its
upstream denominator quirk."""

import math

import pytest
import torch

from dirlib.losses.conr import conr_loss

D = torch.float64


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
