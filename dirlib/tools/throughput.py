"""Training throughput of the face pipeline against its ceiling, measured in one run.

``python -m dirlib bench --throughput [--device auto] [--out results/bench]`` prints images per
second of training (forward, backward, optimiser step; L1 loss, Adam) for ResNet-18 at 64 and 224 px
and ResNet-50 at 224 px, on:

* **ceiling**: a ``uint8`` batch already on the device, augmented there (the same batched
  augmentation as the cache paths: :func:`dirlib.data.image_cache.augment`): no data loading;
* **cache-gpu**: :class:`~dirlib.data.image_cache.DeviceBatches` with the images in GPU memory
  (CUDA only);
* **cache-cpu**: the same with the images in (pinned) host memory;
* **jpeg**: the reference path, a ``DataLoader`` over the face loader (PIL decode + resize per
  item, torch crop/flip) with ``--workers`` workers and pinned memory;

each as a ratio to the ceiling of the same model, size and settings, with ``channels_last`` off
and on, and ``amp`` (bf16 autocast) off and on where the device is CUDA (the trainer's ``amp`` is
CUDA only). The images are generated JPEGs at UTKFace's 200 x 200 px. A second table times one
epoch of data alone (no model) per path at 64 px, the per-epoch cost the cache removes.
Every route of a cell has its own model (same initial weights) and is warmed up; then rounds of a
few steps are timed route after route, interleaved, and each route's median round is kept. On
CUDA every timed region ends with a synchronize.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: (model, image size, batch size) of the measured configurations
CONFIGS = (("resnet18", 64, 64), ("resnet18", 224, 32), ("resnet50", 224, 32))
QUICK_CONFIGS = (("resnet18", 64, 32),)


def generate_jpegs(folder, n: int, size: int = 200, seed: int = 0) -> List[str]:
    """``n`` smooth random colour images (low-resolution fields upsampled, plus noise: they decode
    like photos, not like noise) as JPEGs of ``size`` px; returns their paths."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    paths = []
    for i in range(n):
        low = rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.randint(-12, 13, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"{i:05d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(str(p))
    return paths


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(name: str, img_size: int, device, channels_last: bool):
    from ..models import build_model
    m = build_model(name, img_size=img_size).to(device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


def _stepper(model, device, amp: bool, channels_last: bool):
    from ..train import optimizer_step
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            pred, _ = model(x)
        loss = F.l1_loss(pred.float().view(-1), y.to(device, non_blocking=True).view(-1))
        optimizer_step(opt, loss)
    return step


def _timed_steps(it, step, steps: int, batch: int, device) -> float:
    """Images per second over the next ``steps`` steps of the endless batch iterator ``it``."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y, _ = next(it)
        step(x.to(device, non_blocking=True), y)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


class _Repeat:
    """An endless iterable over an epoch-based batch source."""

    def __init__(self, src):
        self.src = src

    def __iter__(self):
        while True:
            yield from self.src


def _ceiling_batches(x_uint8, labels, padding, device):
    g = torch.Generator(device=device).manual_seed(0)
    from ..data.image_cache import augment
    while True:
        yield augment(x_uint8, padding, g), labels, None


def measure(paths: Sequence[str], model: str, img_size: int, batch: int, *, device, amp: bool,
            channels_last: bool, routes: Sequence[str], workers: int, warmup: int, steps: int,
            repeats: int, cache_dir) -> Dict[str, float]:
    """Images/s of training for each route in ``routes`` (ceiling, cache-gpu, cache-cpu, jpeg):
    each route gets its own model (same initial weights) and batch source, warmed up; then
    ``repeats`` rounds time ``steps`` steps of every route in turn (interleaved, so a slow moment
    of the machine hits every route alike), and each route's median round is kept."""
    from torch.utils.data import DataLoader
    from ..data.faces import FaceAgeDataset, ImageStore, crop_padding
    from ..data.image_cache import DeviceBatches, split_tensor
    labels = np.random.RandomState(0).randint(1, 100, len(paths)).astype(np.float64)
    store = ImageStore(paths, img_size)
    ds = FaceAgeDataset(store, labels, train=True)
    runners = {}
    for route in routes:
        torch.manual_seed(0)
        net = _model(model, img_size, device, channels_last)
        if route == "ceiling":
            x = split_tensor(store, cache_dir)[:batch].to(device)
            src = _ceiling_batches(x, torch.tensor(labels[:batch], dtype=torch.float32), crop_padding(img_size), device)
        elif route in ("cache-gpu", "cache-cpu"):
            src = _Repeat(DeviceBatches(ds, batch, True, device, route.split("-")[1], drop_last=True,
                                        cache_dir=cache_dir))
        elif route == "jpeg":
            src = _Repeat(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == "cuda", persistent_workers=workers > 0))
        else:
            raise ValueError(f"unknown route {route!r}")
        it, step = iter(src), _stepper(net, device, amp, channels_last)
        for _ in range(warmup):   # DataLoader workers start, kernels are chosen
            x, y, _ = next(it)
            step(x.to(device, non_blocking=True), y)
        runners[route] = (it, step)
    rounds = {r: [] for r in routes}
    for _ in range(repeats):
        for route, (it, step) in runners.items():
            rounds[route].append(_timed_steps(it, step, steps, batch, device))
    return {r: float(np.median(v)) for r, v in rounds.items()}


def data_epoch(paths: Sequence[str], img_size: int, batch: int, *, device, workers: int, cache_dir,
               routes=("cache-cpu", "jpeg")) -> Dict[str, float]:
    """Seconds for one epoch of augmented batches delivered to ``device`` (no model), per route."""
    from torch.utils.data import DataLoader
    from ..data.faces import FaceAgeDataset, ImageStore
    from ..data.image_cache import DeviceBatches, split_tensor
    labels = np.zeros(len(paths))
    store = ImageStore(paths, img_size)
    ds = FaceAgeDataset(store, labels, train=True)
    split_tensor(store, cache_dir)   # decoded once before timing (the cache exists after a first run)
    out = {}
    for route in routes:
        if route == "jpeg":
            src = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                             pin_memory=device.type == "cuda")
        else:
            src = DeviceBatches(ds, batch, True, device, route.split("-")[1], cache_dir=cache_dir)
        _sync(device)
        t0 = time.perf_counter()
        for x, _, _ in src:
            x.to(device, non_blocking=True)
        _sync(device)
        out[route] = time.perf_counter() - t0
    return out


def run(device="auto", *, quick: bool = False, files: int = 512, workers: Optional[int] = None,
        warmup: int = 2, steps: int = 2, repeats: int = 3, log=print) -> dict:
    """The whole measurement: every config x settings x route, and the data-alone epochs."""
    from .machine import provenance
    from ..train import resolve_device
    device = resolve_device(device)
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    configs = QUICK_CONFIGS if quick else CONFIGS
    cuda = device.type == "cuda"
    routes = ["ceiling"] + (["cache-gpu"] if cuda else []) + ["cache-cpu", "jpeg"]
    settings = [(a, c) for a in ((False, True) if cuda else (False,)) for c in (False, True)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dirlib-throughput-") as tmp:
        paths = generate_jpegs(Path(tmp) / "jpeg", min(files, 128) if quick else files)
        cache_dir = Path(tmp) / "cache"
        for model, size, batch in configs:
            for amp, cl in settings:
                r = measure(paths, model, size, batch, device=device, amp=amp, channels_last=cl,
                            routes=routes, workers=workers, warmup=warmup, steps=steps, repeats=repeats,
                            cache_dir=cache_dir)
                for route, v in r.items():
                    rows.append({"model": model, "img_size": size, "batch": batch, "amp": amp,
                                 "channels_last": cl, "route": route, "img_per_s": v,
                                 "ratio": v / r["ceiling"]})
                    log(f"{model} {size}px b{batch} amp={'on' if amp else 'off'} "
                        f"channels_last={'on' if cl else 'off'} {route:9s} {v:9.1f} img/s  "
                        f"ratio {v / r['ceiling']:.2f}")
        ep = data_epoch(paths, 64, 64, device=device, workers=workers, cache_dir=cache_dir,
                        routes=(["cache-gpu"] if cuda else []) + ["cache-cpu", "jpeg"])
        for route, sec in ep.items():
            log(f"data alone, one epoch of {len(paths)} images at 64 px: {route:9s} {sec:.3f} s "
                f"({ep['jpeg'] / sec:.1f}x the jpeg path's speed)")
    return {"provenance": dict(provenance(device), workers=workers, files=len(paths), warmup=warmup,
                               steps=steps, repeats=repeats, quick=quick),
            "rows": rows,
            "data_epoch": [{"route": k, "seconds": v, "images": len(paths), "img_size": 64,
                            "speedup_vs_jpeg": ep["jpeg"] / v} for k, v in ep.items()]}


def markdown(result: dict) -> str:
    """The throughput table (one row per model/size/settings, one column per route, ratios to the
    ceiling) and the data-alone epochs."""
    rows = result["rows"]
    routes = list(dict.fromkeys(r["route"] for r in rows))
    head = "| model | px | batch | amp | channels_last | " + " | ".join(f"{r} img/s (ratio)" for r in routes) + " |"
    lines = [head, "|" + "---|" * (5 + len(routes))]
    keys = list(dict.fromkeys((r["model"], r["img_size"], r["batch"], r["amp"], r["channels_last"]) for r in rows))
    for k in keys:
        by = {r["route"]: r for r in rows if (r["model"], r["img_size"], r["batch"], r["amp"], r["channels_last"]) == k}
        cells = [f"{by[t]['img_per_s']:.1f} ({by[t]['ratio']:.2f})" if t in by else "–" for t in routes]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {'on' if k[3] else 'off'} | {'on' if k[4] else 'off'} | "
                     + " | ".join(cells) + " |")
    lines += ["", "| data alone, one epoch at 64 px | seconds | speed vs jpeg |", "|---|---|---|"]
    lines += [f"| {e['route']} | {e['seconds']:.3f} | {e['speedup_vs_jpeg']:.1f}x |" for e in result["data_epoch"]]
    return "\n".join(lines) + "\n"


def write(out, result: dict) -> None:
    from ..records import write_text_atomic
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "throughput.json", json.dumps(result, indent=1, default=str))
    write_text_atomic(out / "throughput.md", markdown(result))


def load(path) -> dict:
    p = Path(path)
    p = p / "throughput.json" if p.is_dir() else p
    return json.loads(p.read_text())
