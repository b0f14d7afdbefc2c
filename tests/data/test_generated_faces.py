"""End-to-end checks of the face-age loaders on tiny generated image trees.

AgeDB / IMDB-WIKI images cannot be had here, so the AgeDB layout is rebuilt in ``tmp_path`` from
~30 REAL rows of ``agedb.csv`` (all three splits) with small generated JPEGs at the exact relative
paths. The real CSV is read from ``$DIRLIB_DATA`` or, failing that, ``../shared/data``; when
neither has it, those tests fall back to synthetic rows in the same format (marked in the test
id). Everything else uses only generated files. Runs in a few seconds.
"""
from __future__ import annotations

import pickle
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from dirlib.data.base import DataNotFoundError
from dirlib.data import faces
from helpers import write_jpeg as _jpeg

# the 30-row CSVs written here are not the benchmark's file: the loader warns, as it should
pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the DIR benchmark:UserWarning")


def _rows_of(rows, split):
    return [r for r in rows if r.endswith("," + split)]


# --------------------------------------------------------------------------------------------
# AgeDB layout end to end
# --------------------------------------------------------------------------------------------
def test_agedb_end_to_end(agedb_tree):
    root, rows, real = agedb_tree
    with pytest.warns(UserWarning, match="differs from the DIR benchmark"):
        d = faces.load_agedb(root, img_size=32)
    assert d.info["checksum_matches_benchmark"] is False
    assert d.name == "agedb-dir" and d.model == "resnet18" and d.model_kwargs == {"img_size": 32}
    for split in ("train", "val", "test"):
        want = _rows_of(rows, split)
        ds = getattr(d, split)
        assert len(ds) == len(want) == 10
        np.testing.assert_array_equal(getattr(d, f"{split}_labels"), [float(r.split(",")[0]) for r in want])
        for i in range(len(ds)):
            x, y, idx = ds[i]
            assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and idx == i
            assert float(y) == float(want[i].split(",")[0]) and y.dtype == torch.float32
            assert -1 <= float(x.min()) and float(x.max()) <= 1
            assert Path(ds.store.paths[i]) == root / "agedb-dir" / want[i].split(",")[1]
    loader = torch.utils.data.DataLoader(d.train, batch_size=4, shuffle=True)
    xb, yb, ib = next(iter(loader))
    assert xb.shape == (4, 3, 32, 32) and yb.shape == (4,) and ib.shape == (4,)


def test_train_augmentation_matches_torchvision_pipeline(agedb_tree):
    """Same seed -> same pixels as the benchmark's PIL pipeline (padding 16*32/224 -> 2)."""
    import torchvision.transforms as T
    from PIL import Image

    root, _, _ = agedb_tree
    d = faces.load_agedb(root, img_size=32)
    assert d.train.padding == 2 == d.info["crop_padding"]
    tf = T.Compose([T.Resize((32, 32)), T.RandomCrop(32, padding=2), T.RandomHorizontalFlip(),
                    T.ToTensor(), T.Normalize([.5] * 3, [.5] * 3)])
    for seed in range(8):
        torch.manual_seed(seed)
        ours = d.train[seed % len(d.train)][0]
        torch.manual_seed(seed)
        ref = tf(Image.open(d.train.store.paths[seed % len(d.train)]).convert("RGB"))
        assert torch.equal(ours, ref)
    ev = T.Compose([T.Resize((32, 32)), T.ToTensor(), T.Normalize([.5] * 3, [.5] * 3)])
    assert torch.equal(d.test[2][0], ev(Image.open(d.test.store.paths[2]).convert("RGB")))
    assert torch.equal(d.train_eval[2][0], ev(Image.open(d.train.store.paths[2]).convert("RGB")))


def test_augmentation_views_and_determinism(agedb_tree):
    root, _, _ = agedb_tree
    d = faces.load_agedb(root, img_size=32)
    torch.manual_seed(0)
    draws = [d.train[0][0] for _ in range(10)]
    assert any(not torch.equal(draws[0], x) for x in draws[1:])  # augmentation changes pixels
    assert torch.equal(d.val[0][0], d.val[0][0]) and torch.equal(d.train_eval[0][0], d.train_eval[0][0])
    two = d.extra["train_two_view"]
    assert d.extra["two_view"] is True and two.store is d.train.store
    x, y, idx = two[1]
    assert x.shape == (2, 3, 32, 32) and float(y) == d.train_labels[1] and idx == 1
    torch.manual_seed(1)
    pairs = [two[1][0] for _ in range(5)]
    assert any(not torch.equal(p[0], p[1]) for p in pairs)  # views are independent draws
    ev2 = d.val.with_views(2)[0][0]
    assert torch.equal(ev2[0], ev2[1]) and torch.equal(ev2[0], d.val[0][0])
    with pytest.raises(ValueError, match="n_views"):
        d.train.with_views(0)


def test_cache_modes_agree_and_pickle(agedb_tree):
    root, _, _ = agedb_tree
    plain = faces.load_agedb(root, img_size=24)
    full = faces.load_agedb(root, img_size=24, cache=True, progress=False)
    lazy = faces.load_agedb(root, img_size=24, cache="lazy")
    assert full.test.store._have.all() and not lazy.test.store._have.any()
    for i in range(len(plain.test)):
        a = plain.test[i][0]
        assert torch.equal(a, full.test[i][0]) and torch.equal(a, lazy.test[i][0])
    assert lazy.test.store._have.all()
    clone = pickle.loads(pickle.dumps(full.train))
    assert torch.equal(clone.without_augmentation()[3][0], full.train_eval[3][0])
    with pytest.raises(ValueError, match="cache"):
        faces.load_agedb(root, cache="yes")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
@pytest.mark.parametrize("cache", [False, True])
def test_corrupt_jpeg_names_the_file(agedb_tree, kind, cache):
    root, rows, _ = agedb_tree
    victim = _rows_of(rows, "test")[4].split(",")[1]
    path = root / "agedb-dir" / victim
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a jpeg at all" * 20, "truncated": data[: len(data) // 3],
                      "empty": b""}[kind])
    if cache:
        with pytest.raises(faces.ImageDecodeError, match=victim.replace(".", r"\.")):
            faces.load_agedb(root, img_size=32, cache=True, progress=False)
        return
    d = faces.load_agedb(root, img_size=32)
    d.test[3]  # the others still decode
    with pytest.raises(faces.ImageDecodeError, match=victim.replace(".", r"\.")):
        d.test[4]


def test_missing_images_say_where_to_get_them(agedb_tree, tmp_path):
    root, rows, _ = agedb_tree
    with pytest.raises(DataNotFoundError, match=r"(?s)image root .*elsewhere.*password.*ibug\.doc\.ic\.ac\.uk"):
        faces.load_agedb(root, img_root=tmp_path / "elsewhere")
    first = root / "agedb-dir" / rows[0].split(",")[1]
    later = root / "agedb-dir" / _rows_of(rows, "val")[2].split(",")[1]
    later.unlink()
    # every image is read once at load (the data's identity is their content): a missing one is
    # named then, with where to get it
    with pytest.raises(DataNotFoundError, match=rf"(?s){later.name}.*ibug"):
        faces.load_agedb(root, img_size=32)
    first.unlink()
    with pytest.raises(DataNotFoundError, match=rf"(?s){first.name}.*first row.*ibug"):
        faces.load_agedb(root)
    with pytest.raises(DataNotFoundError, match=r"(?s)agedb\.csv.*github\.com/YyzHarry"):
        faces.load_agedb(tmp_path / "agedb-dir")  # a data dir without agedb-dir/agedb.csv


@pytest.mark.parametrize("line,content,match", [
    (3, "31,AgeDB/x.jpg", "expected 3 columns"),
    (5, "thirty,AgeDB/x.jpg,train", "unparsable age"),
    (2, "-4,AgeDB/x.jpg,train", "invalid age"),
    (4, "31,AgeDB/x.jpg,training", "split must be"),
    (6, "31,,val", "empty path"),
])
def test_malformed_csv_row_names_file_and_line(agedb_tree, line, content, match):
    root, rows, _ = agedb_tree
    csv_path = root / "agedb-dir" / "agedb.csv"
    lines = csv_path.read_text().splitlines()
    lines[line - 1] = content
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"agedb\.csv:{line}: {match}"):
        faces.load_agedb(root)


def test_imdb_wiki_end_to_end(tmp_path):
    folder = tmp_path / "imdb-wiki-dir"
    folder.mkdir()
    rows = []
    for k in range(12):
        db = "imdb_crop" if k % 2 == 0 else "wiki_crop"
        age = [25, 40, 130, 7][k % 4]  # 130: above the 0..120 bins, clamped into bin 120
        rel = f"{db}/{k:02d}/nm{k:07d}_rm{k}_1970-1-1_{1970 + age}.jpg"
        rows.append(f"{age},{rel},{('train', 'train', 'val', 'test')[k % 4]}")
        _jpeg(folder / rel, seed=100 + k, size=(40, 40))
    (folder / "imdb_wiki.csv").write_text("age,path,split\n" + "\n".join(rows) + "\n")
    d = faces.load_imdb_wiki(tmp_path, img_size=16)
    assert d.name == "imdb-wiki-dir" and (len(d.train), len(d.val), len(d.test)) == (6, 3, 3)
    assert d.info["checksums"]["imdb_wiki.csv"] and "checksum_matches_benchmark" not in d.info
    assert d.val_labels.tolist() == [130.0] * 3 and d.binning.index(d.val_labels).tolist() == [120] * 3
    x, y, _ = d.val[1]
    assert x.shape == (3, 16, 16) and float(y) == 130.0
    assert d.train.padding == 1
    with pytest.raises(DataNotFoundError, match=r"(?s)data\.vision\.ee\.ethz\.ch.*imdb_crop\.tar.*wiki_crop\.tar"):
        faces.load_imdb_wiki(tmp_path, img_root=tmp_path / "none")


# --------------------------------------------------------------------------------------------
# UTKFace names, the balanced split, a tiny UTKFace tree
# --------------------------------------------------------------------------------------------
def test_parse_utkface_name():
    p = faces.parse_utkface_name("some/dir/100_1_0_20170110183726390.jpg.chip.jpg")
    assert p == {"age": 100, "gender": 1, "race": 0,
                 "datetime": datetime(2017, 1, 10, 18, 37, 26, 390000)}
    assert faces.parse_utkface_name("61_1_20170109142408075.jpg.chip.jpg")["race"] is None
    q = faces.parse_utkface_name("61_3_20170109150557335.jpg.chip.jpg")
    assert q["age"] == 61 and q["race"] == 3 and q["gender"] is None
    r = faces.parse_utkface_name("14_0_0_2017011022340900.jpg.chip.jpg")  # 16-digit stamp
    assert r["age"] == 14 and r["datetime"] is None
    assert faces.parse_utkface_name("25_0_1_20171301000000000.jpg")["datetime"] is None  # month 13
    for bad in ("abc.jpg", "25_0.jpg.chip.jpg", "25_2_1_20170110183726390.jpg.chip.jpg",
                "25_0_7_20170110183726390.jpg.chip.jpg", "25_0_1_2017x.jpg", "25_0_1_20170110183726390.png",
                "-3_0_1_20170110183726390.jpg", "1_2_3_4_5.jpg"):
        assert faces.parse_utkface_name(bad) is None, bad


def _reference_split(ages, seed, max_size):
    """The benchmark's procedure, step by step on a list of names (global RNG, restored after)."""
    names = np.array([f"img{i:05d}" for i in range(len(ages))], dtype=object)
    state = random.getstate()
    try:
        random.seed(seed)
        val, test = [], []
        for value in range(121):
            cur = names[np.asarray(ages) == value]
            random.shuffle(cur)
            size = min(len(cur) // 3, max_size)
            val += list(cur[:size])
            test += list(cur[size:2 * size])
    finally:
        random.setstate(state)
    lookup = {**{n: "val" for n in val}, **{n: "test" for n in test}}
    return np.array([lookup.get(n, "train") for n in names])


@pytest.mark.parametrize("seed,max_size", [(666, 30), (666, 10), (1, 3)])
def test_make_balanced_split_matches_reference(seed, max_size):
    rs = np.random.RandomState(seed)
    ages = np.concatenate([rs.randint(0, 125, size=600), rs.randint(20, 40, size=900), [0, 0, 121, 150]])
    rs.shuffle(ages)
    split = faces.make_balanced_split(ages, seed=seed, max_size=max_size)
    np.testing.assert_array_equal(split, _reference_split(ages, seed, max_size))
    for a in np.unique(ages):
        n = (ages == a).sum()
        nv, nt = ((split == "val") & (ages == a)).sum(), ((split == "test") & (ages == a)).sum()
        assert nv == nt == (min(n // 3, max_size) if a <= 120 else 0)


def test_make_balanced_split_leaves_global_rng_and_rejects_bad_ages():
    random.seed(5)
    expect = random.random()
    random.seed(5)
    faces.make_balanced_split([3, 3, 3, 4, 4, 4, 4])
    assert random.random() == expect
    for bad in ([3, 4.5], [3, -1], [np.nan, 3]):
        with pytest.raises(ValueError, match="non-negative integers"):
            faces.make_balanced_split(bad)
    with pytest.raises(ValueError, match="val_frac"):
        faces.make_balanced_split([3, 3, 3], val_frac=1)


def test_tiny_utkface_tree(tmp_path):
    folder = tmp_path / "utkface" / "crop_part1"
    ages = [1] * 9 + [2] * 5 + [30] * 40 + [80] * 2
    for k, a in enumerate(ages):
        _jpeg(folder / f"{a}_{k % 2}_{k % 5}_201701{10 + k % 20:02d}120000{k % 1000:03d}.jpg.chip.jpg",
              seed=k, size=(50, 50))
    _jpeg(folder / "not_a_face_name.jpg", seed=999, size=(50, 50))
    with pytest.warns(UserWarning, match="1 UTKFace file name"):
        d = faces.load_utkface(tmp_path, img_size=20, progress=False)
    assert d.train.store._have.all()  # cache=True decodes up front
    # per age: 9 -> 3/3/3, 5 -> 1/1/3, 40 -> 10/10/20 (max_size 10), 2 -> 0/0/2
    assert (len(d.train), len(d.val), len(d.test)) == (3 + 3 + 20 + 2, 14, 14)
    assert d.info["n_test_ages"] == 3 and len(d.info["checksums"]["sorted_file_names"]) == 64
    x, y, _ = d.test[0]
    assert x.shape == (3, 20, 20) and float(y) == 1.0
    with pytest.raises(DataNotFoundError, match=r"(?s)crop_part1.*susanqq\.github\.io/UTKFace"):
        faces.load_utkface(tmp_path / "utkface")
