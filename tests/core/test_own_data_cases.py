"""Your own data, the cases a new user found (the issue's list, in its order): each gave a silent
wrong number or a raw traceback before, and a correct result or an error naming the argument now."""
from pathlib import Path

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


# ------------------------------------------------------------------------ content identity
def _utk_tree(root, seed_shift=0, ages=(1,) * 9 + (30,) * 30):
    from PIL import Image
    folder = root / "utkface" / "crop_part1"
    folder.mkdir(parents=True, exist_ok=True)
    for k, a in enumerate(ages):
        arr = np.random.RandomState(k + seed_shift).randint(0, 256, size=(24, 24, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{a}_0_0_20170110120000{k:03d}.jpg.chip.jpg", quality=90)
    return folder


def _first_image(folder):
    return sorted(folder.iterdir())[0]


def test_identity_replaced_images_under_the_same_names_are_other_data(tmp_path, monkeypatch):
    from dirlib import records
    from dirlib.data import faces
    from dirlib.data import image_cache as IC
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "cache"))
    _utk_tree(tmp_path / "a")
    d1 = faces.load_utkface(tmp_path / "a", img_size=16, progress=False)
    t1 = IC.split_tensor(d1.test.store)
    # every image replaced by another under the same name
    _utk_tree(tmp_path / "a", seed_shift=1000)
    d2 = faces.load_utkface(tmp_path / "a", img_size=16, progress=False)
    assert records.data_hash(d2) != records.data_hash(d1)
    t2 = IC.split_tensor(d2.test.store)
    assert not torch_equal(t1, t2)                 # the new pixels, not the cached old ones
    # another folder with the same names and other images: another cache entry
    _utk_tree(tmp_path / "b", seed_shift=5000)
    d3 = faces.load_utkface(tmp_path / "b", img_size=16, progress=False)
    assert IC.cache_key(d3.test.store.paths, 16) != IC.cache_key(d2.test.store.paths, 16)
    assert not torch_equal(IC.split_tensor(d3.test.store), t2)


def torch_equal(a, b):
    import torch
    return a.shape == b.shape and bool(torch.equal(a, b))


def test_identity_a_digest_is_reused_while_size_and_time_stay(tmp_path, monkeypatch):
    from dirlib.data import image_cache as IC
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "cache"))
    folder = _utk_tree(tmp_path / "a")
    paths = sorted(folder.iterdir())
    first = IC.file_digests(paths)
    calls = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: calls.append(self) or real(self))
    assert IC.file_digests(paths) == first and calls == []          # warm: no file read
    p = paths[0]
    p.write_bytes(p.read_bytes()[:-1] + b"\x00")                    # content and size change
    calls.clear()
    again = IC.file_digests(paths)
    assert again[0] != first[0] and again[1:] == first[1:] and len(calls) == 1


def test_identity_corrupted_cache_bytes_are_refused(tmp_path, monkeypatch):
    from dirlib.data import faces
    from dirlib.data import image_cache as IC
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "cache"))
    _utk_tree(tmp_path / "a")
    d = faces.load_utkface(tmp_path / "a", img_size=16, progress=False)
    IC.split_tensor(d.test.store)
    npy = next((tmp_path / "cache" / "images").glob("*.npy"))
    arr = np.load(npy)
    arr[0, 0, 0, 0] ^= 0xFF                                         # one byte flipped in place
    np.save(npy, arr)
    with pytest.raises(ValueError, match="is corrupted"):
        IC.split_tensor(d.test.store)


def test_identity_a_read_only_cache_decodes_in_memory_with_one_warning(tmp_path, monkeypatch):
    import warnings as W
    from dirlib.data import faces
    from dirlib.data import image_cache as IC
    # a cache root that cannot be written, even by root: a path below a regular file
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "a-file" / "cache"))
    _utk_tree(tmp_path / "a")
    IC._WARNED.clear()
    with W.catch_warnings(record=True) as caught:
        W.simplefilter("always")
        d = faces.load_utkface(tmp_path / "a", img_size=16, progress=False)
        t = IC.split_tensor(d.test.store)
        IC.split_tensor(d.val.store)
    assert t.shape[1:] == (3, 16, 16)
    msgs = [str(w.message) for w in caught if "cannot write the image cache" in str(w.message)]
    assert len(msgs) == 1


# ------------------------------------------------------------------------ unstated families
def test_defaults_on_data_of_an_unstated_kind_warn_once_with_their_sources():
    import warnings as W
    from dirlib.methods import _WARNED_FAMILY, build_method
    from dirlib.train import RunConfig
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0, name="unstated-table")
    cfg = RunConfig(dataset=data.name, method="ranksim+frobenius")
    _WARNED_FAMILY.clear()
    with W.catch_warnings(record=True) as caught:
        W.simplefilter("always")
        build_method(cfg, data)
        build_method(cfg, data)                         # once per data and method
    msgs = [str(w.message) for w in caught if "task family is not stated" in str(w.message)]
    assert len(msgs) == 1
    assert "ranksim.gamma = 100.0 (STS-B's: 0.0003; RankSim" in msgs[0]
    assert "frobenius.beta = 1.0 (STS-B's: 0.01" in msgs[0]
    # stating the family, or giving the options, silences it
    for data2, cfg2 in (
            (from_arrays(*_split(x, y), bin_width=5.0, name="stated", task_family="age"), cfg),
            (data, RunConfig(dataset=data.name, method="ranksim", method_kwargs={"ranksim.gamma": 1.0}))):
        _WARNED_FAMILY.clear()
        with W.catch_warnings(record=True) as caught:
            W.simplefilter("always")
            build_method(cfg2, data2)
        assert not [w for w in caught if "task family is not stated" in str(w.message)]


def test_api_3_a_rerun_with_other_encoder_weights_is_another_run(tmp_path):
    import torch
    from dirlib.experiment import RunExists
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0)
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU())
    r0 = dirlib.run("vanilla", data, encoder=enc, epochs=1, out=tmp_path, diagnostics=False)
    torch.manual_seed(1)
    other = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU())
    with pytest.raises(RunExists, match="encoder_weights"):
        dirlib.run("vanilla", data, encoder=other, epochs=1, out=tmp_path, diagnostics=False)
    again = dirlib.run("vanilla", data, encoder=enc, epochs=1, out=tmp_path, diagnostics=False)
    assert again["finished"] == r0["finished"]                # the same weights: the same run


def test_api_14_two_settings_of_one_method_are_two_rows_of_one_table():
    from dirlib.paper.record_tables import paired_effects, summary_table
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0, task_family="age", many_thr=15, few_thr=5)
    recs = [dirlib.run("frobenius", data, epochs=2, seed=s, diagnostics=False,
                       method_kwargs={"frobenius.beta": b}) for s in (0, 1) for b in (1.0, 0.01)]
    t = summary_table(recs)
    assert set(t["method"]) == {"frobenius [frobenius.beta=1.0]", "frobenius [frobenius.beta=0.01]"}
    assert set(t["n_seeds"]) == {2}
    eff = paired_effects([r for r in recs if r["config"]["method_kwargs"]["frobenius.beta"] == 0.01],
                         [r for r in recs if r["config"]["method_kwargs"]["frobenius.beta"] == 1.0],
                         "mae")
    assert eff["all"].n == 2


def test_api_12_reprs_are_short_and_say_what_they_are():
    from dirlib.methods.options import Default
    x, y = _xy()
    data = from_arrays(*_split(x, y), bin_width=5.0)
    r = repr(data)
    assert len(r) < 200 and r.startswith("DIRData('custom': 120 train / 40 val / 40 test")
    assert "object at 0x" not in repr(Default(1.0))


def test_api_7_8_losses_take_b_by_1_predictions_and_say_what_a_batch_of_one_does():
    import torch
    from dirlib.losses import BalancedMSE, FocalR
    p, t = torch.tensor([[1.0], [2.0], [0.5]]), torch.tensor([1.5, 2.5, 0.0])
    assert torch.allclose(FocalR()(p, t), FocalR()(p.reshape(-1), t))
    m = BalancedMSE()
    assert torch.allclose(m(p, t), m(p.reshape(-1), t))
    with pytest.warns(RuntimeWarning, match="batch of one"):
        assert float(m(torch.tensor([1.0]), torch.tensor([2.0]))) == 0.0
    assert "give it to the optimiser" in BalancedMSE.__doc__


def test_shot_metrics_class_equals_the_function_on_the_concatenated_batches():
    import torch
    from dirlib.data.base import Binning
    from dirlib.metrics import ShotMetrics, shot_metrics
    rng = np.random.RandomState(0)
    train = rng.gamma(2.0, 10.0, 2000)
    pred, target = rng.uniform(0, 60, 300), rng.uniform(0, 60, 300)
    b = Binning.uniform(0.0, 200.0, 5.0)
    m = ShotMetrics(train, binning=b)
    for i in range(0, 300, 64):
        m.update(torch.tensor(pred[i:i + 64]).reshape(-1, 1), target[i:i + 64])
    assert m.compute() == shot_metrics(pred, target, train, binning=b)
    m.reset()
    with pytest.raises(ValueError, match="no batch"):
        m.compute()
