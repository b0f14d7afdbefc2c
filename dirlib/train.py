"""One training loop for every method.

``fit(cfg, data, method)`` trains ``model`` with Adam and a step schedule, selects the epoch with the
best overall validation MAE (MSE for STS-B), evaluates the test set once with that checkpoint and
returns a result dict (the run record's body). Methods plug in through :class:`Callback` hooks:

* ``on_fit_start(st)`` / ``on_epoch_start(st)`` / ``on_epoch_end(st)`` / ``after_step(st)``
* ``prepare_batch(st, batch) -> batch``: rewrite a batch before the forward pass (two views)
* ``feature_transform(st, batch)``: a function applied to ``z`` before the head (FDS)
* ``extra_loss(st, batch) -> (tensor | None, logs)``: regularisers added to the base loss
* ``param_groups()``: its own optimizer groups; ``state_dict()``: saved in checkpoints (resume).
  A callback is an ``nn.Module``: what it owns moves and saves with it.

``st`` is the :class:`TrainState`; ``batch`` a :class:`Batch` holding ``x, y, idx, bins, weights``
and, after the forward pass, ``pred`` and ``z``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import load as load_checkpoint
from .checkpoint import save as save_checkpoint
from .data.base import SHOTS, DIRData
from .metrics import per_label_errors, shot_metrics


class RunPaused(Exception):
    """A run stopped on purpose after epoch ``epoch`` of its first phase (see :func:`pausing`), its
    checkpoint saved; ``best`` is the best validation ``metric`` (overall) up to that epoch. The
    same call without the pause resumes it from that checkpoint."""

    def __init__(self, epoch: int, best: float, metric: str):
        super().__init__(f"paused after epoch {epoch} (best validation {metric} {best:.6g})")
        self.epoch, self.best, self.metric = epoch, best, metric


class _Pause:
    def __init__(self, after_epoch: int):
        self.after_epoch, self.phase = int(after_epoch), None


_PAUSE: List[_Pause] = []


@contextlib.contextmanager
def pausing(after_epoch: int):
    """Within the block, the first phase that :func:`fit` trains stops after ``after_epoch`` epochs
    with :class:`RunPaused`, once its checkpoint is written (successive halving's rung: see
    :mod:`dirlib.tools.tune`). A phase that is already past that epoch, or has no more epochs
    than it, or runs without a checkpoint, is not paused."""
    if after_epoch < 1:
        raise ValueError(f"pausing: after_epoch must be >= 1, got {after_epoch}")
    _PAUSE.append(_Pause(after_epoch))
    try:
        yield
    finally:
        _PAUSE.pop()


def _pause_here(phase: str, epochs_done: int, total: int, ckpt_path) -> bool:
    if not _PAUSE or ckpt_path is None:
        return False
    p = _PAUSE[-1]
    if p.phase is None:
        p.phase = phase               # the first phase trained in the block is the one paused
    return phase == p.phase and epochs_done == p.after_epoch and epochs_done < total


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


# ----------------------------------------------------------------------------------- config
#: RunConfig fields that were added after run records were stored, with their default
LATE_FIELDS = {"data_cache": "off", "encoder_weights": None}


def dataset_recipe(dataset: str) -> dict:
    """The recipe a run on ``dataset`` starts from (its dataset file's ``RECIPE``; none for data
    dirlib does not know, such as ``from_arrays`` data)."""
    from .datasets import get
    try:
        return dict(get(dataset).recipe)
    except (ValueError, OSError):
        return {}


def canonical_method(name) -> str:
    """A method name as records store it: lower case, known parts joined by one ``+``. An empty
    part (``lds+``, ``+lds``, ``lds++fds``) or a repeated one is refused by name.

    >>> canonical_method(" LDS+fds ")
    'lds+fds'
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--method: expected a method name, got {name!r}")
    parts = [p.strip().lower() for p in name.strip().split("+")]
    if any(not p for p in parts):
        raise ValueError(f"--method {name!r}: an empty part (a '+' at an end, or two in a row); "
                         f"combine methods as a+b")
    if len(set(parts)) != len(parts):
        raise ValueError(f"--method {name!r}: a part is repeated")
    return "+".join(parts)


@dataclass
class RunConfig:
    """Everything that defines a run (its hash goes into the run record)."""

    dataset: str = "synthetic"
    method: str = "vanilla"
    loss: Optional[str] = None           # mse | l1 | focal_l1 | focal_mse | huber; None: dataset default
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_milestones: tuple = ()            # epochs at which lr *= lr_gamma (benchmark: 60, 80 of 90)
    lr_gamma: float = 0.1
    grad_clip: Optional[float] = None    # STS-B benchmark: 5.0
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    num_workers: int = 0
    img_size: int = 64
    model: Optional[str] = None          # None: the dataset's default encoder
    model_kwargs: dict = field(default_factory=dict)
    data_kwargs: dict = field(default_factory=dict)
    method_kwargs: dict = field(default_factory=dict)
    max_batches: Optional[int] = None    # cap on training batches per epoch (quick runs)
    subset_train: Optional[int] = None   # quick runs: random training subset (DIRData.subset)
    subset_eval: Optional[int] = None    # quick runs: balanced val/test subsets
    eval_max_samples: Optional[int] = None
    progress: bool = True
    diagnostics: bool = True             # per-label norms / train MAE at the end
    amp: bool = False                    # CUDA only: autocast the encoder (bf16; fp16 + GradScaler
                                         # where bf16 is missing); the head and losses stay float32
    channels_last: bool = False          # NHWC memory format for the model and 4-d inputs (images)
    data_cache: str = "off"              # face images: off (PIL per item) | cpu | gpu (DeviceBatches)
    encoder_weights: Optional[str] = None  # dirlib.run: a hash of the user encoder's initial weights

    @classmethod
    def for_dataset(cls, dataset: str, method: str = "vanilla", seed: int = 0,
                    **overrides) -> "RunConfig":
        """The one way to build a run's config: the dataset's recipe (:func:`dataset_recipe`), then
        ``overrides`` (any field). The CLI, sweeps, tuning, the book's pages and ``dirlib.run``
        all call it."""
        d = dataset_recipe(dataset)
        d.update(overrides)
        if "lr_milestones" in d:
            d["lr_milestones"] = tuple(d["lr_milestones"] or ())
        return cls(dataset=dataset, method=method, seed=seed, **d)

    def to_dict(self) -> dict:
        """The config as a record stores it. Fields added after records were stored
        (:data:`LATE_FIELDS`) are left out at their default, so those records keep their hash."""
        d = dataclasses.asdict(self)
        for k, default in LATE_FIELDS.items():
            if d.get(k) == default:
                d.pop(k)
        return d

    def validate(self) -> "RunConfig":
        """Refuse by name a config that would train nothing or has no meaning (zero or negative
        epochs, batches or sizes; a non-positive learning rate; negative weight decay ...)."""
        def bad(name, want):
            raise ValueError(f"option {name} (--{name.replace('_', '-')}) must be {want}, got "
                             f"{getattr(self, name)!r}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        for name in ("epochs", "batch_size", "img_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "an integer >= 1")
        for name in ("max_batches", "subset_train", "subset_eval"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                bad(name, "an integer >= 1, or unset")
        if self.eval_max_samples is not None:
            bad("eval_max_samples", "unset: every evaluation covers its whole split (subset_eval "
                                    "draws smaller balanced val/test splits)")
        if not is_int(self.seed) or not 0 <= self.seed < 2 ** 32:
            bad("seed", f"an integer in [0, {2 ** 32 - 1}]")
        if self.optimizer not in ("adam", "sgd"):
            bad("optimizer", "adam or sgd")
        if canonical_method(self.method) != self.method:
            bad("method", f"written as {canonical_method(self.method)!r} (lower case, parts "
                          f"joined by one '+')")
        for k, v in (self.data_kwargs or {}).items():
            if k in _FIELD_NAMES and v != getattr(self, k):
                raise ValueError(f"data argument {k}={v!r} contradicts option {k} "
                                 f"(--{k.replace('_', '-')}) = {getattr(self, k)!r}: set it once, "
                                 f"as the option, so that the record says what ran")
        if self.data_cache not in ("off", "cpu", "gpu"):
            bad("data_cache", "off, cpu or gpu")
        if not is_int(self.num_workers) or self.num_workers < 0:
            bad("num_workers", "an integer >= 0")
        for name, lo, want in (("lr", 0.0, "a number > 0"), ("lr_gamma", 0.0, "a number > 0")):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (math.isfinite(v)
                                                                               and v > lo):
                bad(name, want)
        if not isinstance(self.weight_decay, (int, float)) or not (
                math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            bad("weight_decay", "a number >= 0")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            bad("grad_clip", "a number > 0, or unset")
        if any(not is_int(m) or m < 1 for m in self.lr_milestones):
            bad("lr_milestones", "integers >= 1")
        return self


_FIELD_NAMES = {f.name for f in dataclasses.fields(RunConfig)}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise RuntimeError(f"--device {name!r} is not a device: use auto, cpu or cuda[:N]") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise RuntimeError(f"--device {name!r} cannot train: use auto, cpu or cuda[:N]")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise RuntimeError(f"--device {name!r}: this PyTorch has no MPS support here; use --device "
                           f"auto or cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but CUDA is not available on this machine; "
                           "use --device auto (picks cuda when present) or --device cpu")
    return dev


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------- hooks
@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor          # model space
    idx: torch.Tensor
    bins: torch.Tensor       # label bin per sample
    weights: Optional[torch.Tensor] = None
    pred: Optional[torch.Tensor] = None
    z: Optional[torch.Tensor] = None


class Callback(torch.nn.Module):
    """A method's hooks into the loop. A callback is an ``nn.Module``: the modules and tensors it
    owns are its children and buffers, so ``.to(device)`` (done at fit start) and ``state_dict``
    (saved in every checkpoint) need no code of its own; other state (a ``torch.Generator``) goes
    through ``get_extra_state`` / ``set_extra_state``. Its parameters train with the model, in one
    optimizer group, unless :meth:`param_groups` says otherwise. ``order`` places it in the list:
    batch rewriters (< 0) first, head modules (> 0) last, so they see the feature after every
    other transform."""

    name = "callback"
    order = 0

    def on_fit_start(self, st: "TrainState"): self.to(st.device)
    def on_epoch_start(self, st: "TrainState"): ...
    def prepare_batch(self, st: "TrainState", batch: Batch) -> Batch: return batch
    def feature_transform(self, st: "TrainState", batch: Batch) -> Optional[Callable]: return None
    def extra_loss(self, st: "TrainState", batch: Batch): return None, {}
    def after_step(self, st: "TrainState"): ...
    def on_epoch_end(self, st: "TrainState"): ...

    def param_groups(self) -> list:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params}] if params else []


@dataclass
class TrainState:
    cfg: RunConfig
    data: DIRData
    model: torch.nn.Module
    device: torch.device
    optimizer: torch.optim.Optimizer = None
    scheduler: object = None
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    train_bins: torch.Tensor = None
    sample_weights: Optional[torch.Tensor] = None
    logs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    train_loader: object = None
    method: "MethodSpec" = None


# ----------------------------------------------------------------------------------- losses
#: the regression losses a run can name (``--loss``, a table's ``loss``)
LOSSES = ("mse", "l1", "huber", "focal_l1", "focal_mse")


def elementwise_loss(name: str, pred: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
    if name == "mse":
        return (pred - y) ** 2
    if name == "l1":
        return (pred - y).abs()
    if name == "huber":
        return F.smooth_l1_loss(pred, y, reduction="none", beta=kw.get("huber_beta", 1.0))
    if name in ("focal_l1", "focal_mse"):
        from .losses.focal import focal_l1, focal_mse
        fn = focal_l1 if name == "focal_l1" else focal_mse
        return fn(pred, y, kw.get("focal_beta", 0.2), kw.get("focal_gamma", 1.0), reduction="none")
    raise ValueError(f"unknown loss {name!r}; valid: mse, l1, huber, focal_l1, focal_mse")


@dataclass
class MethodSpec:
    """What a method (or a '+'-composition of methods) gives the trainer: built by
    :func:`dirlib.methods.build_method`."""

    name: str
    loss: str
    loss_kwargs: dict = field(default_factory=dict)
    sample_weights: Optional[np.ndarray] = None
    callbacks: List[Callback] = field(default_factory=list)
    base_loss: Optional[Callable] = None   # replaces the elementwise loss (BMSE, DER, VIR ...)
    train_views: int = 1                      # 2: train on data.extra["train_two_view"] (ConR)
    settings: dict = field(default_factory=dict)   # each method's resolved options (the record's method_info)
    phases: Optional[list] = None             # multi-phase methods: their dirlib.methods.phases.Phase list


# ----------------------------------------------------------------------------------- eval
def make_loader(ds, batch_size, shuffle, cfg: RunConfig, seed_offset=0, drop_last=False):
    """A ``DataLoader`` over ``ds``; with ``cfg.data_cache`` on and a dataset that can draw its own
    batches on the device (face images), its :class:`~dirlib.data.image_cache.DeviceBatches`."""
    if cfg.data_cache != "off" and hasattr(ds, "device_batches"):
        return ds.device_batches(batch_size, shuffle, resolve_device(cfg.device), cfg.data_cache,
                                 seed=cfg.seed * 1000 + seed_offset, drop_last=drop_last)
    g = torch.Generator()
    g.manual_seed(cfg.seed * 1000 + seed_offset)
    pin = torch.cuda.is_available() and cfg.device != "cpu"
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=cfg.num_workers,
                      generator=g, drop_last=drop_last, pin_memory=pin,
                      persistent_workers=cfg.num_workers > 0)


@torch.no_grad()
def predict(model, loader, device, *, return_features=False, max_samples=None, desc=None,
            progress=False):
    """Predictions (model space) and targets (model space) [and features] over a loader."""
    model.eval()
    preds, ys, zs = [], [], []
    n = 0
    for x, y, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        pred, z = model(x.to(device, non_blocking=True))
        if pred.reshape(-1).shape[0] != len(y):
            raise ValueError(f"the model returned {pred.reshape(-1).shape[0]} predictions for a "
                             f"batch of {len(y)} inputs: every sample must get exactly one (does "
                             f"the encoder pool or mix samples across the batch?)")
        preds.append(pred.float().cpu())
        ys.append(y.float())
        if return_features:
            zs.append(z.float().cpu())
        n += len(y)
        if max_samples and n >= max_samples:
            break
    p, t = torch.cat(preds).numpy(), torch.cat(ys).numpy()
    if return_features:
        return p, t, torch.cat(zs).numpy()
    return p, t


def evaluate(model, data: DIRData, split: str, cfg: RunConfig, device, loader=None) -> dict:
    ds = getattr(data, split)
    loader = loader or make_loader(ds, max(cfg.batch_size, 128), False, cfg)
    p, t = predict(model, loader, device)
    labels = getattr(data, f"{split}_labels")
    if len(p) != len(labels):
        raise ValueError(f"evaluation of the {split} split saw {len(p)} samples of {len(labels)}: "
                         f"every sample must be evaluated exactly once")
    # the items' targets are the split's labels, in order: else every metric is silently wrong
    off = np.abs(np.asarray(t, dtype=np.float64).reshape(-1) * data.target_scale - labels)
    if not np.all(off <= 1e-4 * np.maximum(1.0, np.abs(labels))):
        raise ValueError(f"the {split} split's items carry targets that are not its labels (at "
                         f"{int((off > 1e-4 * np.maximum(1.0, np.abs(labels))).sum())} of "
                         f"{len(labels)} positions): the data's {split}_labels must follow its "
                         f"items' order")
    pred = p * data.target_scale
    m = shot_metrics(pred, labels, data.shot_reference, spec=data.shot_spec, binning=data.binning,
                     gm_eps=data.gm_eps, pearson=data.pearson)
    return {"metrics": m, "pred": pred, "labels": labels}


def _main(m: dict, metric: str) -> float:
    return m["all"][metric]


# ----------------------------------------------------------------------------------- fit
def build_optimizer(cfg: RunConfig, model, callbacks) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    for cb in callbacks:
        groups += cb.param_groups()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


# ----------------------------------------------------------------------------------- one step
#: on CUDA the loss is checked for NaN/inf, and logged, every this many steps (one host sync each);
#: on the CPU every step (syncs cost nothing there), so a divergence stops before its update.
CUDA_CHECK_EVERY = 50


def check_interval(device: torch.device) -> int:
    """Steps between host-side loss checks (see :data:`CUDA_CHECK_EVERY`)."""
    return CUDA_CHECK_EVERY if device.type == "cuda" else 1


def amp_setup(cfg: RunConfig, device: torch.device):
    """``(autocast dtype or None, GradScaler or None)`` for ``cfg.amp`` on ``device``.

    bf16 where the GPU has it (no loss scaling needed), else fp16 with a ``GradScaler`` (its scale is
    not checkpointed: a resumed fp16 run starts from the default scale again). On the CPU
    ``amp=True`` is ignored with a warning (CPU autocast is slower than float32 on most CPUs)."""
    if not cfg.amp:
        return None, None
    if device.type != "cuda":
        warnings.warn("RunConfig.amp=True is ignored on the CPU (mixed precision is CUDA-only here)",
                      stacklevel=2)
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def model_forward(model, x, feature_transform=None, amp_dtype=None):
    """``pred, z = model(x, feature_transform)``; with ``amp_dtype`` the encoder runs under autocast
    and ``z`` is cast back to float32 before the feature transform and the head (a bf16 prediction
    has 8 significant bits: steps of 0.25 years at age 50), so losses and regularisers see float32."""
    if amp_dtype is None:
        return model(x, feature_transform=feature_transform)
    if not (hasattr(model, "encoder") and hasattr(model, "head")):
        raise TypeError("amp needs a dirlib.models.Regressor-like model with .encoder and .head")
    with torch.autocast(device_type=x.device.type, dtype=amp_dtype):
        z = model.encoder(x)
    z = z.float()
    h = feature_transform(z) if feature_transform is not None else z
    return model.head(h).squeeze(-1), z


def step_loss(st: TrainState, spec: MethodSpec, b: Batch, amp_dtype=None):
    """The loss of one step: callbacks' ``prepare_batch`` -> forward (with their feature transforms)
    -> base loss (elementwise or ``spec.base_loss``) -> callbacks' ``extra_loss``.

    Returns ``(b, loss, logs)``: the (rewritten) batch with ``pred`` and ``z`` set, the scalar loss
    and the log terms; ``logs["base"]`` is a detached 0-d tensor (no host sync here)."""
    callbacks = spec.callbacks
    for cb in callbacks:
        b = cb.prepare_batch(st, b)
    transforms = [f for f in (cb.feature_transform(st, b) for cb in callbacks) if f is not None]
    ft = None
    if transforms:
        def ft(z, _fs=transforms):
            for f in _fs:
                z = f(z)
            return z
    pred, z = model_forward(st.model, b.x, ft, amp_dtype)
    if pred.shape[0] != b.y.shape[0]:
        raise ValueError(f"the model returned {pred.shape[0]} predictions for a batch of "
                         f"{b.y.shape[0]} inputs: every sample must get exactly one (does the "
                         f"encoder pool or mix samples across the batch?)")
    b.pred, b.z = pred, z
    if spec.base_loss is not None:
        loss = spec.base_loss(pred, b.y, b.weights)
    else:
        el = elementwise_loss(spec.loss, pred, b.y, **spec.loss_kwargs)
        loss = (el * b.weights).mean() if b.weights is not None else el.mean()
    logs = {"base": loss.detach()}
    for cb in callbacks:
        extra, l2 = cb.extra_loss(st, b)
        if extra is not None:
            loss = loss + extra
        logs.update(l2)
    return b, loss, logs


def optimizer_step(optimizer, loss, *, params=None, grad_clip: Optional[float] = None, scaler=None):
    """One optimiser step on ``loss``: gradients cleared (to ``None``), backward (scaled when a
    ``torch.amp.GradScaler`` is given), the gradient norm of ``params`` clipped to ``grad_clip``
    when set, then the step. The one step that :func:`fit`, the post-hoc fine-tunes
    (``dirlib.paper.posthoc``) and the throughput benchmark (``dirlib.tools.throughput``) share."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()


def step_update(st: TrainState, spec: MethodSpec, loss, logs: dict, scaler=None):
    """Backward, optional gradient clipping, optimizer step (:func:`optimizer_step`),
    ``st.step += 1``, callbacks' ``after_step``."""
    optimizer_step(st.optimizer, loss, params=st.model.parameters(), grad_clip=st.cfg.grad_clip,
                   scaler=scaler)
    st.step += 1
    st.logs = logs
    for cb in spec.callbacks:
        cb.after_step(st)


def _scalar(v):
    return float(v.detach()) if isinstance(v, torch.Tensor) else v


def init_state(cfg: RunConfig, data: DIRData, spec: MethodSpec, model, device) -> TrainState:
    """Model on ``device`` (channels-last if asked), per-sample bins and weights, the optimizer:
    the state one training step needs (shared by :func:`fit` and the benchmark)."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    st = TrainState(cfg=cfg, data=data, model=model, device=device, method=spec)
    st.train_bins = torch.as_tensor(data.train_bins, dtype=torch.long)
    if spec.sample_weights is not None:
        w = np.asarray(spec.sample_weights, dtype=np.float64)
        if not np.all(np.isfinite(w)):
            raise ValueError("sample weights contain NaN/inf")
        st.sample_weights = torch.as_tensor(w, dtype=torch.float32)
    st.optimizer = build_optimizer(cfg, model, spec.callbacks)
    return st


def _rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state()}


def _set_rng_state(s):
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


class StepLog:
    """The losses of the steps not checked yet: one host sync per ``every`` steps (every step on the
    CPU, before the update, so a NaN loss never reaches the weights). :meth:`check` converts the
    callbacks' tensor logs to floats, keeps the running loss and each sample's prediction of the
    epoch, and raises :class:`DivergenceError` on a non-finite loss."""

    def __init__(self, phase: str, epoch: int, every: int, n_train: int):
        self.phase, self.epoch, self.every = phase, epoch, every
        self.pending, self.total, self.count = [], 0.0, 0
        self.pred = np.full(n_train, np.nan)

    def add(self, loss, b: "Batch", batch_index: int, step: int, logs: dict) -> None:
        self.pending.append((loss.detach(), len(b.y), batch_index, step, logs, b.idx, b.pred.detach()))
        if len(self.pending) >= self.every:
            self.check(step)

    def check(self, step: int) -> None:
        if not self.pending:
            return
        vals = torch.stack([p[0].double() for p in self.pending]).cpu().tolist()
        for v, (_, n, bj, gstep, lg, pidx, ppred) in zip(vals, self.pending):
            if not math.isfinite(v):
                self.pending.clear()
                late = "" if gstep == step else \
                    f" (detected {step - gstep} steps later: on CUDA the loss is checked " \
                    f"every {self.every} steps)"
                terms = {k: _scalar(t) for k, t in lg.items()}
                raise DivergenceError(
                    f"{self.phase} phase: loss became {v} at epoch {self.epoch + 1}, batch {bj + 1} "
                    f"(global step {gstep}){late}; terms: {terms}. Lower the learning rate or "
                    f"the regulariser weights; the last good checkpoint is kept.")
            lg.update({k: _scalar(t) for k, t in lg.items()})
            self.pred[pidx.cpu().numpy()] = ppred.float().cpu().numpy()
            self.total += v * n
            self.count += n
        self.pending.clear()

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


def _resume(ckpt_path, phase: str, model, st: "TrainState", callbacks,
            run_key: Optional[str] = None) -> tuple:
    """``(start_epoch, best)`` from the phase's checkpoint at ``ckpt_path``, restoring the model,
    optimiser, scheduler, callbacks, history and RNG; ``(0, fresh best)`` without one. With
    ``run_key``, a checkpoint that carries another run's key (or none) is refused."""
    best = {"value": math.inf, "epoch": -1, "state": None}
    if ckpt_path is None or not Path(ckpt_path).exists():
        return 0, best
    ck = load_checkpoint(ckpt_path)
    if run_key is not None and ck.get("run_key") != run_key:
        from .checkpoint import CheckpointError, restart_hint
        raise CheckpointError(f"checkpoint {ckpt_path} belongs to another run (its key "
                              f"{ck.get('run_key') or 'is missing'}, this run's {run_key}): it is "
                              f"not resumed. {restart_hint(ckpt_path)}")
    if ck.get("phase") != phase:
        return 0, best
    model.load_state_dict(ck["model"])
    st.optimizer.load_state_dict(ck["optimizer"])
    st.scheduler.load_state_dict(ck["scheduler"])
    for cb, s in zip(callbacks, ck["callbacks"]):
        cb.load_state_dict(s)
    st.history, st.step = ck["history"], ck["step"]
    _set_rng_state(ck["rng"])
    st.extra["resumed_from_epoch"] = ck["epoch"]
    return ck["epoch"] + 1, ck["best"]


def _train_epoch(st: "TrainState", spec: MethodSpec, cfg: RunConfig, data: DIRData, loader, device,
                 phase: str, bins_dev, weights_dev, amp_dtype, scaler, check_every: int) -> StepLog:
    """One epoch of steps over ``loader``; returns its :class:`StepLog` (all steps checked)."""
    epoch = st.epoch
    n_batches = len(loader) if cfg.max_batches is None else min(len(loader), cfg.max_batches)
    bar = tqdm(loader, total=n_batches, desc=f"{phase} epoch {epoch + 1}/{cfg.epochs}",
               leave=False, disable=not cfg.progress)
    log = StepLog(phase, epoch, check_every, len(data.train_labels))
    for bi, (x, y, idx) in enumerate(bar):
        if bi >= n_batches:
            break
        x = x.to(device, non_blocking=True)
        if cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True).float()
        idx_dev = idx.to(device, non_blocking=True)
        b = Batch(x=x, y=y, idx=idx, bins=bins_dev[idx_dev],
                  weights=None if weights_dev is None else weights_dev[idx_dev])
        b, loss, logs = step_loss(st, spec, b, amp_dtype)
        log.add(loss, b, bi, st.step + 1, logs)
        step_update(st, spec, loss, logs, scaler)
        if not log.pending and (check_every > 1 or bi % 10 == 0):
            bar.set_postfix(loss=f"{log.mean:.4f}")
    log.check(st.step + 1)
    return log


def _epoch_record(st: "TrainState", data: DIRData, log: StepLog, val: dict, train_time: float) -> dict:
    """The history entry of an epoch: loss, time, lr, the running training MAE per shot (from the
    predictions made during the epoch) and the validation metrics."""
    seen = ~np.isnan(log.pred)
    tr_err = np.abs(log.pred[seen] * data.target_scale - data.train_labels[seen])
    tr_shots = data.shots(data.train_labels[seen])
    return {"epoch": st.epoch + 1, "train_loss": log.mean, "train_time_s": train_time,
            "lr": st.optimizer.param_groups[0]["lr"],
            "train_mae_running": {s: float(tr_err[tr_shots == s].mean()) if (tr_shots == s).any()
                                  else None for s in SHOTS},
            "val": {s: {k: v for k, v in val[s].items()} for s in ("all",) + SHOTS},
            **{f"log/{k}": v for k, v in st.logs.items()}}


def fit(cfg: RunConfig, data: DIRData, spec: MethodSpec, model: Optional[torch.nn.Module] = None,
        *, ckpt_path: Optional[Path] = None, phase: str = "main",
        select_on: Optional[str] = None, track_test: bool = False,
        run_key: Optional[str] = None) -> dict:
    """Train one phase and return its results (metrics, history, best epoch, timings, model).

    ``track_test``: also evaluate the test split after every epoch and keep its shot metrics in the
    history (``history[k]["test"]``). Selection still uses the validation split only; the per-epoch
    test numbers let an audit read every point of an epoch grid from one run.

    ``ckpt_path``: if given, a checkpoint is written there at every epoch end, and an existing one
    (same phase) is resumed from: a killed run restarted with the same command loses at most the
    epoch in progress. ``run_key``: the run's identity, stored in every checkpoint and checked on
    resuming, so that a checkpoint of another run (a copied folder, a removed record) is refused.
    """
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    if model is None:
        from .models import build_model
        model = build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs})
    callbacks = spec.callbacks
    st = init_state(cfg, data, spec, model, device)
    st.scheduler = torch.optim.lr_scheduler.MultiStepLR(st.optimizer, list(cfg.lr_milestones),
                                                        gamma=cfg.lr_gamma)
    metric = select_on or data.main_metric
    start_epoch, best = _resume(ckpt_path, phase, model, st, callbacks, run_key)

    train_ds = data.extra["train_two_view"] if spec.train_views == 2 and "train_two_view" in data.extra \
        else data.train
    train_loader = st.train_loader = make_loader(train_ds, cfg.batch_size, True, cfg, seed_offset=1)
    val_loader = make_loader(data.val, max(cfg.batch_size, 128), False, cfg)
    for cb in callbacks:
        cb.on_fit_start(st)
    # per-sample lookups live on the device: indexing them there needs no blocking copy per step
    bins_dev = st.train_bins.to(device)
    weights_dev = None if st.sample_weights is None else st.sample_weights.to(device)
    amp_dtype, scaler = amp_setup(cfg, device)
    check_every = check_interval(device)
    t_fit = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        st.epoch = epoch
        # the loader's shuffle must not depend on whether we resumed: reseed per epoch
        train_loader.generator.manual_seed(cfg.seed * 1000 + 7 * epoch + 1)
        torch.manual_seed(cfg.seed * 100003 + epoch)
        for cb in callbacks:
            cb.on_epoch_start(st)
        model.train()
        t0 = time.time()
        log = _train_epoch(st, spec, cfg, data, train_loader, device, phase, bins_dev, weights_dev,
                           amp_dtype, scaler, check_every)
        st.logs = {k: _scalar(v) for k, v in st.logs.items()}
        st.scheduler.step()
        train_time = time.time() - t0
        for cb in callbacks:
            cb.on_epoch_end(st)
        val = evaluate(model, data, "val", cfg, device, loader=val_loader)["metrics"]
        rec = _epoch_record(st, data, log, val, train_time)
        if track_test:
            rec["test"] = evaluate(model, data, "test", cfg, device)["metrics"]
        st.history.append(rec)
        v = _main(val, metric)
        if v < best["value"]:
            best = {"value": v, "epoch": epoch + 1,
                    "state": {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}}
        if ckpt_path is not None:
            save_checkpoint({"phase": phase, "run_key": run_key, "epoch": epoch,
                             "model": model.state_dict(),
                             "optimizer": st.optimizer.state_dict(),
                             "scheduler": st.scheduler.state_dict(),
                             "callbacks": [cb.state_dict() for cb in callbacks],
                             "history": st.history, "step": st.step, "best": best,
                             "rng": _rng_state()}, ckpt_path)
            if _pause_here(phase, epoch + 1, cfg.epochs, ckpt_path):
                raise RunPaused(epoch + 1, best["value"], metric)
        if cfg.progress:
            tqdm.write(f"[{phase}] epoch {epoch + 1}/{cfg.epochs} loss {rec['train_loss']:.4f} "
                       f"val {metric} {v:.4f} (best {best['value']:.4f} @ {best['epoch']}) "
                       f"{train_time:.1f}s")
    fit_time = time.time() - t_fit
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test = evaluate(model, data, "test", cfg, device)
    val = evaluate(model, data, "val", cfg, device)
    notes = constant_prediction_notes(test["pred"], test["labels"], phase)
    out = {"phase": phase, "best_epoch": best["epoch"], "best_val": best["value"],
           "select_on": metric, "val": val["metrics"], "test": test["metrics"],
           "test_per_label": per_label_errors(test["pred"], test["labels"], data.binning),
           "history": st.history, "time_s": fit_time, "epochs_run": cfg.epochs - start_epoch,
           "resumed_from_epoch": st.extra.get("resumed_from_epoch"), "model": model}
    if cfg.diagnostics:
        # a warning of the diagnostics (e.g. an ordinality score over a shot with one label) goes
        # into the record as a note, not only to the terminal
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["train_per_label"] = train_diagnostics(model, data, cfg, device)
        notes += sorted({f"diagnostics: {w.category.__name__}: {w.message}" for w in caught})
    if notes:
        out["notes"] = notes
    return out


def constant_prediction_notes(pred, labels, phase: str = "main", ratio: float = 0.05) -> list:
    """A warning (and its text, for the record) when the test predictions are nearly constant:
    their spread is below ``ratio`` of the labels'. Names the constant and the labels' median.

    >>> import numpy as np
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     notes = constant_prediction_notes(np.zeros(50), np.arange(50.0))
    >>> notes[0][:46]
    'main: the test predictions are nearly constant'
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    sp, sl = float(np.std(pred)), float(np.std(labels))
    if not (sl > 0 and sp < ratio * sl):
        return []
    msg = (f"{phase}: the test predictions are nearly constant: their sd {sp:.3g} is under "
           f"{100 * ratio:.0f}% of the labels' sd {sl:.3g}; they sit near "
           f"{float(np.median(pred)):.4g}, and the labels' median is {float(np.median(labels)):.4g}. "
           f"The model may predict one value for every input: check the loss (a table's `loss`), "
           f"the learning rate and the epochs")
    warnings.warn(msg, stacklevel=3)
    return [msg]


def train_diagnostics(model, data: DIRData, cfg: RunConfig, device) -> dict:
    """Per-label prototype norms and training MAE on the un-augmented training set (Figs. 2/5)."""
    from .diagnostics import ordinality_score, per_label_stats
    loader = make_loader(data.train_eval, max(cfg.batch_size, 128), False, cfg)
    p, _, z = predict(model, loader, device, return_features=True)
    df = per_label_stats(z, p, data.train_labels, data.binning, target_scale=data.target_scale,
                         shots=data.bin_shots())
    df = df[df["count"] > 0]
    score = ordinality_score(df["label"].to_numpy(), df["proto_norm"].to_numpy(),
                             shots=df["shot"].to_numpy())
    return {"per_label": df.to_dict(orient="list"), "ordinality": score}
