"""Face images at device speed: the decoded split cache, the batched augmentation against the
torchvision pipeline, and DeviceBatches in training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dirlib.data import faces
from dirlib.data import image_cache as IC

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the DIR benchmark:UserWarning")


def _reference(img_chw_uint8: torch.Tensor, p: int, i: int, j: int, flip: bool) -> torch.Tensor:
    """torchvision's RandomCrop(s, padding=p) -> RandomHorizontalFlip -> ToTensor -> Normalize, with
    the crop at (i, j) and the flip given."""
    import torchvision.transforms.functional as TF
    from PIL import Image
    s = img_chw_uint8.shape[-1]
    pil = Image.fromarray(img_chw_uint8.permute(1, 2, 0).numpy())
    pil = TF.pad(pil, p) if p else pil
    pil = TF.crop(pil, i, j, s, s)
    if flip:
        pil = TF.hflip(pil)
    return TF.normalize(TF.to_tensor(pil), [0.5] * 3, [0.5] * 3)


@pytest.mark.parametrize("p", [0, 2, 5])
def test_augment_equals_torchvision_for_the_same_draws(p):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8, generator=g)
    i, j, flip = IC.draws(len(x), p, torch.Generator().manual_seed(1))
    if p == 0:
        i, j = torch.zeros_like(i), torch.zeros_like(j)
    out = IC.augment(x, p, given=(i, j, flip))
    assert out.dtype == torch.float32 and out.shape == x.shape
    for b in range(len(x)):
        ref = _reference(x[b], p, int(i[b]), int(j[b]), bool(flip[b]))
        assert torch.equal(out[b], ref), f"image {b} (crop {int(i[b])}, {int(j[b])}, flip {bool(flip[b])})"


def test_augment_draws_follow_the_torchvision_distribution():
    """Crop offsets uniform on 0..2p, flips with probability 0.5 (chi-square / binomial tests)."""
    p, n = 5, 20000
    i, j, flip = IC.draws(n, p, torch.Generator().manual_seed(3))
    for v in (i, j):
        counts = np.bincount(v.numpy(), minlength=2 * p + 1)
        assert len(counts) == 2 * p + 1 and stats.chisquare(counts).pvalue > 1e-3
    assert stats.binomtest(int(flip.sum()), n, 0.5).pvalue > 1e-3
    # and augment itself: flipped output columns reversed relative to the unflipped crop
    x = torch.arange(3 * 4 * 4, dtype=torch.uint8).reshape(1, 3, 4, 4).repeat(2, 1, 1, 1)
    zero = torch.zeros(2, dtype=torch.long)
    out = IC.augment(x, 1, given=(zero + 1, zero + 1, torch.tensor([False, True])))
    assert torch.equal(out[1], out[0].flip(-1))


def test_split_tensor_decodes_once_and_checks_its_cache(agedb_tree, tmp_path, monkeypatch):  # noqa: F811
    root, _, _ = agedb_tree
    d = faces.load_agedb(root, img_size=16)
    store = d.train.store
    t = IC.split_tensor(store, tmp_path / "cache")
    assert t.shape == (len(store), 3, 16, 16) and t.dtype == torch.uint8
    for k in range(len(store)):   # the loader's own PIL resize
        assert torch.equal(t[k], torch.from_numpy(store.decode(k)).permute(2, 0, 1))
    monkeypatch.setattr(type(store), "decode", lambda self, i: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = IC.split_tensor(store, tmp_path / "cache")
    assert torch.equal(again, t)
    # another size is another key; a cache file of the wrong shape is an error naming it
    bad = next((tmp_path / "cache").glob("*.npy"))
    np.save(bad, np.zeros((1, 3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match=str(bad.name)):
        IC.split_tensor(store, tmp_path / "cache")


def test_device_batches_cover_every_item_and_match_the_dataset_on_eval(agedb_tree, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "cache"))
    root, _, _ = agedb_tree
    d = faces.load_agedb(root, img_size=16)
    ev = d.test.device_batches(4, False, "cpu", "cpu")
    xs, ys, idx = zip(*list(ev))
    assert torch.equal(torch.cat(idx), torch.arange(len(d.test)))
    for k in range(len(d.test)):
        assert torch.equal(torch.cat(xs)[k], d.test[k][0])
        assert float(torch.cat(ys)[k]) == float(d.test[k][1])
    tr = d.train.device_batches(3, True, "cpu", "cpu", seed=5)
    e1 = torch.cat([b[2] for b in tr])
    e2 = torch.cat([b[2] for b in tr])
    assert sorted(e1.tolist()) == list(range(len(d.train))) and not torch.equal(e1, e2)   # new order per epoch
    two = d.extra["train_two_view"].device_batches(4, True, "cpu", "cpu")
    x, _, _ = next(iter(two))
    assert x.shape == (4, 2, 3, 16, 16) and not torch.equal(x[:, 0], x[:, 1])
    with pytest.raises(ValueError, match="data_cache.*'gpu'.*cpu"):
        d.train.device_batches(4, True, "cpu", "gpu")


def test_a_run_with_the_cache_trains_and_records_it(agedb_tree, tmp_path, monkeypatch):  # noqa: F811
    from dirlib.train import RunConfig, fit
    from dirlib.methods import build_method
    monkeypatch.setenv("DIRLIB_CACHE", str(tmp_path / "cache"))
    root, _, _ = agedb_tree
    d = faces.load_agedb(root, img_size=16)
    cfg = RunConfig(dataset="agedb-dir", method="vanilla", epochs=1, batch_size=4, img_size=16,
                    device="cpu", data_cache="cpu", progress=False, diagnostics=False)
    spec = build_method(cfg, d)
    res = fit(cfg, d, spec)
    assert np.isfinite(res["test"]["all"]["mae"])
    assert cfg.to_dict()["data_cache"] == "cpu"
    # at its default the field stays out of the record, so stored records keep their hash
    assert "data_cache" not in RunConfig(dataset="agedb-dir", method="vanilla").to_dict()
    with pytest.raises(ValueError, match="data_cache"):
        RunConfig(dataset="agedb-dir", method="vanilla", data_cache="disk").validate()
