import numpy as np
import pytest

from dirlib.data.base import (Binning, ShotSpec, assign_shots, label_shots, stsb_shot_lists,
                              check_labels)


def test_integer_bins_hold_one_label_each():
    b = Binning.integer(0, 120)
    assert b.n_bins == 121
    assert b.index([0, 1, 35, 120]).tolist() == [0, 1, 35, 120]
    np.testing.assert_allclose(b.centers[:3], [0, 1, 2])
    # the benchmark clamps labels >= 120 into the last bin
    assert b.index([130]).tolist() == [120]
    assert b.outside([130, 5]).tolist() == [True, False]


def test_uniform_bins_follow_histogram_and_close_last_bin():
    b = Binning.uniform(0, 5, 0.1)
    assert b.n_bins == 50
    y = np.array([0.0, 0.05, 0.1, 4.95, 5.0])
    np.testing.assert_array_equal(b.counts(y), np.histogram(y, bins=50, range=(0, 5))[0])
    assert b.index([5.0]).tolist() == [49]


def test_float32_bins_match_the_sts_benchmark_rule():
    # STSShotAverage._get_bin_idx: float32 edges, first edge > label, minus one; 5.0 -> 49
    edges32 = np.histogram(np.array([], dtype=np.float32), bins=50, range=(0.0, 5.0))[1]

    def ref(label):
        if label == 5.0:
            return 49
        return np.where(edges32 > np.float32(label))[0][0] - 1

    b = Binning.uniform(0, 5, 0.1, float32=True)
    labels = np.round(np.arange(0, 5.0001, 0.04), 3)
    assert b.index(labels).tolist() == [ref(v) for v in labels]
    # 0.6 falls into bin 6 in float32 but bin 5 with float64 edges: the reason for the option
    assert b.index([0.6]).tolist() == [6]
    assert Binning.uniform(0, 5, 0.1).index([0.6]).tolist() == [5]


def test_nan_labels_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Binning.integer(0, 10).index([1.0, np.nan])
    with pytest.raises(ValueError, match="non-finite label"):
        check_labels([1.0, np.inf], "train")
    with pytest.raises(ValueError, match="outside"):
        check_labels([1.0, -3.0], "train", lo=0, hi=5)


def test_shots_by_exact_label_counts_with_thresholds():
    train = np.repeat([1, 2, 3, 4], [101, 100, 20, 19])
    test = np.array([1, 2, 3, 4, 5])
    shots = assign_shots(test, train, ShotSpec())
    # > 100 many; < 20 few; 20..100 median; unseen label: few
    assert shots.tolist() == ["many", "median", "median", "few", "few"]
    shots = assign_shots(test, train, ShotSpec(many_thr=50, few_thr=50))
    assert shots.tolist() == ["many", "many", "few", "few", "few"]


def test_shots_by_bin_and_explicit_lists():
    b = Binning.uniform(0, 1, 0.5)
    train = np.r_[np.full(150, 0.1), np.full(30, 0.7)]
    assert assign_shots([0.2, 0.9], train, ShotSpec(by="bin"), b).tolist() == ["many", "median"]
    spec = ShotSpec(lists={"many": [1], "median": []})
    assert assign_shots([0.2, 0.9], train, spec, b).tolist() == ["few", "many"]
    assert label_shots(b, train, ShotSpec(by="bin")).tolist() == ["many", "median"]


def test_stsb_lists_shape():
    lists = stsb_shot_lists()
    assert len(lists["many"]) == 22 and len(lists["median"]) == 7
    assert not set(lists["many"]) & set(lists["median"])
