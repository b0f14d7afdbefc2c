"""Write UTKFace crop_part1 resized to S x S as lossless WebP, under the original file names.

Why: the device machine (GPU) takes at most 64 MiB of files per call, and the 9,780 original
JPEGs are 70 MB. dirlib's loader opens each image, converts it to RGB and resizes it to
``img_size`` with PIL bilinear; on an S x S image that resize is a copy. So a folder of S x S
lossless images under the same names gives, at ``img_size=S``, the very arrays the loader
computes from the originals (this script checks every image), the same split (it depends on the
sorted names only) and the same ``data_hash``. Used to send the images to a GPU machine with a small upload limit.

    python scripts/pack_utkface_resized.py --data-dir ../shared/data --size 64 --out .gpudata
"""
import argparse
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from dirlib.data.base import resolve_data_dir
from dirlib.data.faces import list_utkface


def pack_one(src: Path, dst: Path, size: int) -> int:
    with Image.open(src) as im:
        small = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "WEBP", lossless=True, quality=100, method=6)
    with Image.open(io.BytesIO(buf.getvalue())) as back:
        again = back.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    if not np.array_equal(np.asarray(again), np.asarray(small)):
        raise RuntimeError(f"lossless round trip failed for {src}")
    dst.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", required=True, help="a data root; images go to OUT/utkface/crop_part1/")
    a = ap.parse_args()
    src = resolve_data_dir(a.data_dir) / "utkface" / "crop_part1"
    names, _ = list_utkface(src)
    dst = Path(a.out) / "utkface" / "crop_part1"
    dst.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as ex:
        sizes = list(ex.map(lambda n: pack_one(src / n, dst / n, a.size), names))
    print(f"{len(sizes)} images, {sum(sizes) / 1e6:.1f} MB, {a.size} px, lossless WebP -> {dst}")


if __name__ == "__main__":
    main()
