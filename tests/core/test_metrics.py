import math
import warnings

import numpy as np
import pytest

from dirlib.data.base import Binning, ShotSpec
from dirlib.metrics import per_label_errors, regression_metrics, shot_metrics


def test_regression_metrics_by_hand():
    m = regression_metrics([1.0, 2.0, 4.0], [2.0, 2.5, 2.0])
    # errors -1, -0.5, 2
    assert m["mae"] == pytest.approx((1 + 0.5 + 2) / 3)
    assert m["mse"] == pytest.approx((1 + 0.25 + 4) / 3)
    assert m["gm"] == pytest.approx((1 * 0.5 * 2) ** (1 / 3))
    assert m["n"] == 3


def test_gm_zero_error_without_and_with_eps():
    assert regression_metrics([1.0, 2.0], [1.0, 4.0])["gm"] == 0.0   # age benchmark: no eps
    g = regression_metrics([1.0, 2.0], [1.0, 4.0], gm_eps=1e-10)["gm"]   # STS-B adds 1e-10
    assert g == pytest.approx(math.sqrt(1e-10 * 2))


def test_shot_metrics_per_sample_means_inside_shots():
    # train counts: label 10 -> 150 (many), 20 -> 50 (median), 30 -> 5 (few)
    train = np.repeat([10.0, 20.0, 30.0], [150, 50, 5])
    target = np.array([10, 10, 10, 20, 30, 30], dtype=float)
    pred = np.array([11, 10, 13, 22, 30, 36], dtype=float)
    m = shot_metrics(pred, target, train)
    assert m["all"]["mae"] == pytest.approx((1 + 0 + 3 + 2 + 0 + 6) / 6)
    assert m["many"]["mae"] == pytest.approx((1 + 0 + 3) / 3)    # per-sample, not per-label
    assert m["many"]["mse"] == pytest.approx((1 + 0 + 9) / 3)
    assert m["median"]["mae"] == pytest.approx(2.0)
    assert m["few"]["mae"] == pytest.approx(3.0)
    assert m["few"]["gm"] == 0.0
    assert m["many"]["n"] == 3 and m["median"]["n"] == 1 and m["few"]["n"] == 2


def test_empty_shot_is_nan_with_warning():
    train = np.repeat([1.0, 2.0], [200, 200])
    with pytest.warns(RuntimeWarning, match="empty"):
        m = shot_metrics([1.0, 2.5], [1.0, 2.0], train)
    assert math.isnan(m["median"]["mae"]) and math.isnan(m["few"]["gm"])
    assert m["median"]["n"] == 0
    assert m["many"]["mae"] == pytest.approx(0.25)


def test_pearson_spearman_in_percent():
    pred = np.array([0.1, 0.4, 0.35, 0.8])
    target = np.array([0.0, 0.5, 0.3, 1.0])
    m = regression_metrics(pred, target, pearson=True)
    r = np.corrcoef(pred, target)[0, 1] * 100
    assert m["pearson"] == pytest.approx(r)
    assert m["spearman"] == pytest.approx(100.0)


def test_nonfinite_predictions_raise():
    with pytest.raises(ValueError, match="diverged"):
        shot_metrics([np.nan, 1.0], [1.0, 1.0], [1.0] * 200)


def test_explicit_shot_lists_and_per_label_errors():
    b = Binning.uniform(0, 5, 0.1, float32=True)
    spec = ShotSpec(lists={"many": [0], "median": [10]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = shot_metrics([0.0, 1.5, 3.0], [0.0, 1.0, 3.0], [0.0], spec=spec, binning=b)
    assert m["many"]["n"] == 1 and m["median"]["n"] == 1 and m["few"]["n"] == 1
    assert m["median"]["mse"] == pytest.approx(0.25)
    rows = per_label_errors([0.0, 1.5, 1.0], [0.0, 1.0, 1.0], b)
    assert [r["bin"] for r in rows] == [0, 10]
    assert rows[1]["mae"] == pytest.approx(0.25) and rows[1]["n"] == 2
