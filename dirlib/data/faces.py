"""Face-age DIR datasets: UTKFace-DIR (ours), AgeDB-DIR and IMDB-WIKI-DIR (Yang et al., ICML 2021).

* :func:`load_agedb` / :func:`load_imdb_wiki` read the benchmark's official split CSV
  (``age,path,split``; ``agedb-dir/data/agedb.csv``, ``imdb-wiki-dir/data/imdb_wiki.csv`` of
  ``YyzHarry/imbalanced-regression``) and an image root (default: the CSV's folder) holding the
  images at the CSV's relative paths. The images cannot be redistributed; a missing root or file
  raises :class:`DataNotFoundError` saying where to get them.
* :func:`load_utkface` builds **UTKFace-DIR**, our stand-in for AgeDB-DIR on machines without
  AgeDB: UTKFace ``crop_part1`` (9,780 faces, ages 1..110) split with the benchmark's own
  balanced-val/test protocol (:func:`make_balanced_split`) but ``max_size=10`` instead of 30
  (UTKFace part 1 has fewer images per age). File names are sorted before splitting.

Protocol facts kept from the benchmark:

* Split (``agedb-dir/data/preprocess_agedb.py::make_balanced_testset``): the RNG is seeded
  **once** (``random.seed(666)``), then for every integer age 0..120 in increasing order the
  items of that age (in file order) are shuffled with ``random.shuffle``;
  ``curr = min(n // 3, max_size)``; the first ``curr`` go to val, the next ``curr`` to test, the
  rest (and every age outside 0..120) to train. Verified: applied to the rows of ``agedb.csv``
  in file order it reproduces the published AgeDB-DIR split column exactly (all 16,488 rows);
  seeding per age or sorting by path does not (61 % agreement). On UTKFace crop_part1 with
  ``max_size=10`` it gives 8,086 / 847 / 847 with 94 test ages; by the 100/20 rule on exact ages
  its test shots are many 290 / median 440 / few 117, and 22 of the 121 age bins have no
  training image. The AgeDB CSV gives 12,208 / 2,140 / 2,140 and test shots 1,530 / 448 / 162.
* Transforms (``agedb-dir/datasets.py::AgeDB.get_transform``, IMDB identical): train
  ``Resize((s, s))`` (PIL bilinear) -> ``RandomCrop(s, padding=p)`` (zero fill) ->
  ``RandomHorizontalFlip(0.5)`` -> ``ToTensor`` -> ``Normalize(.5, .5)``; eval: Resize, ToTensor,
  Normalize. Values lie in [-1, 1]. Verified: with the same torch seed our train / eval tensors
  equal torchvision's pipeline on the file exactly (``tests/data/test_generated_faces.py``).
* Labels: integer ages; ``Binning.integer(0, 120)`` clamps ages >= 120 into the last bin
  (``datasets.py::_prepare_weights``, ``max_target=121``); shots by the 100/20 rule on the exact
  training label (``train.py::shot_metrics``); MAE is the main metric; ResNet-18 encoder.

Deviations:

* Crop padding scales with the image size: ``p = round(16 * s / 224)`` (16 at 224 as the
  benchmark, 5 at 64 px) so the crop jitter is the same fraction of the face.
* The resize is done once per image (optionally cached as uint8 in memory, ``cache=``) and the
  random crop / flip are applied on tensors with torch's RNG, in the same order of draws as
  torchvision (crop row, crop column, flip). The pixels equal the PIL pipeline's: Resize is
  deterministic and the crop/flip act on the resized image in the benchmark too.
* ``n_views=2`` returns two independent augmentations stacked ``(2, 3, s, s)`` (ConR / RnC need
  two views; the benchmark has no such option). On eval splits both views are identical.
* A malformed CSV row raises ``ValueError("FILE:LINE: ...")`` (pandas would coerce or fail later);
  blank lines are skipped as ``pd.read_csv`` does.
* UTKFace: the two names with three fields (``61_1_2017...``, ``61_3_2017...``) are ambiguous;
  the middle field is read as gender when it is 0/1 and as race when it is 2..4 (a ``3`` cannot be
  a gender), so ``61_3_...`` has no gender rather than no race. Only the age is used.
"""
from __future__ import annotations

import csv
import hashlib
import os
import random
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .base import (Binning, DataNotFoundError, DIRData, ShotSpec, require_file, resolve_data_dir,
                   sha256_file, utf8_lines)

#: the last age bin (the benchmark's ``Binning.integer(0, 120)``; older ages are counted in it)
AGE_MAX = 120

UTKFACE_URL = "https://susanqq.github.io/UTKFace/"
BENCHMARK_URL = "https://github.com/YyzHarry/imbalanced-regression"
AGEDB_URL = "https://ibug.doc.ic.ac.uk/resources/agedb/"
IMDB_WIKI_URL = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/"
AGEDB_CSV_SHA256 = "ab9f8d4c7099a9d74ec5094c42b6fe9f1927a166a48d2ab800a88b2fd6081252"
SPLITS = ("train", "val", "test")

AGEDB_IMAGES_HOW = (
    "AgeDB images are not distributed with dirlib or the DIR benchmark: request the "
    f"password-protected zip from the AgeDB authors ({AGEDB_URL}; see agedb-dir/README.md of "
    f"{BENCHMARK_URL}), extract it so that IMG_ROOT/AgeDB/<name>.jpg exist (the CSV's 'path' "
    "column is relative to IMG_ROOT), and pass img_root=IMG_ROOT (default: the CSV's folder).")
AGEDB_CSV_HOW = (
    "Expected layout: DATA/agedb-dir/agedb.csv (columns age,path,split). Get the file from "
    f"{BENCHMARK_URL}/blob/main/agedb-dir/data/agedb.csv.")
IMDB_IMAGES_HOW = (
    f"IMDB-WIKI faces come from ETH ({IMDB_WIKI_URL}): download static/imdb_crop.tar and "
    "static/wiki_crop.tar (the DIR benchmark's imdb-wiki-dir/download_imdb_wiki.py does it), extract "
    "them so that IMG_ROOT/imdb_crop/... and IMG_ROOT/wiki_crop/... exist, and pass img_root=IMG_ROOT "
    "(default: the CSV's folder).")
IMDB_CSV_HOW = (
    "Expected layout: DATA/imdb-wiki-dir/imdb_wiki.csv (columns age,path,split). Get it from "
    f"{BENCHMARK_URL} (imdb-wiki-dir/data/imdb_wiki.csv), or rebuild it from the ETH .mat files with "
    "imdb-wiki-dir/data/create_imdb_wiki.py then preprocess_imdb_wiki.py (after download_imdb_wiki.py).")
UTKFACE_HOW = (
    "Expected layout: DATA/utkface/crop_part1/[age]_[gender]_[race]_[datetime].jpg.chip.jpg "
    f"(UTKFace aligned & cropped faces, part 1, 9,780 images). Get crop_part1 from {UTKFACE_URL}.")


class ImageDecodeError(OSError):
    """An image file exists but cannot be decoded; the message names the file."""


# --------------------------------------------------------------------------------------------
# UTKFace names and the benchmark's balanced split
# --------------------------------------------------------------------------------------------
def parse_utkface_name(name: str) -> Optional[dict]:
    """Parse ``[age]_[gender]_[race]_[datetime].jpg.chip.jpg`` (any folder prefix is dropped).

    Returns ``{"age": int, "gender": int|None, "race": int|None, "datetime": datetime|None}`` or
    ``None`` when the name does not follow the scheme. Gender is 0/1, race 0..4. Three-field names
    (``age_x_datetime``) read ``x`` as gender when it is 0/1, else as race. ``datetime`` is None
    when the stamp is not 17 digits ``YYYYMMDDhhmmssfff`` (one crop_part1 file has 16)."""
    base = os.path.basename(str(name))
    for suffix in (".jpg.chip.jpg", ".jpg"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    else:
        return None
    parts = base.split("_")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        return None
    age = int(parts[0])
    gender = race = None
    if len(parts) == 4:
        gender, race = int(parts[1]), int(parts[2])
        if gender not in (0, 1) or not 0 <= race <= 4:
            return None
    else:
        mid = int(parts[1])
        if mid in (0, 1):
            gender = mid
        elif 2 <= mid <= 4:
            race = mid
        else:
            return None
    stamp, when = parts[-1], None
    if len(stamp) == 17:
        try:
            when = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(microsecond=int(stamp[14:]) * 1000)
        except ValueError:
            when = None
    return {"age": age, "gender": gender, "race": race, "datetime": when}


def make_balanced_split(ages: Sequence, seed: int = 666, max_size: int = 30, val_frac: int = 3,
                        max_age: int = 120) -> np.ndarray:
    """The DIR benchmark's balanced val/test split (``preprocess_agedb.py::make_balanced_testset``).

    ``ages``: integer ages in the order the items are listed (the shuffle is applied to that order).
    One ``random.Random(seed)`` for the whole loop; per age ``0..max_age`` ascending, shuffle the
    items of that age, ``curr = min(n // val_frac, max_size)``, first ``curr`` -> val, next ``curr``
    -> test, rest -> train; ages above ``max_age`` all go to train. Returns an array of
    ``'train' | 'val' | 'test'`` aligned with ``ages``. Benchmark: ``max_size`` 30 (AgeDB),
    150 (IMDB-WIKI); we use 10 for UTKFace."""
    a = np.asarray(ages, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"ages must be 1-d, got shape {a.shape}")
    bad = ~np.isfinite(a) | (a < 0) | (a != np.round(a))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"ages must be non-negative integers; item {i} is {a[i]}")
    if int(val_frac) < 2 or int(max_size) < 0:
        raise ValueError(f"need val_frac >= 2 and max_size >= 0, got {val_frac}, {max_size}")
    a = a.astype(np.int64)
    rng = random.Random(seed)  # same Mersenne Twister stream as the benchmark's random.seed(seed)
    out = np.full(len(a), "train", dtype="<U5")
    for value in range(int(max_age) + 1):
        members = np.flatnonzero(a == value).tolist()
        rng.shuffle(members)  # the permutation depends only on len(members) and the RNG state
        curr = min(len(members) // int(val_frac), int(max_size))
        out[members[:curr]] = "val"
        out[members[curr:2 * curr]] = "test"
    return out


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
class ImageStore:
    """The resized uint8 images ``(s, s, 3)`` of one split, decoded on demand.

    ``cache``: ``False`` decodes from disk on every access; ``"lazy"`` keeps each image after its
    first decode (good with ``num_workers=0``; each DataLoader worker would fill its own copy);
    ``True`` is ``"lazy"`` plus :meth:`fill` to decode everything up front (done by the loaders,
    with a tqdm bar) so forked workers share the filled array. Plain numpy state: picklable."""

    def __init__(self, paths: Sequence, img_size: int, cache: Union[bool, str] = False, how: str = ""):
        if cache not in (False, True, "lazy"):
            raise ValueError(f"cache must be False, True or 'lazy', got {cache!r}")
        if int(img_size) < 1:
            raise ValueError(f"img_size must be >= 1, got {img_size}")
        self.paths = [str(p) for p in paths]
        self.img_size = int(img_size)
        self.how = how
        self.cache = cache
        n, s = len(self.paths), self.img_size
        self._arr = np.zeros((n, s, s, 3), dtype=np.uint8) if cache else None
        self._have = np.zeros(n, dtype=bool) if cache else None

    def __len__(self):
        return len(self.paths)

    def decode(self, i: int) -> np.ndarray:
        from PIL import Image

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert("RGB").resize((self.img_size, self.img_size), Image.Resampling.BILINEAR)
                return np.array(im, dtype=np.uint8)
        except FileNotFoundError:
            raise DataNotFoundError(f"Missing image {path}. {self.how}") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ImageDecodeError(f"Cannot decode image {path}: {type(e).__name__}: {e}") from e

    def get(self, i: int) -> np.ndarray:
        if self._arr is None:
            return self.decode(i)
        if not self._have[i]:
            self._arr[i] = self.decode(i)
            self._have[i] = True
        return self._arr[i]

    def fill(self, progress: bool = True, threads: Optional[int] = None, desc: str = "decoding"):
        """Decode every image not cached yet (threads: PIL releases the GIL while decoding)."""
        if self._arr is None:
            raise RuntimeError("fill() needs cache=True or 'lazy'")
        todo = np.flatnonzero(~self._have).tolist()
        if not todo:
            return self
        from tqdm.auto import tqdm

        threads = threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(threads) as ex, \
                tqdm(total=len(todo), desc=desc, disable=None if progress else True) as bar:
            for i, arr in zip(todo, ex.map(self.decode, todo)):
                self._arr[i] = arr
                self._have[i] = True
                bar.update(1)
        return self


def crop_padding(img_size: int) -> int:
    """``RandomCrop`` padding scaled with the image size: 16 at 224 (benchmark), 5 at 64."""
    return int(round(16 * img_size / 224))


class FaceAgeDataset(Dataset):
    """Items ``(x, y, idx)``: ``x`` float32 ``(3, s, s)`` in [-1, 1] (``(n_views, 3, s, s)`` when
    ``n_views > 1``), ``y`` float32 age, ``idx`` position in the split. ``train=True`` applies the
    benchmark's random crop + flip (see the module docstring)."""

    def __init__(self, store: ImageStore, labels, train: bool, n_views: int = 1):
        labels = np.asarray(labels, dtype=np.float64)
        if len(labels) != len(store):
            raise ValueError(f"{len(labels)} labels for {len(store)} images")
        if int(n_views) < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        self.store, self.labels, self.train, self.n_views = store, labels, bool(train), int(n_views)
        self.img_size = store.img_size
        self.padding = crop_padding(self.img_size)

    def __len__(self):
        return len(self.labels)

    def with_views(self, n_views: int) -> "FaceAgeDataset":
        """Same split and image cache, ``n_views`` augmentations per item."""
        return FaceAgeDataset(self.store, self.labels, self.train, n_views)

    def device_batches(self, batch_size: int, shuffle: bool, device, placement: str = "cpu", *,
                       seed: int = 0, drop_last: bool = False):
        """Batches drawn from this split's decoded tensor on ``device``
        (:class:`dirlib.data.image_cache.DeviceBatches`; ``RunConfig.data_cache``)."""
        from .image_cache import DeviceBatches
        return DeviceBatches(self, batch_size, shuffle, device, placement, seed=seed, drop_last=drop_last)

    def without_augmentation(self) -> "FaceAgeDataset":
        return FaceAgeDataset(self.store, self.labels, False, self.n_views)

    def _view(self, img: torch.Tensor) -> torch.Tensor:
        if self.train:
            s, p = self.img_size, self.padding
            if p > 0:
                img = F.pad(img, (p, p, p, p))
                i = int(torch.randint(0, 2 * p + 1, (1,)))
                j = int(torch.randint(0, 2 * p + 1, (1,)))
                img = img[:, i:i + s, j:j + s]
            if torch.rand(1) < 0.5:
                img = img.flip(-1)
        return (img - 0.5) / 0.5

    def __getitem__(self, i):
        i = int(i)
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} items")
        i %= n
        img = torch.from_numpy(np.ascontiguousarray(self.store.get(i))).permute(2, 0, 1).float().div_(255.0)
        if self.n_views == 1:
            x = self._view(img)
        else:
            x = torch.stack([self._view(img) for _ in range(self.n_views)])
        return x.contiguous(), torch.tensor(self.labels[i], dtype=torch.float32), i


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------
def _age_data(name, paths: dict, labels: dict, img_size, cache, how, info, progress=True) -> DIRData:
    from .image_cache import content_digest
    stores = {s: ImageStore(paths[s], img_size, cache=cache, how=how) for s in SPLITS}
    # the data's identity is what the images are, not what they are called: each split's files'
    # contents (hashed once per file while its size and time stay), with the labels
    try:
        info.setdefault("checksums", {})["images"] = {s: content_digest(paths[s]) for s in SPLITS}
    except FileNotFoundError as e:
        raise DataNotFoundError(f"{name}: image {e.filename} does not exist. {how}") from None
    info["checksums"]["labels"] = {s: hashlib.sha256(np.asarray(labels[s], dtype=np.float64)
                                                    .tobytes()).hexdigest()[:16] for s in SPLITS}
    if cache is True:
        for s in SPLITS:
            stores[s].fill(progress=progress, desc=f"{name} {s}")
    train = FaceAgeDataset(stores["train"], labels["train"], train=True)
    info.setdefault("sizes", {s: len(labels[s]) for s in SPLITS})
    info.setdefault("crop_padding", crop_padding(img_size))
    return DIRData(
        name=name,
        train=train,
        val=FaceAgeDataset(stores["val"], labels["val"], train=False),
        test=FaceAgeDataset(stores["test"], labels["test"], train=False),
        train_labels=labels["train"], val_labels=labels["val"], test_labels=labels["test"],
        binning=Binning.integer(0, AGE_MAX), shot_spec=ShotSpec(), target_scale=1.0, main_metric="mae",
        model="resnet18", model_kwargs={"img_size": int(img_size)}, info=info,
        train_eval=train.without_augmentation(),
        extra={"two_view": True, "train_two_view": train.with_views(2)},
    )


def read_age_csv(path) -> tuple:
    """Read an ``age,path,split`` file: ``(ages float64, paths list, splits array)``.

    Raises ``ValueError("FILE:LINE: ...")`` on a byte that is not UTF-8, a wrong column count, an
    unparsable / negative / non-finite age, an empty path, a path that is absolute or climbs out of
    the image root (``..``), or a split other than train/val/test. Blank lines are skipped. Ages
    above :data:`AGE_MAX` are counted into the last bin as the benchmark does, with a warning that
    gives their number and the first line."""
    path = Path(path)
    ages, paths, splits = [], [], []
    above = []
    reader = csv.reader(utf8_lines(path))
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file")
    header = [h.strip() for h in header]
    missing = {"age", "path", "split"} - set(header)
    if missing:
        raise ValueError(f"{path}:1: header {header} lacks column(s) {sorted(missing)}")
    ia, ip, isp = header.index("age"), header.index("path"), header.index("split")
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
        try:
            age = float(row[ia])
        except ValueError:
            raise ValueError(f"{path}:{line}: unparsable age {row[ia]!r}") from None
        if not np.isfinite(age) or age < 0:
            raise ValueError(f"{path}:{line}: invalid age {age}")
        if not row[ip].strip():
            raise ValueError(f"{path}:{line}: empty path")
        if os.path.isabs(row[ip]) or PureWindowsPath(row[ip]).is_absolute() or ".." in \
                PurePosixPath(row[ip].replace("\\", "/")).parts:
            raise ValueError(f"{path}:{line}: image path {row[ip]!r} must be relative to the "
                             f"image root and stay inside it (no absolute path, no '..')")
        if age > AGE_MAX:
            above.append((line, age))
        if row[isp] not in SPLITS:
            raise ValueError(f"{path}:{line}: split must be train/val/test, got {row[isp]!r}")
        ages.append(age)
        paths.append(row[ip])
        splits.append(row[isp])
    if not ages:
        raise ValueError(f"{path}: no data rows")
    if above:
        warnings.warn(f"{path}: {len(above)} age(s) above {AGE_MAX} are counted in the last bin "
                      f"({AGE_MAX}), as the DIR benchmark does; the first is {above[0][1]:g} at line "
                      f"{above[0][0]}", stacklevel=2)
    return np.asarray(ages, dtype=np.float64), paths, np.asarray(splits)


def _load_csv_faces(name, csv_path: Path, img_root, img_size, cache, csv_how, img_how,
                    known_sha=None, progress=True) -> DIRData:
    require_file(csv_path, f"{name} split file", csv_how)
    ages, rel, splits = read_age_csv(csv_path)
    root = Path(img_root).expanduser() if img_root is not None else csv_path.parent
    if not root.is_dir():
        raise DataNotFoundError(f"{name}: image root {root} does not exist. {img_how}")
    first = root / rel[0]
    if not first.exists():
        raise DataNotFoundError(f"{name}: image {first} (first row of {csv_path}) does not exist under "
                                f"the image root {root}. {img_how}")
    digest = sha256_file(csv_path)
    # file names, not local paths, go into the records
    info = {"csv": f"{csv_path.parent.name}/{csv_path.name}", "img_root": root.name,
            "checksums": {csv_path.name: digest},
            "notes": ["Official DIR-benchmark split file; images read from img_root."]}
    if known_sha is not None:
        info["checksum_matches_benchmark"] = digest == known_sha
        if digest != known_sha:
            warnings.warn(f"{csv_path} differs from the DIR benchmark's file (sha256); e.g. VIR ships a "
                          "regenerated AgeDB split with another test set", stacklevel=3)
    paths = {s: [root / p for p, sp in zip(rel, splits) if sp == s] for s in SPLITS}
    labels = {s: ages[splits == s] for s in SPLITS}
    for s in SPLITS:
        if len(labels[s]) == 0:
            raise ValueError(f"{csv_path}: no rows with split {s!r}")
    return _age_data(name, paths, labels, img_size, cache, img_how, info, progress)


def load_agedb(data_dir=None, img_root=None, img_size: int = 224, cache: Union[bool, str] = False,
               progress: bool = True) -> DIRData:
    """AgeDB-DIR from ``DATA/agedb-dir/agedb.csv`` and images under ``img_root`` (default: the CSV's
    folder, i.e. ``DATA/agedb-dir/AgeDB/*.jpg``). Only the root and the first image are checked here;
    a missing or undecodable image raises when its item is read."""
    csv_path = resolve_data_dir(data_dir) / "agedb-dir" / "agedb.csv"
    return _load_csv_faces("agedb-dir", csv_path, img_root, img_size, cache, AGEDB_CSV_HOW,
                           AGEDB_IMAGES_HOW, known_sha=AGEDB_CSV_SHA256, progress=progress)


def load_imdb_wiki(data_dir=None, img_root=None, img_size: int = 224, cache: Union[bool, str] = False,
                   progress: bool = True) -> DIRData:
    """IMDB-WIKI-DIR from ``DATA/imdb-wiki-dir/imdb_wiki.csv`` and images under ``img_root``
    (default: the CSV's folder, holding ``imdb_crop/`` and ``wiki_crop/``)."""
    csv_path = resolve_data_dir(data_dir) / "imdb-wiki-dir" / "imdb_wiki.csv"
    return _load_csv_faces("imdb-wiki-dir", csv_path, img_root, img_size, cache, IMDB_CSV_HOW,
                           IMDB_IMAGES_HOW, progress=progress)


def list_utkface(folder) -> tuple:
    """Sorted ``(names, ages)`` of the parsable ``*.jpg`` files in ``folder``; warns with the count
    of unparsable names (they are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"Missing UTKFace folder: {folder} does not exist. {UTKFACE_HOW}")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(".jpg"))
    parsed = [(n, parse_utkface_name(n)) for n in names]
    bad = [n for n, p in parsed if p is None]
    if bad:
        warnings.warn(f"{len(bad)} UTKFace file name(s) in {folder} could not be parsed and were skipped "
                      f"(first: {bad[0]})", stacklevel=2)
    good = [(n, p["age"]) for n, p in parsed if p is not None]
    if not good:
        raise DataNotFoundError(f"No UTKFace images in {folder}. {UTKFACE_HOW}")
    return [n for n, _ in good], np.array([a for _, a in good], dtype=np.int64)


def load_utkface(data_dir=None, img_size: int = 64, max_size: int = 10, seed: int = 666,
                 cache: Union[bool, str] = True, progress: bool = True,
                 subdir: str = "utkface/crop_part1") -> DIRData:
    """UTKFace-DIR from ``DATA/utkface/crop_part1/``: sorted file names, ages from the names, the
    benchmark's balanced split with ``max_size=10``. ``cache=True`` decodes and resizes all images
    once (about 6 s on one core at 64 px; 9,780 x 64 x 64 x 3 bytes = 120 MB)."""
    folder = resolve_data_dir(data_dir) / subdir
    names, ages = list_utkface(folder)
    split = make_balanced_split(ages, seed=seed, max_size=max_size)
    paths = {s: [folder / n for n, sp in zip(names, split) if sp == s] for s in SPLITS}
    labels = {s: ages[split == s].astype(np.float64) for s in SPLITS}
    name_digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    info = {
        "folder": f"$DIRLIB_DATA/{subdir}",   # relative to the data root: no local path in a record
        "checksums": {"sorted_file_names": name_digest},
        "split_protocol": f"DIR benchmark make_balanced_testset, seed {seed}, max_size {max_size}, "
                          "sorted file names",
        "n_test_ages": int(len(np.unique(labels["test"]))),
        "notes": ["UTKFace-DIR is dirlib's stand-in for AgeDB-DIR: UTKFace crop_part1 split with the "
                  "benchmark's balanced val/test protocol (preprocess_agedb.py) with max_size 10 instead "
                  "of 30; not a published benchmark, do not compare numbers with AgeDB-DIR papers."],
    }
    return _age_data("utkface-dir", paths, labels, img_size, cache, UTKFACE_HOW, info, progress)
