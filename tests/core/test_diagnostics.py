"""Tests of dirlib/diagnostics.py on hand-built arrays and a tiny model."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dirlib.data.base import Binning, ShotSpec
from dirlib.diagnostics import collect_features, ordinality_score, per_label_stats
from dirlib.models import build_model


class _Items(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i


def test_collect_features_matches_direct_forward_and_restores_mode():
    torch.manual_seed(0)
    model = build_model("mlp", in_dim=4, hidden=(8, 6), dropout=0.5)  # dropout: eval mode matters
    x = torch.randn(10, 4)
    y = torch.arange(10, dtype=torch.float32) / 10
    loader = DataLoader(_Items(x, y), batch_size=3, shuffle=False)
    model.train()
    z, pred, ym = collect_features(model, loader, torch.device("cpu"))
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        p_ref, z_ref = model(x)
    assert z.shape == (10, 6) and pred.shape == (10,) and ym.shape == (10,)
    assert np.allclose(z, z_ref.numpy(), atol=1e-6) and np.allclose(pred, p_ref.numpy(), atol=1e-6)
    assert np.allclose(ym, y.numpy())
    z2, _, _ = collect_features(model, loader, max_samples=4)  # device from the model; whole batches
    assert z2.shape[0] == 6
    assert not model.training


def test_collect_features_bad_items():
    model = build_model("mlp", in_dim=2, hidden=(3,))
    with pytest.raises(ValueError):
        collect_features(model, [torch.zeros(2, 2)], "cpu")
    with pytest.raises(ValueError):
        collect_features(model, [], "cpu")


def test_per_label_stats_hand_built():
    binning = Binning.integer(0, 3)                      # bins 0..3 hold labels 0..3
    labels = np.array([0, 0, 1, 1, 1, 3], dtype=float)
    z = np.array([[3, 4], [3, -4], [1, 0], [0, 1], [-1, 0], [0, 2]], dtype=float)
    pred = np.array([0.0, 1.0, 0.5, 0.5, 0.25, 1.0])     # model space, scale 2
    df = per_label_stats(z, pred, labels, binning, target_scale=2.0,
                         shots=np.array(["many", "median", "few", "few"]))
    assert list(df["bin"]) == [0, 1, 2, 3] and list(df["count"]) == [2, 3, 0, 1]
    assert np.allclose(df["label"], [0, 1, 2, 3])
    r0, r1, r2, r3 = (df.iloc[i] for i in range(4))
    assert math.isclose(r0.proto_norm, 3.0) and math.isclose(r0.mean_norm, 5.0)
    assert math.isclose(r1.proto_norm, 1.0 / 3.0) and math.isclose(r1.mean_norm, 1.0)
    assert math.isclose(r3.proto_norm, 2.0) and math.isclose(r3.mean_norm, 2.0)
    # MAE: bin 0 |0-0|,|2-0| -> 1; bin 1 |1-1|,|1-1|,|0.5-1| -> 1/6; bin 3 |2-3| -> 1
    assert math.isclose(r0.mae, 1.0) and math.isclose(r1.mae, 1 / 6) and math.isclose(r3.mae, 1.0)
    assert math.isnan(r2.proto_norm) and math.isnan(r2.mae) and math.isnan(r2.label_mean)
    assert list(df["shot"]) == ["many", "median", "few", "few"]
    # default shots from this set's bin counts
    df2 = per_label_stats(z, pred, labels, binning, shot_spec=ShotSpec(many_thr=2, few_thr=2))
    assert list(df2["shot"]) == ["median", "many", "few", "few"]
    with pytest.raises(ValueError):
        per_label_stats(z, pred, labels, binning, shots=np.array(["many"]))
    with pytest.raises(ValueError):
        per_label_stats(z[:-1], pred, labels, binning)


def test_ordinality_perfect_and_reversed():
    labels = np.arange(10.0)
    up = 2.0 + 0.5 * labels
    s = ordinality_score(labels, up)
    assert s["spearman"] == pytest.approx(1.0) and s["direction"] == 1
    assert s["adjacent_violations"] == 0 and s["discordant_fraction"] == 0.0
    assert s["adjacent_pairs"] == 9
    down = up[::-1].copy()
    r = ordinality_score(labels, down)
    assert r["spearman"] == pytest.approx(-1.0) and r["direction"] == -1
    assert r["adjacent_violations"] == 0 and r["discordant_fraction"] == 0.0
    forced = ordinality_score(labels, down, direction=1)
    assert forced["adjacent_violations"] == 9 and forced["discordant_fraction"] == 1.0
    # order of the input does not matter
    perm = np.random.default_rng(0).permutation(10)
    assert ordinality_score(labels[perm], up[perm])["adjacent_violations"] == 0


def test_ordinality_violations_hand_made():
    labels = np.array([0, 1, 2, 3, 4, 5.0])
    norms = np.array([1, 2, 1.5, 3, 2.5, 4.0])
    s = ordinality_score(labels, norms)
    assert s["direction"] == 1
    assert s["adjacent_violations"] == 2            # 2 -> 1.5 and 3 -> 2.5
    assert s["discordant_pairs"] == 2 and s["discordant_fraction"] == pytest.approx(2 / 15)
    # scipy agrees on the rank correlation
    from scipy.stats import spearmanr
    assert s["spearman"] == pytest.approx(spearmanr(labels, norms)[0])


def test_ordinality_per_shot_counts_and_nan():
    labels = np.arange(8.0)
    norms = np.array([5, 4, 1, 2, 3, 4, np.nan, 6.0])
    shots = np.array(["few", "few", "many", "many", "many", "many", "median", "median"])
    counts = np.array([3, 3, 200, 200, 200, 200, 0, 50])
    with pytest.warns(RuntimeWarning):
        s = ordinality_score(labels, norms, shots=shots, counts=counts)
    assert s["n_points"] == 7 and s["n_dropped"] == 1
    assert s["spearman_many"] == pytest.approx(1.0)
    assert math.isnan(s["spearman_few"]) and math.isnan(s["spearman_median"])  # < 3 points
    assert s["n_many"] == 4 and s["n_few"] == 2 and s["n_median"] == 1
    assert s["adjacent_violations_many"] == 0 and s["adjacent_violations_few"] == 1
    # sorted: 5,4,1,2,3,4,6 -> violations 5>4, 4>1
    assert s["direction"] == 1 and s["adjacent_violations"] == 2
    with pytest.raises(ValueError):
        ordinality_score(labels, norms[:-1])
    with pytest.raises(ValueError):
        ordinality_score(labels, norms, direction=2)


def test_ordinality_too_few_points_warns():
    with pytest.warns(RuntimeWarning):
        s = ordinality_score([1.0, 2.0], [3.0, 4.0])
    assert math.isnan(s["spearman"]) and s["adjacent_violations"] == 0
