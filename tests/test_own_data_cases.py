"""Your own data, the cases a new user found (the issue's list, in its order): each gave a silent
wrong number or a raw traceback before, and a correct result or an error naming the argument now."""
import numpy as np
import pytest

import dirlib
from dirlib.data import from_arrays, from_datasets
from dirlib.data.synthetic import TensorItems


def _xy(n=200, seed=0):
    rng = np.random.RandomState(seed)
    y = np.round(rng.gamma(2.0, 10.0, n), 1)
    x = np.c_[y / 50, np.sin(y / 10)] + 0.05 * rng.randn(n, 2)
    return x, y


def _split(x, y):
    return x[:120], y[:120], x[120:160], y[120:160], x[160:], y[160:]


# ------------------------------------------------------------------------ target_scale
def test_target_scale_round_trip_gives_the_same_model_and_metrics_times_k():
    x, y = _xy()
    k = 1000.0
    a = from_arrays(*_split(x, y), bin_width=5.0)
    b = from_arrays(*_split(x, y * k), bin_width=5.0 * k, target_scale=k)
    # the same model-space targets
    assert np.allclose(a.train.y.numpy(), b.train.y.numpy())
    ra = dirlib.run("vanilla", a, epochs=3, seed=0, diagnostics=False)
    rb = dirlib.run("vanilla", b, epochs=3, seed=0, diagnostics=False)
    for shot in ("all", "many", "median", "few"):
        ma, mb = ra["test"][shot]["mae"], rb["test"][shot]["mae"]
        if ma is None or ma != ma:           # a shot without test samples
            assert mb is None or mb != mb
            continue
        assert mb == pytest.approx(k * ma, rel=1e-4), shot


@pytest.mark.parametrize("k", [0, -1.0, float("nan")])
def test_target_scale_must_be_positive(k):
    x, y = _xy()
    with pytest.raises(ValueError, match="target_scale must be a number > 0"):
        from_arrays(*_split(x, y), bin_width=5.0, target_scale=k)


# ------------------------------------------------------------------------ input checks
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_labels_are_named_with_their_row(bad):
    x, y = _xy()
    y = y.copy()
    y[7] = bad
    with pytest.raises(ValueError, match=r"y_train holds 1 NaN or infinite label\(s\), the first at row 7"):
        from_arrays(*_split(x, y), bin_width=5.0)


def test_a_nan_input_in_val_or_test_is_named_not_reported_as_divergence():
    x, y = _xy()
    x = x.copy()
    x[170, 1] = np.nan           # a test row
    with pytest.raises(ValueError, match="x_test holds NaN or infinite values in 1 row"):
        from_arrays(*_split(x, y), bin_width=5.0)


def test_a_numpy_bin_width_is_a_number():
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=np.float32(5))
    assert data.binning.n_bins == from_arrays(*_split(x, y), bin_width=5.0).binning.n_bins


def test_labels_outside_the_edges_are_refused_not_clipped():
    x, y = _xy()
    with pytest.raises(ValueError, match="lie outside the edges"):
        from_arrays(*_split(x, y), edges=[0, 1, 2, 3])


def test_one_huge_integer_label_does_not_make_a_hundred_million_bins():
    x, y = _xy()
    y = np.round(y).copy()
    y[3] = 1e8
    with pytest.raises(ValueError, match="would make .* bins of one unit"):
        from_arrays(*_split(x, y))


def test_from_datasets_refuses_labels_that_disagree_with_the_items():
    x, y = _xy()
    import torch
    items = [TensorItems(torch.tensor(x[a:b], dtype=torch.float32),
                         torch.tensor(y[a:b], dtype=torch.float32)) for a, b in
             ((0, 120), (120, 160), (160, 200))]
    wrong_test = y[160:][::-1].copy()
    with pytest.raises(ValueError, match="the test items' targets disagree with test_labels"):
        from_datasets(*items, train_labels=y[:120], val_labels=y[120:160],
                      test_labels=wrong_test, bin_width=5.0)


# ------------------------------------------------------------------------ the public API
def test_api_1_public_modules_are_attributes_of_the_package():
    import subprocess
    import sys
    code = ("import dirlib; print(dirlib.data.from_arrays.__name__, dirlib.losses.__name__, "
            "dirlib.metrics.shot_metrics.__name__, 'run' in dir(dirlib))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["from_arrays", "dirlib.losses", "shot_metrics", "True"]


def test_api_2_run_takes_overwrite_as_the_error_says(tmp_path):
    from dirlib.experiment import RunExists
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0)
    dirlib.run("vanilla", data, epochs=1, seed=0, out=tmp_path, diagnostics=False)
    with pytest.raises(RunExists, match="--overwrite"):
        dirlib.run("vanilla", data, epochs=2, seed=0, out=tmp_path, diagnostics=False)
    rec = dirlib.run("vanilla", data, epochs=2, seed=0, out=tmp_path, diagnostics=False,
                     overwrite=True)
    assert rec["config"]["epochs"] == 2 and list(tmp_path.glob("run.replaced-*.json"))


def test_api_4_run_leaves_the_callers_random_state_alone():
    import random
    import torch
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0)
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    want = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    dirlib.run("vanilla", data, epochs=1, seed=7, diagnostics=False)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]


def test_api_5_the_record_names_the_base_loss_it_used():
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0)
    assert dirlib.run("vanilla", data, epochs=1, diagnostics=False)["loss_used"] == "l1"
    data = from_arrays(*_split(x, y), bin_width=5.0, main_metric="mse")
    assert dirlib.run("vanilla", data, epochs=1, diagnostics=False)["loss_used"] == "mse"


def test_api_6_shot_metrics_with_a_binning_counts_shots_per_bin():
    from dirlib.data.base import Binning
    from dirlib.metrics import shot_metrics
    rng = np.random.RandomState(0)
    train = rng.uniform(0, 10, 3000)                 # float labels: every exact value is unique
    test = rng.uniform(0, 10, 40)
    m = shot_metrics(test, test, train, binning=Binning.uniform(0.0, 10.0, 1.0))
    assert m["many"]["n"] == 40 and m["few"]["n"] == 0
