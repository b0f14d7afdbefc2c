"""Ordinal Entropy (``dirlib.losses.oe``) by hand and against a slow loop reference."""

import math

import pytest
import torch

from dirlib.losses.oe import ordinal_entropy, ordinal_entropy_terms

D = torch.float64


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
