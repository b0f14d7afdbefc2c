#!/usr/bin/env python
"""GPU throughput of a full-scale run: ResNet-18 at 224 px, AgeDB-DIR scale, on generated JPEGs.

One prepared script, so that a session lent a GPU can measure the GPU path within a few minutes::

    python scripts/gpu_throughput.py                 # CUDA: ~2-4 minutes; CPU: a ~1 minute smoke run
    python scripts/gpu_throughput.py --out OUT_DIR   # also writes gpu_throughput.json there

What it does (every number is printed as images/s):

1. **Generated data.** ``--files`` JPEGs (default 2,048, ``--src-size`` 256 px, smooth random
   "faces": low-resolution colour fields upsampled, plus noise, so they decode like photos, not
   like noise) in a temporary folder. The training split has AgeDB-DIR's size and ages (12,208
   rows from ``$DIRLIB_DATA/agedb-dir/agedb.csv`` when present, else a long-tailed stand-in); row
   ``i`` reads file ``i % files``. The datasets are built by dirlib's own face loader
   (``dirlib.data.faces``: decode, resize to 224, random crop with padding 16, flip, normalise).
2. **Data loading alone**: the training loader (``RunConfig.num_workers`` workers, pinned memory,
   persistent workers) for ``--batches`` batches, timed after the first batch.
3. **Compute alone**: training steps on one batch already on the GPU (``dirlib.tools.bench.MethodBench``,
   the trainer's own step; no loss check per step), fp32 NCHW vs ``amp`` + ``channels_last``, for
   Vanilla and for the paper's phase-1 regulariser (``frobenius``): images/s and the ratio.
4. **End to end**: ``dirlib.train.fit`` (vanilla, amp, channels_last, workers, pinned memory, no
   per-step host sync) for 2 epochs of ``--batches`` batches; images/s of epoch 2 (epoch 1 pays for
   worker start-up and cuDNN autotuning). The validation/test sets are 256 images each
   (``--eval-images``).

``torch.backends.cudnn.benchmark`` is switched on (fixed input shapes). Without CUDA everything
runs on the CPU at a smoke scale (64 px, few files and batches) to show that the script works; its
numbers say nothing about a GPU.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dirlib.data.faces import _age_data  # noqa: E402
from dirlib.train import RunConfig, fit, make_loader  # noqa: E402

AGEDB_TRAIN = 12208


def agedb_train_ages(n: int, seed: int = 0) -> tuple:
    """AgeDB-DIR's training ages when the CSV is found, else a long-tailed stand-in."""
    roots = [os.environ.get("DIRLIB_DATA"), str(ROOT / "shared" / "data"), str(ROOT.parent / "shared" / "data")]
    for r in roots:
        if r and (Path(r) / "agedb-dir" / "agedb.csv").exists():
            from dirlib.data.faces import read_age_csv
            ages, _, splits = read_age_csv(Path(r) / "agedb-dir" / "agedb.csv")
            tr = ages[np.asarray(splits) == "train"]
            if len(tr) >= n:
                return tr[:n], "agedb.csv train ages"
            return np.resize(tr, n), "agedb.csv train ages (repeated)"
    rng = np.random.RandomState(seed)
    a = np.where(rng.rand(n) < 0.85, rng.normal(45, 15, n), rng.uniform(1, 101, n))
    return np.clip(np.round(a), 1, 101).astype(np.float64), "generated long-tailed ages"


def _write_jpeg(args):
    path, seed, size = args
    from PIL import Image
    rng = np.random.RandomState(seed)
    low = Image.fromarray(rng.randint(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size),
                                                                                  Image.BILINEAR)
    arr = np.asarray(low, dtype=np.int16) + rng.randint(-12, 13, (size, size, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def generate_files(folder: Path, n: int, size: int, workers: int) -> list:
    paths = [str(folder / f"img_{i:05d}.jpg") for i in range(n)]
    jobs = [(p, i, size) for i, p in enumerate(paths)]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(_write_jpeg, jobs, chunksize=32))
    else:
        for j in jobs:
            _write_jpeg(j)
    return paths


def build_data(folder: Path, n_files: int, n_train: int, n_eval: int, img_size: int, src_size: int,
               workers: int):
    files = generate_files(folder, n_files, src_size, workers)
    ages, how = agedb_train_ages(n_train)
    rng = np.random.RandomState(1)
    eval_ages = np.round(rng.uniform(1, 101, n_eval))
    paths = {"train": [files[i % n_files] for i in range(n_train)],
             "val": [files[i % n_files] for i in range(n_eval)],
             "test": [files[(i + n_eval) % n_files] for i in range(n_eval)]}
    labels = {"train": ages, "val": eval_ages, "test": eval_ages}
    data = _age_data("agedb-dir", paths, labels, img_size, cache=False, how="generated files",
                     info={"generated": True}, progress=False)
    return data, how


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_throughput(data, cfg, batches: int) -> float:
    loader = make_loader(data.train, cfg.batch_size, True, cfg, seed_offset=1, drop_last=True)
    it = iter(loader)
    next(it)                                   # worker start-up is not throughput
    n, t0 = 0, time.perf_counter()
    for i, (x, y, idx) in enumerate(it):
        n += len(y)
        if i + 1 >= batches:
            break
    dt = time.perf_counter() - t0
    del it, loader
    return n / dt


def compute_throughput(data, cfg, device, steps: int) -> dict:
    """Steps on one device batch: fp32 NCHW vs amp + channels_last, vanilla vs frobenius phase 1."""
    from dirlib.tools.bench import MethodBench, bench_spec
    from dirlib.methods import build_method
    from dirlib.models import build_model
    torch.manual_seed(0)
    init = build_model("resnet18")
    xs, ys = zip(*[data.train[i][:2] for i in range(cfg.batch_size)])
    x, y, idx = torch.stack(xs), torch.stack(ys), torch.arange(cfg.batch_size)
    out = {}
    for variant, kw in (("fp32", dict(amp=False, channels_last=False)),
                        ("amp+channels_last", dict(amp=True, channels_last=True))):
        for method in ("vanilla", "frobenius"):
            c = dataclasses.replace(cfg, method=method, **kw)
            spec = build_method(c, data)
            label, spec = bench_spec(method, spec)
            r = MethodBench(label, c, data, spec, copy.deepcopy(init), device, x, y, idx)
            for _ in range(3):
                r.step()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                r.step(check=device.type != "cuda")   # fit's CUDA step: no per-step loss check
            sync(device)
            dt = (time.perf_counter() - t0) / steps
            out[f"{variant}/{label}"] = {"step_ms": dt * 1e3, "images_per_s": cfg.batch_size / dt}
            del r
            if device.type == "cuda":
                torch.cuda.empty_cache()
        v = out[f"{variant}/vanilla"]["step_ms"]
        out[f"{variant}/frobenius_ratio"] = out[f"{variant}/frobenius:phase1"]["step_ms"] / v
    return out


def fit_throughput(data, cfg, batches: int) -> dict:
    c = dataclasses.replace(cfg, method="vanilla", epochs=2, max_batches=batches, amp=True,
                            channels_last=True, progress=False, diagnostics=False)
    from dirlib.methods import build_method
    spec = build_method(c, data)
    res = fit(c, data, spec)
    h = res["history"]
    n = min(batches, len(data.train_labels) // c.batch_size) * c.batch_size
    return {"epoch_images": n, "epoch_s": [e["train_time_s"] for e in h],
            "images_per_s_epoch1": n / h[0]["train_time_s"],
            "images_per_s_epoch2": n / h[1]["train_time_s"],
            "val_mae_epoch2": h[1]["val"]["all"]["mae"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--img-size", type=int, default=224 if cuda else 64)
    p.add_argument("--src-size", type=int, default=256 if cuda else 96)
    p.add_argument("--files", type=int, default=2048 if cuda else 64)
    p.add_argument("--batch-size", type=int, default=64 if cuda else 16)
    p.add_argument("--batches", type=int, default=80 if cuda else 2,
                   help="batches per loader measurement and per fit() epoch")
    p.add_argument("--steps", type=int, default=30 if cuda else 1, help="compute-alone steps")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1) if cuda else 2)
    p.add_argument("--eval-images", type=int, default=256, help="validation / test set size")
    p.add_argument("--skip", nargs="*", default=[], choices=["loader", "compute", "fit"])
    p.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_throughput.json")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t_start = time.time()
    res = {"device": str(device), "torch": torch.__version__, "cpu_count": os.cpu_count(),
           "args": vars(a)}
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
        res["bf16"] = torch.cuda.is_bf16_supported()
    print(f"# gpu_throughput: {res.get('gpu', 'CPU (smoke run: numbers say nothing about a GPU)')}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, {a.workers} loader workers", flush=True)
    with tempfile.TemporaryDirectory(prefix="dirlib-gpu-") as tmp:
        t0 = time.time()
        data, how = build_data(Path(tmp), a.files, AGEDB_TRAIN, a.eval_images, a.img_size,
                               a.src_size, a.workers)
        res["data"] = {"files": a.files, "src_size": a.src_size, "train_rows": AGEDB_TRAIN,
                       "ages": how, "generate_s": time.time() - t0}
        print(f"# generated {a.files} JPEGs ({a.src_size} px) in {time.time() - t0:.1f} s; "
              f"{AGEDB_TRAIN} training rows ({how})", flush=True)
        cfg = RunConfig(dataset="agedb-dir", method="vanilla", batch_size=a.batch_size, lr=1e-3,
                        img_size=a.img_size, num_workers=a.workers, device=str(device),
                        progress=False, diagnostics=False)
        if "loader" not in a.skip:
            ips = loader_throughput(data, cfg, a.batches)
            res["loader_images_per_s"] = ips
            print(f"loader  {a.img_size} px, {a.workers} workers, pinned: {ips:8.0f} images/s",
                  flush=True)
        if "compute" not in a.skip:
            comp = compute_throughput(data, cfg, device, a.steps)
            res["compute"] = comp
            for k, v in comp.items():
                if isinstance(v, dict):
                    print(f"compute {k:32s} {v['images_per_s']:8.0f} images/s "
                          f"({v['step_ms']:.1f} ms/step)", flush=True)
                else:
                    print(f"compute {k:32s} {v:8.3f} (frobenius phase-1 step / vanilla step)",
                          flush=True)
        if "fit" not in a.skip:
            f = fit_throughput(data, cfg, a.batches)
            res["fit"] = f
            print(f"train   fit() vanilla amp+channels_last, {a.workers} workers: "
                  f"{f['images_per_s_epoch2']:8.0f} images/s (epoch 2; epoch 1 "
                  f"{f['images_per_s_epoch1']:.0f})", flush=True)
    res["wall_s"] = time.time() - t_start
    print(f"# done in {res['wall_s']:.0f} s", flush=True)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "gpu_throughput.json").write_text(json.dumps(res, indent=1, default=str))
        print(f"# wrote {a.out}/gpu_throughput.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
