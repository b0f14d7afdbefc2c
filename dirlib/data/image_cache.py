"""Face images at device speed: each split decoded once, batches drawn and augmented on the device.

* :func:`split_tensor` decodes a split's images once into a ``uint8`` array ``(N, 3, s, s)`` at
  the training size, with the loader's own PIL resize (:meth:`dirlib.data.faces.ImageStore.decode`,
  bilinear, as the benchmark), and caches it on disk under ``$DIRLIB_CACHE`` (default
  ``~/.cache/dirlib/images``), keyed by the **content** of the split's files (their sha256, in
  order) and the size, with the array's own sha256 checked on every load. A later run, or another
  process of a sweep, reads the file instead of decoding again; a changed image, or two folders
  with the same names, give another key. A cache folder that cannot be written means decoding in
  memory, with one warning.
* :func:`file_digests` hashes each file's bytes once and reuses the digest while the file's
  (path, size, modification time) is unchanged (an index beside the cache).
* :func:`augment` applies the benchmark's training transform to a whole batch on the device: zero
  pad by ``p``, a random ``s x s`` crop, a horizontal flip with probability 0.5, then
  ``Normalize(0.5, 0.5)``. Given the same draws (crop row, crop column, flip) each image equals
  torchvision's ``RandomCrop(s, padding=p)`` -> ``RandomHorizontalFlip`` -> ``ToTensor`` ->
  ``Normalize`` on the resized image (``tests/data/test_image_cache.py``); the draws come from the same
  uniform distributions, batched.
* :class:`DeviceBatches` iterates ``(x, y, idx)`` batches like a ``DataLoader`` over a
  :class:`~dirlib.data.faces.FaceAgeDataset`, with ``x`` already on the device. The images live in
  GPU memory (``placement="gpu"``) or in (pinned, when CUDA is present) host memory
  (``placement="cpu"``). The JPEG path (``DataLoader`` + PIL per item) stays the reference and the
  fallback (``RunConfig.data_cache = "off"``).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

PLACEMENTS = ("cpu", "gpu")
_WARNED = set()


def cache_root() -> Path:
    return Path(os.environ.get("DIRLIB_CACHE") or Path.home() / ".cache" / "dirlib") / "images"


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, stacklevel=3)


def _index_path() -> Path:
    return cache_root().parent / "content-index.json"


def file_digests(paths) -> list:
    """The sha256 of each file's bytes, in order. A digest is reused while the file's (absolute
    path, size, modification time in ns) is what it was when hashed; the index lives beside the
    image cache (in memory only when that folder cannot be written)."""
    index_path = _index_path()
    try:
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except (OSError, ValueError):
        index = {}
    out, changed = [], False
    for p in paths:
        p = Path(p)
        st = p.stat()
        key = str(p.resolve())
        stamp = [st.st_size, st.st_mtime_ns]
        hit = index.get(key)
        if hit and hit[:2] == stamp:
            out.append(hit[2])
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        index[key] = stamp + [digest]
        out.append(digest)
        changed = True
    if changed:
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_path.with_name(index_path.name + f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(index))
            os.replace(tmp, index_path)
        except OSError as e:
            _warn_once("index", f"cannot write the content index {index_path} ({e}): image digests "
                                f"are recomputed in every process")
    return out


def content_digest(paths) -> str:
    """sha256 over the files' content digests, in order: what a split of images *is*."""
    h = hashlib.sha256()
    for d in file_digests(paths):
        h.update(d.encode() + b"\n")
    return h.hexdigest()


def cache_key(paths, img_size: int) -> str:
    """16 hex digits of sha256 over the split's files' contents (in order) and the size."""
    return hashlib.sha256(f"{int(img_size)}\n{content_digest(paths)}".encode()).hexdigest()[:16]


def split_tensor(store, cache_dir=None, progress: bool = False) -> torch.Tensor:
    """The split of ``store`` (an :class:`~dirlib.data.faces.ImageStore`) as ``uint8`` ``(N, 3, s, s)``,
    decoded once and cached on disk (``cache_dir``, default :func:`cache_root`), keyed by the
    files' content. A cached file whose shape or checksum does not match is an error naming it; a
    cache folder that cannot be written means decoding in memory, with one warning."""
    s, n = store.img_size, len(store)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    key = cache_key(store.paths, s)
    arr_path, meta_path = root / f"{key}-{s}px.npy", root / f"{key}-{s}px.json"
    if arr_path.is_file():
        try:
            arr = np.array(np.load(arr_path))          # read into (writable) memory
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"image cache {arr_path} is unreadable ({e}); delete it to decode again") from None
        if arr.shape != (n, 3, s, s) or arr.dtype != np.uint8 or meta.get("n") != n:
            raise ValueError(f"image cache {arr_path} holds {arr.shape} {arr.dtype}, expected "
                             f"({n}, 3, {s}, {s}) uint8; delete it to decode again")
        if hashlib.sha256(arr.tobytes()).hexdigest() != meta.get("sha256"):
            raise ValueError(f"image cache {arr_path} is corrupted: its pixels do not match the "
                             f"checksum in {meta_path.name}; delete both to decode again")
        return torch.from_numpy(arr)
    if store.cache:
        store.fill(progress=progress, desc=f"decoding {n} images")
        hwc = store._arr
    else:
        hwc = np.stack([store.decode(i) for i in range(n)]) if n else np.zeros((0, s, s, 3), np.uint8)
    arr = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))
    meta = {"n": n, "img_size": s, "first": os.path.basename(store.paths[0]) if n else None,
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = arr_path.with_name(arr_path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.save(fh, arr)
        meta_path.write_text(json.dumps(meta))
        os.replace(tmp, arr_path)
    except OSError as e:
        _warn_once(str(root), f"cannot write the image cache in {root} ({e}): the images are "
                              f"decoded in memory in every run (set DIRLIB_CACHE to a writable folder)")
    return torch.from_numpy(arr)


def draws(n: int, padding: int, generator: Optional[torch.Generator] = None, device="cpu"):
    """The random draws of :func:`augment` for ``n`` images: crop rows and columns uniform on
    ``0..2p`` and flips with probability 0.5."""
    hi = 2 * int(padding) + 1
    i = torch.randint(0, hi, (n,), generator=generator, device=device)
    j = torch.randint(0, hi, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return i, j, flip


def augment(x: torch.Tensor, padding: int, generator: Optional[torch.Generator] = None,
            given=None) -> torch.Tensor:
    """The benchmark's training transform on a ``uint8`` batch ``(B, 3, s, s)``, batched on its
    device: zero pad by ``padding``, random crop back to ``s``, horizontal flip (p = 0.5), scale to
    ``[0, 1]`` and ``Normalize(0.5, 0.5)``. ``given``: the draws ``(i, j, flip)`` to use
    (:func:`draws`). Returns float32 ``(B, 3, s, s)`` in ``[-1, 1]``."""
    b, _, s, _ = x.shape
    xf = x.float().div_(255.0)
    p = int(padding)
    if p > 0 or given is not None:
        i, j, flip = given if given is not None else draws(b, p, generator, device=generator.device if generator is not None else x.device)
        i, j, flip = i.to(x.device), j.to(x.device), flip.to(x.device)
        padded = F.pad(xf, (p, p, p, p))
        ar = torch.arange(s, device=x.device)
        rows = (i[:, None] + ar[None, :])                                      # (B, s)
        cols = (j[:, None] + ar[None, :])
        cols = torch.where(flip[:, None], cols.flip(1), cols)                  # a flip reverses the columns
        bidx = torch.arange(b, device=x.device)[:, None, None]
        xf = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    else:
        flip = (torch.rand(b, generator=generator, device=x.device) < 0.5)
        xf = torch.where(flip[:, None, None, None], xf.flip(-1), xf)
    return xf.sub_(0.5).div_(0.5).contiguous()


def normalise(x: torch.Tensor) -> torch.Tensor:
    """The evaluation transform: ``uint8`` ``(B, 3, s, s)`` -> float32 in ``[-1, 1]``."""
    return x.float().div_(255.0).sub_(0.5).div_(0.5)


class DeviceBatches:
    """``(x, y, idx)`` batches of a :class:`~dirlib.data.faces.FaceAgeDataset` drawn from its split
    tensor (:func:`split_tensor`): ``x`` on ``device`` (augmented when the dataset trains; stacked
    ``(B, n_views, 3, s, s)`` for two views), ``y`` float32 and ``idx`` int64 on the CPU, as a
    ``DataLoader`` yields them. ``placement``: where the images live (``"gpu"``: device memory;
    ``"cpu"``: host memory, pinned when CUDA is present). The order is a permutation from a
    generator seeded with ``seed`` (:attr:`generator`) when ``shuffle``."""

    def __init__(self, ds, batch_size: int, shuffle: bool, device, placement: str = "cpu",
                 seed: int = 0, drop_last: bool = False, cache_dir=None):
        if placement not in PLACEMENTS:
            raise ValueError(f"option data_cache (--data-cache) must be off, cpu or gpu, got {placement!r}")
        device = torch.device(device)
        if placement == "gpu" and device.type != "cuda":
            raise ValueError("option data_cache (--data-cache) is 'gpu' but the run's device is "
                             f"{device}: use --data-cache cpu (or off) without a GPU")
        images = split_tensor(ds.store, cache_dir)
        if placement == "gpu":
            images = images.to(device)
        elif torch.cuda.is_available() and device.type == "cuda":
            images = images.pin_memory()
        self.images, self.device = images, device
        self.labels = torch.as_tensor(np.asarray(ds.labels), dtype=torch.float32)
        self.train, self.padding, self.n_views = ds.train, ds.padding, ds.n_views
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        # the order and the augmentation come from this generator (a trainer may reseed it per
        # epoch, as it does a DataLoader's); the device draws are seeded from it each epoch
        self.generator = torch.Generator()
        self.generator.manual_seed(int(seed))
        self.dataset = ds

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        gd = torch.Generator(device=self.device)
        gd.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=self.generator)))
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            x = self.images[idx.to(self.images.device)].to(self.device, non_blocking=True)
            if self.train:
                views = [augment(x, self.padding, gd) for _ in range(self.n_views)]
            else:
                views = [normalise(x)] * self.n_views
            x = views[0] if self.n_views == 1 else torch.stack(views, 1)
            yield x, self.labels[idx], idx
