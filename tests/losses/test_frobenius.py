"""Tests of the Frobenius-norm method's pieces (dirlib/losses/frobenius.py).

Every loss is compared with a slow loop reference written directly from the formulas (float64, plain
Python floats), plus the properties the paper states or the docstrings claim.
"""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from dirlib.losses.frobenius import (FrobeniusRegularizer, NormNet, OrdinalConfig, batch_prototypes,
                                     dataset_prototype_norms, fit_norm_net, label_norm_lookup,
                                     norm_alignment_loss, ordinal_kl, prototype_ordinal_entropy)


# ----------------------------------------------------------------------------------- fixtures
def toy_batch(seed=0, n=13, d=5, n_bins=6, dtype=torch.float64, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    bins = torch.randint(0, n_bins, (n,), generator=g)
    bins[:n_bins] = torch.arange(n_bins)  # every bin present
    y = bins.to(dtype) * 2.0 + 1.0       # label value of the bin
    z = (torch.rand(n, d, generator=g, dtype=dtype) * scale).requires_grad_()
    return z, y, bins


# ----------------------------------------------------------------------------------- references
def ref_prototypes(z, y, bins):
    """Loop reference: dict bin -> (prototype list, label, count)."""
    out = {}
    for b in sorted(set(bins.tolist())):
        idx = [i for i in range(len(bins)) if int(bins[i]) == b]
        c = [sum(float(z[i, k]) for i in idx) / len(idx) for k in range(z.shape[1])]
        lab = sum(float(y[i]) for i in idx) / len(idx)
        out[b] = (c, lab, len(idx))
    return out


def ref_ordinal_kl(z, y, bins, label_tau, norm_tau, label_range, norm_scale, softmax, self_pairs,
                   distance):
    protos = ref_prototypes(z, y, bins)
    keys = sorted(protos)
    m = len(keys)
    if m < 2:
        return 0.0
    norms = [math.sqrt(sum(v * v for v in protos[k][0])) for k in keys]
    labs = [protos[k][1] for k in keys]
    R = (max(labs) - min(labs)) if label_range is None else label_range
    if norm_scale in ("mean", "mean_detached"):
        mu = sum(norms) / m
        s = [v / mu for v in norms]
    elif norm_scale == "none":
        s = list(norms)
    else:
        s = [v / norm_scale for v in norms]

    def d(u):
        return abs(u) if distance == "l1" else u * u

    pairs = [(i, j) for i in range(m) for j in range(m) if self_pairs or i != j]
    lp = {(i, j): -d((labs[i] - labs[j]) / (R * label_tau)) for i, j in pairs}
    lq = {(i, j): -d((s[i] - s[j]) / norm_tau) for i, j in pairs}
    if softmax == "row":
        total = 0.0
        for i in range(m):
            row = [(a, b) for a, b in pairs if a == i]
            zp = sum(math.exp(lp[r]) for r in row)
            zq = sum(math.exp(lq[r]) for r in row)
            for r in row:
                p, q = math.exp(lp[r]) / zp, math.exp(lq[r]) / zq
                total += p * math.log(p / q)
        return total / m
    zp = sum(math.exp(v) for v in lp.values())
    zq = sum(math.exp(v) for v in lq.values())
    total = 0.0
    for r in pairs:
        p, q = math.exp(lp[r]) / zp, math.exp(lq[r]) / zq
        total += p * math.log(p / q)
    return total


def ref_oe(z, y, bins, normalize, tightness, squared, weights):
    protos = ref_prototypes(z, y, bins)
    keys = sorted(protos)
    m = len(keys)
    if m < 2:
        return 0.0

    def unit(v):
        n = math.sqrt(sum(a * a for a in v))
        return [a / max(n, 1e-12) for a in v] if normalize else list(v)

    P = {k: unit(protos[k][0]) for k in keys}
    ws, ds = [], []
    for a in range(m):
        for b in range(a + 1, m):
            ka, kb = keys[a], keys[b]
            sq = sum((u - v) ** 2 for u, v in zip(P[ka], P[kb]))
            ds.append(sq if squared else math.sqrt(sq))
            ws.append(abs(protos[ka][1] - protos[kb][1]))
    if weights == "minmax":
        lo, hi = min(ws), max(ws)
        ws = [(w - lo) / hi for w in ws]
    diversity = sum(w * dd for w, dd in zip(ws, ds)) / len(ds)
    if not tightness:
        return -diversity
    vals = []
    for i in range(z.shape[0]):
        f = unit([float(v) for v in z[i]])
        p = P[int(bins[i])]
        t = sum((a - b) ** 2 for a, b in zip(f, p))
        if t > 0:
            vals.append(math.sqrt(t))
    tight = sum(vals) / len(vals) if vals else 0.0
    return tight - diversity


# ----------------------------------------------------------------------------------- prototypes
def test_batch_prototypes_matches_loop():
    z, y, bins = toy_batch(1)
    uniq, protos, counts = batch_prototypes(z, bins)
    ref = ref_prototypes(z.detach(), y, bins)
    assert uniq.tolist() == sorted(ref)
    for j, k in enumerate(uniq.tolist()):
        assert counts[j] == ref[k][2]
        assert torch.allclose(protos[j], torch.tensor(ref[k][0], dtype=torch.float64))
    protos.sum().backward()  # differentiable
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_batch_prototypes_bad_input():
    z, y, bins = toy_batch(0)
    with pytest.raises(TypeError):
        batch_prototypes(z, bins.double())
    with pytest.raises(ValueError):
        batch_prototypes(z, bins[:-1])
    with pytest.raises(ValueError):
        batch_prototypes(z[0], bins)


# ----------------------------------------------------------------------------------- ordinal KL
KL_COMBOS = list(itertools.product(["row", "joint"], [False, True], ["l1", "squared"]))


@pytest.mark.parametrize("softmax,self_pairs,distance", KL_COMBOS)
def test_ordinal_kl_matches_loop_reference(softmax, self_pairs, distance):
    z, y, bins = toy_batch(2)
    kw = dict(label_tau=0.3, norm_tau=0.2, label_range=12.0, norm_scale="mean", softmax=softmax,
              self_pairs=self_pairs, distance=distance)
    got = ordinal_kl(z, y, bins, **kw)
    ref = ref_ordinal_kl(z.detach(), y, bins, **kw)
    assert ref > 1e-4  # a non-trivial configuration
    assert torch.allclose(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("norm_scale,label_range", [("none", 12.0), (2.5, 12.0), ("mean", None),
                                                    ("mean_detached", 7.0)])
def test_ordinal_kl_scaling_options_match_reference(norm_scale, label_range):
    z, y, bins = toy_batch(3, scale=1.0)
    kw = dict(label_tau=0.25, norm_tau=0.4, label_range=label_range, norm_scale=norm_scale,
              softmax="row", self_pairs=False, distance="l1")
    got = ordinal_kl(z, y, bins, **kw)
    ref = ref_ordinal_kl(z.detach(), y, bins, **kw)
    assert torch.allclose(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_ordinal_kl_row_equals_kl_div_batchmean():
    """The documented semantics: F.kl_div(log Q, P, reduction='batchmean') over the off-diagonal rows."""
    z, y, bins = toy_batch(4)
    got = ordinal_kl(z, y, bins, label_range=10.0, distance="l1")
    _, protos, _ = batch_prototypes(z.detach(), bins)
    ys = torch.unique(y) / (10.0 * 0.1)
    ln = protos.norm(dim=1)
    ls = ln / ln.mean() / 0.1
    m = len(ys)
    off = ~torch.eye(m, dtype=torch.bool)
    lp = (-(ys[:, None] - ys[None, :]).abs())[off].view(m, m - 1)
    lq = (-(ls[:, None] - ls[None, :]).abs())[off].view(m, m - 1)
    ref = F.kl_div(F.log_softmax(lq, 1), F.softmax(lp, 1), reduction="batchmean")
    assert torch.allclose(got, ref)


@pytest.mark.parametrize("distance", ["l1", "squared"])
def test_ordinal_kl_zero_when_scaled_norms_reproduce_labels(distance):
    """Construct z so that norm / mean(norm) / norm_tau == y / (label_range * label_tau) + const."""
    label_tau, norm_tau, R = 0.1, 0.2, 50.0
    labels = torch.tensor([3.0, 7.0, 10.0, 20.0, 21.0, 33.0], dtype=torch.float64)
    m, k, d = len(labels), 3, 4
    ybar = labels.mean()
    # l_j = c (y_j + a) gives |dl|/mean(l) = |dy|/(ybar + a); we need (ybar + a) * norm_tau = R * label_tau
    a = R * label_tau / norm_tau - ybar
    target = 0.7 * (labels + a)
    assert (target > 0).all()
    g = torch.Generator().manual_seed(0)
    dirs = F.normalize(torch.rand(m, d, generator=g, dtype=torch.float64), dim=1)
    zs, bins, ys = [], [], []
    for j in range(m):
        noise = torch.randn(k, d, generator=g, dtype=torch.float64)
        noise = noise - noise.mean(0)                 # zero-mean: the prototype is exact
        zs.append(target[j] * dirs[j] + 0.3 * noise)
        bins += [j] * k
        ys += [float(labels[j])] * k
    z = torch.cat(zs).requires_grad_()
    bins, y = torch.tensor(bins), torch.tensor(ys, dtype=torch.float64)
    for softmax, self_pairs in itertools.product(["row", "joint"], [False, True]):
        kl = ordinal_kl(z, y, bins, label_tau=label_tau, norm_tau=norm_tau, label_range=R,
                        softmax=softmax, self_pairs=self_pairs, distance=distance)
        assert abs(kl.item()) < 1e-12, (softmax, self_pairs, kl.item())
    # and a perturbed norm profile is penalised
    z2 = z.detach().clone()
    z2[bins == 2] *= 1.5
    assert float(ordinal_kl(z2, y, bins, label_tau=label_tau, norm_tau=norm_tau, label_range=R,
                            distance=distance)) > 1e-3


def test_ordinal_kl_invariances():
    z, y, bins = toy_batch(5)
    kl = ordinal_kl(z, y, bins, label_range=10.0)
    # global feature scale ("mean" normalisation)
    assert torch.allclose(kl, ordinal_kl(z * 7.3, y, bins, label_range=10.0))
    # reversing the norm profile about its mean leaves the KL unchanged (only |dl| enters)
    _, protos, _ = batch_prototypes(z.detach(), bins)
    ln = protos.norm(dim=1)
    new = 2 * ln.mean() - ln
    assert (new > 0).all()
    uniq = torch.unique(bins)
    zr = z.detach().clone()
    for j, b in enumerate(uniq.tolist()):
        zr[bins == b] *= new[j] / ln[j]
    assert torch.allclose(kl, ordinal_kl(zr, y, bins, label_range=10.0))


def test_ordinal_kl_mean_scale_gradient_is_scale_free():
    """With norm_scale='mean' (in the graph) the loss is invariant to z -> s z, so <grad, z> = 0;
    with 'mean_detached' it is not."""
    z, y, bins = toy_batch(6)
    ordinal_kl(z, y, bins, label_range=10.0, norm_scale="mean").backward()
    g = z.grad.clone()
    assert abs(float((g * z.detach()).sum())) < 1e-10 * float(g.norm() * z.detach().norm()) + 1e-14
    z.grad = None
    ordinal_kl(z, y, bins, label_range=10.0, norm_scale="mean_detached").backward()
    assert abs(float((z.grad * z.detach()).sum())) > 1e-6


def _descend(seed, distance, m=12, k=3, d=8, steps=400):
    g = torch.Generator().manual_seed(seed)
    bins = torch.arange(m).repeat_interleave(k)
    y = bins.double() * 10
    z = torch.rand(m * k, d, generator=g, dtype=torch.float64).requires_grad_()
    _, p0, _ = batch_prototypes(z.detach(), bins)
    rho0 = spearmanr(np.arange(m), p0.norm(dim=1).numpy())[0]
    opt = torch.optim.Adam([z], lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        loss = ordinal_kl(z, y, bins, label_range=10.0 * m, distance=distance)
        loss.backward()
        opt.step()
    _, p, _ = batch_prototypes(z.detach(), bins)
    return rho0, spearmanr(np.arange(m), p.norm(dim=1).numpy())[0], loss.item()


def test_gradient_descent_on_kl_orders_the_norms():
    """From random (disordered) features, Adam on the default KL alone makes the prototype norms
    monotone in the label: |Spearman| > 0.9 (the sign is not fixed by the KL, see the invariance
    test)."""
    for seed in (0, 1, 2, 4):
        rho0, rho, loss = _descend(seed, "squared")
        assert abs(rho0) < 0.3, "start should be disordered"
        assert abs(rho) > 0.9, (seed, rho0, rho, loss)
        assert loss < 1e-3


def test_l1_distance_can_stall_in_a_folded_order():
    """The measurement behind the default distance='squared' (ordinal_kl docstring): with 'l1',
    some random starts stall (seeds 0-11 of this set-up: 7 stall, 2, 4, 5, 6, 8, 9, 10;
    with 'squared' all 12 reach |Spearman| = 1);
    seed 2 is checked here, and 'squared' solves the same start."""
    rho0, rho, loss = _descend(2, "l1")
    assert abs(rho) < 0.9 and loss > 0.1, (rho0, rho, loss)
    rho0, rho, loss = _descend(2, "squared")
    assert abs(rho) > 0.9 and loss < 1e-3, (rho0, rho, loss)


def test_ordinal_kl_single_label_and_two_labels():
    z = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    bins = torch.full((5,), 4)
    y = torch.full((5,), 2.0, dtype=torch.float64)
    kl = ordinal_kl(z, y, bins)
    assert kl.item() == 0.0 and kl.requires_grad
    kl.backward()
    assert torch.isfinite(z.grad).all() and (z.grad == 0).all()
    z.grad = None
    oe = prototype_ordinal_entropy(z, y, bins)
    assert oe.item() == 0.0
    oe.backward()
    assert torch.isfinite(z.grad).all()
    reg = FrobeniusRegularizer()
    loss = reg(z, y, bins=bins)
    logs = reg.parts
    assert loss.item() == 0.0 and logs["n_labels"] == 1
    # two labels, no self pairs: one entry per row, P = Q = 1
    bins2 = torch.tensor([0, 0, 1, 1, 1])
    y2 = bins2.double()
    assert abs(ordinal_kl(z, y2, bins2).item()) < 1e-15


def test_ordinal_kl_zero_prototype_gives_finite_gradient():
    z, y, bins = toy_batch(7)
    z = z.detach().clone()
    z[bins == 0] = 0.0  # a dead (all-zero) prototype, as after a ReLU
    z.requires_grad_()
    loss = ordinal_kl(z, y, bins, label_range=10.0) + prototype_ordinal_entropy(z, y, bins)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_ordinal_kl_bad_arguments():
    z, y, bins = toy_batch(0)
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, softmax="col")
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, distance="cos")
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, norm_scale="median")
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, norm_scale=-1.0)
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, label_tau=0.0)
    with pytest.raises(ValueError):
        ordinal_kl(z, y, bins, label_range=0.0)
    with pytest.raises(ValueError):
        ordinal_kl(z, y[:-1], bins)
    with pytest.raises(TypeError):
        ordinal_kl(z, y, bins.float())


def test_ordinal_kl_low_precision_input_is_upcast():
    z, y, bins = toy_batch(8, dtype=torch.float32)
    ref = ordinal_kl(z.detach(), y, bins, label_range=10.0)
    got = ordinal_kl(z.detach().bfloat16(), y, bins, label_range=10.0)
    assert got.dtype == torch.float32
    assert torch.allclose(got, ref, rtol=0.05, atol=1e-3)


# ----------------------------------------------------------------------------------- OE
OE_COMBOS = list(itertools.product([True, False], [True, False], [False, True], ["minmax", "l1"]))


@pytest.mark.parametrize("normalize,tightness,squared,weights", OE_COMBOS)
def test_oe_matches_loop_reference(normalize, tightness, squared, weights):
    z, y, bins = toy_batch(9)
    z = z.detach().clone()
    z = torch.cat([z, torch.rand(1, z.shape[1], dtype=torch.float64)])  # a singleton bin:
    bins = torch.cat([bins, torch.tensor([17])])                         # its tightness is exactly 0
    y = torch.cat([y, torch.tensor([40.0], dtype=torch.float64)])
    z.requires_grad_()
    got = prototype_ordinal_entropy(z, y, bins, normalize=normalize, tightness=tightness,
                                    squared=squared, weights=weights)
    ref = ref_oe(z.detach(), y, bins, normalize, tightness, squared, weights)
    assert torch.allclose(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    got.backward()
    assert torch.isfinite(z.grad).all()


def test_oe_two_labels_minmax_has_no_diversity():
    """(w - min) / max: with one pair the weight is 0, as in the public code."""
    z = torch.rand(4, 3, dtype=torch.float64)
    bins = torch.tensor([0, 0, 1, 1])
    y = bins.double()
    only_t = prototype_ordinal_entropy(z, y, bins)
    t_only = ref_oe(z, y, bins, True, True, False, "minmax")
    assert abs(only_t.item() - t_only) < 1e-12
    assert prototype_ordinal_entropy(z, y, bins, tightness=False).item() == 0.0


def test_oe_is_blind_to_norms_when_normalized():
    z, y, bins = toy_batch(10)
    z = z.detach()
    s = torch.rand(z.shape[0], 1, dtype=torch.float64) + 0.5  # per-sample rescaling...
    uniq = torch.unique(bins)
    # ...identical within each bin keeps every prototype direction
    per_bin = {int(b): float(s[i]) for i, b in enumerate(uniq)}
    s = torch.tensor([per_bin[int(b)] for b in bins], dtype=torch.float64)[:, None]
    a = prototype_ordinal_entropy(z, y, bins)
    b = prototype_ordinal_entropy(z * s, y, bins)
    assert torch.allclose(a, b)


# ----------------------------------------------------------------------------------- module
def test_regularizer_combines_terms():
    z, y, bins = toy_batch(11)
    cfg = OrdinalConfig(alpha=0.3, label_range=10.0, softmax="joint", oe_squared=True)
    reg = FrobeniusRegularizer(cfg)
    loss = reg(z, y, bins=bins)
    logs = reg.parts
    kl = ordinal_kl(z, y, bins, label_range=10.0, softmax="joint")
    oe = prototype_ordinal_entropy(z, y, bins, squared=True)
    assert torch.allclose(loss, kl + 0.3 * oe)
    assert torch.allclose(logs["kl"], kl.detach()) and torch.allclose(logs["oe"], oe.detach())
    assert logs["n_labels"] == len(torch.unique(bins))
    loss.backward()
    assert torch.isfinite(z.grad).all()
    reg0 = FrobeniusRegularizer(alpha=0.0, label_range=10.0)
    loss0 = reg0(z, y, bins=bins)
    logs0 = reg0.parts
    assert torch.allclose(loss0, ordinal_kl(z, y, bins, label_range=10.0))
    assert logs0["oe"].item() == 0.0
    assert len(list(FrobeniusRegularizer().parameters())) == 0


def test_config_validation():
    with pytest.raises(ValueError):
        OrdinalConfig(alpha=-1)
    with pytest.raises(ValueError):
        OrdinalConfig(softmax="all")
    with pytest.raises(ValueError):
        OrdinalConfig(norm_scale="max")
    with pytest.raises(ValueError):
        FrobeniusRegularizer(OrdinalConfig(), alpha=2.0)
    assert OrdinalConfig().to_dict()["distance"] == "squared"


# ----------------------------------------------------------------------------------- phase 2
def test_dataset_prototype_norms():
    z = np.array([[3.0, 4.0], [3.0, -4.0], [1.0, 0.0], [0.0, 2.0]])
    bins = np.array([0, 0, 2, 2])
    norms, counts = dataset_prototype_norms(z, bins, 4)
    assert counts.tolist() == [2, 0, 2, 0]
    assert np.isclose(norms[0], 3.0) and np.isclose(norms[2], math.hypot(0.5, 1.0))
    assert np.isnan(norms[1]) and np.isnan(norms[3])
    with pytest.raises(ValueError):
        dataset_prototype_norms(z, np.array([0, 0, 4, 1]), 4)


def _sigmoid_world(w_true=2.0):
    """Norms from a known NormNet: labels 0..100, majority 20..70; out_span = 1.5 * max majority
    norm is matched by making the majority maximum sit at sigmoid = 2/3 (b = log 2 - w)."""
    S = 30.0
    b_true = math.log(2.0) - w_true
    labels = np.arange(0, 101, dtype=np.float64)
    x = (labels - 20.0) / 50.0
    norms = S / (1 + np.exp(-(w_true * x + b_true)))
    maj = (labels >= 20) & (labels <= 70)
    return labels, norms, maj, b_true, S


@pytest.mark.parametrize("init,epochs", [("logit_lsq", 300), ("random", 3000)])
def test_norm_net_recovers_known_sigmoid(init, epochs):
    labels, norms, maj, b_true, S = _sigmoid_world()
    noisy = norms.copy()
    noisy[~maj] = 999.0  # minority values must be ignored by the fit
    net, info = fit_norm_net(labels, noisy, maj, epochs=epochs, lr=0.05, init=init)
    assert info["n_majority"] == 51 and math.isclose(info["out_span"], S, rel_tol=1e-12)
    assert abs(info["weight"] - 2.0) < 0.05 and abs(info["bias"] - b_true) < 0.05, info
    pred = net.predict(labels).numpy()
    minority = ~maj
    assert np.max(np.abs(pred[minority] - norms[minority]) / norms[minority]) < 0.02
    assert info["final_loss"] < 1e-3 and info["final_loss"] <= info["initial_loss"]


def test_norm_net_buffers_saved_and_loaded():
    labels, norms, maj, _, _ = _sigmoid_world()
    net, _ = fit_norm_net(labels, norms, maj, epochs=50)
    sd = net.state_dict()
    assert {"x_lo", "x_span", "out_span"} <= set(sd)
    net2 = NormNet()
    net2.load_state_dict(sd)
    assert torch.equal(net.predict(labels), net2.predict(labels))
    assert (net.predict(np.array([-1e4, 1e4])) >= 0).all()  # non-negative, bounded
    assert (net.predict(np.array([1e4])) <= sd["out_span"]).all()


def test_fit_norm_net_is_seeded_and_restores_rng():
    labels, norms, maj, _, _ = _sigmoid_world()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, _ = fit_norm_net(labels, norms, maj, epochs=20, init="random", seed=5)
    after = torch.rand(1)
    b, _ = fit_norm_net(labels, norms, maj, epochs=20, init="random", seed=5)
    assert torch.equal(before, after)
    assert torch.equal(a.predict(labels), b.predict(labels))


def test_fit_norm_net_bad_input():
    labels, norms, maj, _, _ = _sigmoid_world()
    one = np.zeros_like(maj)
    one[30] = True
    with pytest.raises(ValueError):
        fit_norm_net(labels, norms, one)
    bad = norms.copy()
    bad[30] = np.nan
    with pytest.raises(ValueError):
        fit_norm_net(labels, bad, maj)
    with pytest.raises(ValueError):
        fit_norm_net(labels[:-1], norms, maj)
    with pytest.raises(ValueError):
        fit_norm_net(labels, norms, maj, headroom=1.0)


# ----------------------------------------------------------------------------------- phase 3
def test_norm_alignment_loss_matches_loop():
    z = torch.randn(6, 4, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64) * 3
    ref = sum((float(t[i]) - math.sqrt(sum(float(v) ** 2 for v in z[i]))) ** 2 for i in range(6)) / 6
    assert math.isclose(norm_alignment_loss(z, t).item(), ref, rel_tol=1e-12)
    ref_rel = sum(((float(t[i]) - float(z[i].norm())) / float(t[i])) ** 2 for i in range(6)) / 6
    assert math.isclose(norm_alignment_loss(z, t, relative=True).item(), ref_rel, rel_tol=1e-12)
    with pytest.raises(ValueError):
        norm_alignment_loss(z, t[:-1])


def test_label_norm_lookup():
    table = torch.tensor([1.0, 2.0, 3.0, float("nan")])
    assert label_norm_lookup(table, torch.tensor([2, 0, 2])).tolist() == [3.0, 1.0, 3.0]
    with pytest.raises(IndexError):
        label_norm_lookup(table, torch.tensor([0, 4]))
    with pytest.raises(IndexError):
        label_norm_lookup(table, torch.tensor([-1]))
    with pytest.raises(ValueError):
        label_norm_lookup(table, torch.tensor([3]))
    with pytest.raises(TypeError):
        label_norm_lookup(table, torch.tensor([0.0]))


def test_phase3_sgd_reduces_norm_gap():
    torch.manual_seed(0)
    n_bins, n, d = 8, 64, 5
    bins = torch.randint(0, n_bins, (n,))
    x = F.one_hot(bins, n_bins).float() + 0.1 * torch.randn(n, n_bins)  # the input carries the label
    enc = torch.nn.Linear(n_bins, d)
    table = torch.linspace(1.0, 4.0, n_bins)
    target = label_norm_lookup(table, bins)

    def gap():
        with torch.no_grad():
            return float((target - enc(x).norm(dim=1)).abs().mean())

    g0 = gap()
    opt = torch.optim.SGD(enc.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        norm_alignment_loss(enc(x), target).backward()
        opt.step()
    assert gap() < 0.7 * g0


def test_fit_norm_net_never_ends_above_its_start():
    """Noisy norms: the returned fit is the best seen, never worse than the least-squares start."""
    rng = np.random.RandomState(3)
    labels = np.arange(40, dtype=float)
    norms = 10 + 0.2 * labels + rng.randn(40) * 2.0
    maj = (labels > 5) & (labels < 30)
    for lr in (0.05, 0.5):
        _, info = fit_norm_net(labels, norms, maj, epochs=300, lr=lr)
        assert info["final_loss"] <= info["initial_loss"] + 1e-9
