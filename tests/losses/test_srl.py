"""SRL (``dirlib.losses.srl``): each term against a loop reference, and the centroid bank's timing."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from dirlib.losses.srl import (SurrogateBank, complete_centroids, srl_contrastive, srl_loss,
                               srl_smoothness, srl_uniformity)

D = torch.float64


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
