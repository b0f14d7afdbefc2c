"""Sample weighting (inverse, square-root inverse, LDS): kernels and weights against slow loop
references and by hand, and the properties the LDS paper states."""

import math

import numpy as np
import pytest
import torch

from dirlib.data.base import Binning
from dirlib.rebalancing.weighting import effective_counts, lds_kernel, sample_weights, weighted_loss


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
