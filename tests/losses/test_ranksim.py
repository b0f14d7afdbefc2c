"""RankSim (``dirlib.losses.ranksim``): the blackbox ranker by hand, the vectorised loss against
a per-anchor loop, and its properties."""

import pytest
import torch

from dirlib.losses.ranksim import TrueRanker, rank_normalised, ranksim_loss, sample_one_per_label

D = torch.float64


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
