"""DenseWeight's sample weights: against a slow reference on tiny labels, and against the
``denseweight`` package (PyPI 0.1.2, KDEpy's FFT KDE) on real labels: AgeDB-DIR's training ages
and STS-B-DIR's training scores, alpha 0.5 and 1 (tests/fixtures/denseweight_golden.json, made in
scratch with the package; only its outputs are committed)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dirlib.rebalancing.weighting import dense_weights

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "denseweight_golden.json")
                    .read_text())


def slow_dense_weights(y, alpha, eps=1e-6, grid_points=4096):
    """The definition, one label at a time: a Gaussian KDE with Silverman's bandwidth, min-max
    scaled over a grid of the labels +- 4 bandwidths, 1 - alpha * density clipped at eps, mean 1."""
    n = len(y)
    mean = sum(y) / n
    bw = 1.06 * math.sqrt(sum((v - mean) ** 2 for v in y) / n) * n ** -0.2

    def p(x):
        return sum(math.exp(-0.5 * ((x - v) / bw) ** 2) for v in y) / (n * bw * math.sqrt(2 * math.pi))
    lo_x, hi_x = min(y) - 4 * bw, max(y) + 4 * bw
    grid = [lo_x + (hi_x - lo_x) * i / (grid_points - 1) for i in range(grid_points)]
    g = [p(x) for x in grid]
    lo, hi = min(g), max(g)
    w = [max(1 - alpha * min(max((p(v) - lo) / (hi - lo), 0.0), 1.0), eps) for v in y]
    m = sum(w) / n
    return [v / m for v in w]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0])
def test_matches_the_slow_reference(alpha):
    y = [1.0, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 7.0, 7.5, 20.0]
    want = slow_dense_weights(y, alpha, grid_points=512)
    got = dense_weights(y, alpha=alpha, grid_points=512)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got.mean() == pytest.approx(1.0)
    if alpha > 0:        # the rarest label gets the largest weight
        assert got.argmax() == len(y) - 1


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"{c['labels']} alpha {c['alpha']}")
def test_matches_the_denseweight_package_on_real_labels(case):
    u, n = np.array(case["unique"]), np.array(case["counts"])
    y = np.repeat(u, n)
    w = dense_weights(y, alpha=case["alpha"])
    _, first = np.unique(y, return_index=True)
    ours, theirs = w[first], np.array(case["weights"])
    # the package bins the KDE on an FFT grid and reads the grid point below each label; the exact
    # density differs from it by at most 0.006 on these mean-1 weights
    assert np.abs(ours - theirs).max() < 0.01
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99999
    assert np.array_equal(np.argsort(ours[n > 20]), np.argsort(theirs[n > 20]))


def test_bad_settings_and_labels_are_refused():
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        dense_weights([1.0, 2.0], alpha=-1)
    with pytest.raises(ValueError, match="not finite"):
        dense_weights([1.0, float("nan")])
    assert np.array_equal(dense_weights([3.0, 3.0, 3.0]), np.ones(3))


def test_the_method_sets_the_weights_and_refuses_lds():
    from dirlib.data import load_synthetic
    from dirlib.methods import build_method
    from helpers import SYN, syn_cfg
    data = load_synthetic(**SYN)
    spec = build_method(syn_cfg("denseweight", method_kwargs={"denseweight.alpha": 0.5}), data)
    assert np.allclose(spec.sample_weights, dense_weights(data.train_labels, alpha=0.5))
    with pytest.raises(ValueError, match="cannot be combined"):
        build_method(syn_cfg("denseweight+lds"), data)
