"""What every method costs per training step, measured side by side: ``python -m dirlib bench``.

The paper says representation methods such as RankSim and ConR carry "heavy computational burdens".
This module measures that claim, and the paper's own method, in one process and one run:

* **Cases** (:data:`CASES`): ``utkface-resnet18`` (ResNet-18 at 64 px, batch 64, UTKFace-DIR shapes and
  age range), ``stsb-bilstm`` (the STS-B-DIR BiLSTM on sentence pairs, batch 128) and ``mlp`` (the
  synthetic dataset's MLP, batch 64). The image and text cases use *generated* inputs with the real
  datasets' shapes, label ranges, binnings and method defaults (the cost of a step does not depend
  on pixel values), so the benchmark needs no data files.
* **Methods**: Vanilla and every method of :mod:`dirlib.methods` (:func:`default_methods`: new
  methods are picked up as they land), built with :func:`dirlib.methods.build_method` exactly as
  for training, plus ``ranksim+frobenius``. ``frobenius:phase1`` is the spec of ``--method frobenius`` (its
  phase-1 regulariser); ``bmc`` (= ``bmse``), ``frobenius_reg`` (= phase 1) and ``rrt`` (its steps
  are Vanilla's, then head-only steps) are left out.
* **A step** is the trainer's own: :func:`dirlib.train.step_loss` (``prepare_batch`` -> forward with
  the feature transforms -> base loss -> callbacks' extra losses) then the loss check and
  :func:`dirlib.train.step_update` (backward, optimizer step, ``after_step``), on a batch already
  on the device (data loading is not part of it). Every method starts from the same model
  initialisation (a deep copy), has its own optimizer and callbacks, and sees the same batch.
* **Timing**: ``warmup`` untimed rounds, then ``repeats`` rounds; in every round each method does
  one step, in a fresh random order (round-robin: slow drift of the machine hits all methods
  alike). The ratio of a method is computed per round (its step time / Vanilla's step time in the
  same round); we report the median and the interquartile range over rounds. On CUDA every timed
  step is bracketed by ``torch.cuda.synchronize()``.
* **ConR** trains on two views: its step sees a batch of 2B (its recipe). It is reported as is,
  because that is its real cost.
* **FDS**: the per-step cost (feature calibration, active from epoch 1) is a ``step`` row; the
  statistics pass FDS runs after every epoch (a no-grad forward over the training loader, in train
  mode, as ``agedb-dir/train.py``) is measured separately over ``pass_batches`` batches and
  reported per training batch (``fds:epoch_pass``, kind ``amortised``): the pass visits as many
  batches as the epoch trains on, so this is what it adds to every step on average.
* **The paper's phases 2 and 3**: ``frobenius:phase3`` is a step of the fine-tuning phase
  (base loss + eq. 7 alignment, without the phase-1 term, the default ``sft_ordinal=False``);
  ``frobenius:phase2`` (kind ``once``) is one dataset pass for the prototype norms (measured over
  the case's training set and scaled linearly to the real training-set size ``n_real``) plus the
  NormNet fit (``norm_epochs`` full-batch Adam steps, measured). Its ``ratio`` is in Vanilla steps;
  ``phase1_epochs`` gives it as a fraction of one phase-1 epoch of the real dataset. Both phase rows
  also give ``vs_phase1`` (ratio to a phase-1 step, or to a phase-1 epoch for phase 2).
* **Memory**: ``act_mib``, the tensors autograd saves for backward in one step (activations and
  the regulariser's intermediates; parameters excluded; measured with
  ``torch.autograd.graph.saved_tensors_hooks``), which is the part of peak training memory that
  depends on the method; ``state_mib``, parameters + gradients + optimizer state; on CUDA also
  ``peak_extra_mib``, ``torch.cuda.max_memory_allocated`` during one step above what was
  allocated before it.

Output: one line per case and method, ``CASE METHOD ratio=R iqr=[Q1,Q3] ms=... act_mib=...``,
and with ``--out DIR``: ``bench.json`` (provenance: date, machine, CPU model, threads, load
average, torch version, git commit; settings; rows; raw per-round step times), ``bench.csv`` (the
rows), ``table.md`` (the rows as a Markdown table) and ``bench.png`` (the ratios, with IQR bars).
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.base import Binning, DIRData, ShotSpec
from .machine import cpu_model, git_commit, provenance  # noqa: F401  (bench.provenance is used by scripts)
from ..train import (Batch, Callback, DivergenceError, MethodSpec, RunConfig,
                    amp_setup, init_state, model_forward, resolve_device, step_loss,
                    step_update)

#: left out of the default method list, with the reason
SKIPPED = {"bmc": "same as bmse", "frobenius_reg": "same step as frobenius phase 1",
           "rrt": "its steps are vanilla's, then head-only steps",
           "inv": "same step as lds (a per-sample weight in the mean)",
           "sqinv": "same step as lds (a per-sample weight in the mean)",
           "supcr": "alias of rnc"}
#: compositions added to the default list
EXTRA_METHODS = ("ranksim+frobenius",)


# ----------------------------------------------------------------------------------- cases
class _Items(Dataset):
    """``(x[i], y[i], i)`` over in-memory tensors (``two_view``: ``(2, ...)`` = x and its mirror)."""

    def __init__(self, x, y, two_view: bool = False):
        self.x, self.y, self.two_view = x, y, two_view

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.two_view:
            x = torch.stack([x, x.flip(-1)])
        return x, self.y[i], i


@dataclass
class CaseSetup:
    """Everything one case needs: data, base config (method ``vanilla``), one training batch."""

    name: str
    title: str
    data: DIRData
    cfg: RunConfig
    x: torch.Tensor                    # one training batch (CPU)
    y: torch.Tensor
    idx: torch.Tensor
    x2: Optional[torch.Tensor] = None  # the same batch as two views (B, 2, ...), when the data has them
    n_real: int = 0                    # training-set size of the dataset the case stands for
    repeat_factor: int = 1             # cheap cases get more rounds (their steps are noisy)
    notes: List[str] = field(default_factory=list)


def _ages(rng: np.random.RandomState, n: int) -> np.ndarray:
    """Integer ages with a face-dataset-like long tail: 85 % N(35, 15), 15 % uniform on 1..100."""
    a = np.where(rng.rand(n) < 0.85, rng.normal(35, 15, n), rng.uniform(1, 100, n))
    return np.clip(np.round(a), 1, 100).astype(np.float64)


def case_utkface_resnet18(batch_size: int = 64, img_size: int = 64, pass_batches: int = 4,
                          seed: int = 0) -> CaseSetup:
    rng = np.random.RandomState(seed)
    n = batch_size * pass_batches
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, img_size, img_size, generator=g) * 2 - 1      # [-1, 1] as the face loaders
    labels = _ages(rng, n)
    y = torch.tensor(labels, dtype=torch.float32)
    train = _Items(x, y)
    data = DIRData(
        name="utkface-dir", train=train, val=train, test=train, train_labels=labels,
        val_labels=labels, test_labels=labels, binning=Binning.integer(0, 120), shot_spec=ShotSpec(),
        target_scale=1.0, main_metric="mae", model="resnet18", model_kwargs={"img_size": img_size},
        info={"generator": "dirlib.tools.bench.case_utkface_resnet18"},
        extra={"two_view": True, "train_two_view": _Items(x, y, two_view=True)})
    cfg = RunConfig(dataset="utkface-dir", method="vanilla", batch_size=batch_size, lr=1e-3,
                    img_size=img_size, seed=seed, progress=False, diagnostics=False)
    idx = torch.arange(batch_size)
    x2 = torch.stack([data.extra["train_two_view"][i][0] for i in range(batch_size)])
    return CaseSetup("utkface-resnet18", f"ResNet-18, {img_size} px, batch {batch_size} (UTKFace-DIR)",
                     data, cfg, x[:batch_size], y[:batch_size], idx, x2=x2, n_real=8086,
                     notes=["generated images in [-1, 1]; ages 1..100, long-tailed; n_real = "
                            "UTKFace-DIR's 8,086 training images",
                            "ConR's second view is the mirrored image (the loaders' two views are two "
                            "random crops/flips: same shape, same cost)"])


def case_stsb_bilstm(batch_size: int = 128, pass_batches: int = 4, seed: int = 0,
                     vocab: int = 15000, max_len: int = 40) -> CaseSetup:
    rng = np.random.RandomState(seed)
    n = batch_size * pass_batches
    # sentence lengths: log-normal fitted to Yang's STS-B-DIR training pairs (our tokeniser: mean
    # 12.0, median 10 tokens; log-mean 2.36, log-sd 0.49), clipped to [2, max_len]
    lengths = np.clip(np.round(np.exp(rng.normal(2.36, 0.49, (n, 2)))), 2, max_len).astype(int)
    tok = np.zeros((n, 2, max_len), dtype=np.int64)
    for i in range(n):
        for s in range(2):
            tok[i, s, :lengths[i, s]] = rng.randint(2, vocab, lengths[i, s])
    # scores: the coarse histogram of the real training scores (0-1 .. 4-5: 835 736 855 1553 1270)
    coarse = rng.choice(5, n, p=np.array([835, 736, 855, 1553, 1270]) / 5249)
    labels = np.round(np.clip(coarse + rng.rand(n), 0, 5), 1)
    y = torch.tensor(labels / 5.0, dtype=torch.float32)
    x = torch.from_numpy(tok)
    emb = torch.randn(vocab, 50, generator=torch.Generator().manual_seed(seed))
    emb[0] = 0
    train = _Items(x, y)
    data = DIRData(
        name="sts-b-dir", train=train, val=train, test=train, train_labels=labels, val_labels=labels,
        test_labels=labels, binning=Binning.uniform(0, 5, 0.1, float32=True), shot_spec=ShotSpec(),
        target_scale=5.0, main_metric="mse", gm_eps=1e-10, pearson=True, model="bilstm",
        model_kwargs={"embedding": emb}, info={"generator": "dirlib.tools.bench.case_stsb_bilstm"})
    cfg = RunConfig(dataset="sts-b-dir", method="vanilla", batch_size=batch_size, lr=1e-3,
                    weight_decay=1e-5, grad_clip=5.0, seed=seed, progress=False, diagnostics=False)
    return CaseSetup("stsb-bilstm", f"BiLSTM (2 x 256 per direction, 50-d embeddings), batch "
                     f"{batch_size} (STS-B-DIR)", data, cfg, x[:batch_size], y[:batch_size],
                     torch.arange(batch_size), n_real=5249,
                     notes=[f"generated token ids (vocabulary {vocab}, 50-d frozen random embeddings "
                            "as GloVe 6B-50d); sentence lengths and scores drawn like Yang's training "
                            "split; n_real = its 5,249 training pairs; the recipe's grad clip 5 and "
                            "weight decay 1e-5"])


def case_mlp(batch_size: int = 64, seed: int = 0, **_) -> CaseSetup:
    from ..data.synthetic import load_synthetic
    data = load_synthetic(seed=seed)
    cfg = RunConfig(dataset="synthetic", method="vanilla", batch_size=batch_size, lr=1e-3,
                    seed=seed, progress=False, diagnostics=False)
    # a fixed, shuffled batch (the training set is sorted by label)
    idx = torch.from_numpy(np.random.RandomState(seed).permutation(len(data.train_labels))[:batch_size])
    xs, ys = zip(*[data.train[int(i)][:2] for i in idx])
    return CaseSetup("mlp", f"MLP (16 -> 128 -> 64), batch {batch_size} (synthetic)", data, cfg,
                     torch.stack(xs), torch.stack(ys), idx, n_real=len(data.train_labels),
                     repeat_factor=10,
                     notes=["the synthetic dataset (dirlib.data.synthetic, 50 labels, 3,988 training "
                            "samples); its steps take about a millisecond, so it gets 10x the rounds"])


CASES: Dict[str, Callable[..., CaseSetup]] = {
    "utkface-resnet18": case_utkface_resnet18,
    "stsb-bilstm": case_stsb_bilstm,
    "mlp": case_mlp,
}


def skipped_methods() -> Dict[str, str]:
    """Methods the default list leaves out, with the reason (a multi-phase method is timed by
    its phase that declares a spec: :func:`bench_spec`)."""
    from ..methods import catalog
    return {k: v for k, v in SKIPPED.items() if k in catalog()}


def default_methods() -> List[str]:
    """``vanilla``, then every method except :func:`skipped_methods`, then
    :data:`EXTRA_METHODS`."""
    from ..methods import method_names
    skip = skipped_methods()
    names = [n for n in method_names() if n != "vanilla" and n not in skip]
    return ["vanilla"] + names + [m for m in EXTRA_METHODS if m not in names]


def bench_spec(method: str, spec: MethodSpec):
    """``(label, spec)`` of the step to time for ``method`` (``spec`` from ``build_method``).

    Single-phase methods: their spec. Multi-phase ones: the first phase that declares what it
    trains with (``Phase.spec``), labelled ``NAME:BENCH_LABEL``: ``frobenius`` -> its phase-1
    spec (``frobenius:phase1``; phases 2 and 3 are timed separately), ``rnc`` / ``supcr`` -> the
    encoder pre-training step (two views, RnC loss, no regression loss; ``rnc:pretrain``; its
    linear probe costs less than a vanilla step)."""
    if spec.phases is None:
        return method, spec
    from ..methods import catalog, parse_method
    multi = next(p for p in parse_method(method) if catalog()[p].multi_phase)
    timed = next((ph for ph in spec.phases if ph.spec is not None), None)
    if timed is None:
        raise NotImplementedError(f"{method}: multi-phase method ({multi}) without a phase that "
                                  "declares its spec (dirlib.methods.phases.Phase.spec)")
    return method.replace(multi, f"{multi}:{timed.bench_label or timed.name}"), timed.spec


# ----------------------------------------------------------------------------------- one method
def _nbytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        try:
            key = (t.untyped_storage().data_ptr(), t.device)
            if key in seen:
                continue
            seen.add(key)
            total += t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            total += t.numel() * t.element_size()
    return total


class MethodBench:
    """One method's training state (model copy, optimizer, callbacks) and its step on a fixed batch.

    ``step()`` is the trainer's step (:func:`dirlib.train.step_loss`, the loss check,
    :func:`dirlib.train.step_update`) on ``Batch(x, y, idx, bins, weights)`` built as
    :func:`dirlib.train.fit` builds it.
    """

    def __init__(self, label: str, cfg: RunConfig, data: DIRData, spec: MethodSpec,
                 model: torch.nn.Module, device: torch.device, x, y, idx,
                 train_loader=None):
        self.label, self.spec, self.device = label, spec, torch.device(device)
        st = init_state(cfg, data, spec, model, self.device)
        st.train_loader = train_loader
        for cb in spec.callbacks:
            cb.on_fit_start(st)
        self.st = st
        self.bins_dev = st.train_bins.to(self.device)
        self.w_dev = None if st.sample_weights is None else st.sample_weights.to(self.device)
        self.amp_dtype, self.scaler = amp_setup(cfg, self.device)
        self.set_batch(x, y, idx)
        model.train()

    def set_batch(self, x, y, idx):
        x = x.to(self.device)
        if self.st.cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self.x, self.y = x, y.to(self.device).float()
        self.idx = idx.cpu()
        self.idx_dev = self.idx.to(self.device)

    def batch(self) -> Batch:
        return Batch(x=self.x, y=self.y, idx=self.idx, bins=self.bins_dev[self.idx_dev],
                     weights=None if self.w_dev is None else self.w_dev[self.idx_dev])

    def step(self, check: bool = True):
        """One training step. ``check``: the trainer's per-step loss check and log conversion
        (what ``fit`` does on the CPU; on CUDA it does them every
        :data:`dirlib.train.CUDA_CHECK_EVERY` steps, so ``check=False`` is its CUDA step)."""
        st = self.st
        b, loss, logs = step_loss(st, self.spec, self.batch(), self.amp_dtype)
        if check:
            v = float(loss.detach())
            if not math.isfinite(v):
                raise DivergenceError(f"bench: {self.label}: loss became {v} at step {st.step + 1}")
            logs.update({k: float(t) if isinstance(t, torch.Tensor) else t for k, t in logs.items()})
        step_update(st, self.spec, loss, logs, self.scaler)

    def timed_step(self) -> float:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        self.step(check=not cuda)
        if cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0

    def extra_loss_overhead(self, n: int = 10) -> Optional[float]:
        """Median seconds of the callbacks' ``extra_loss`` terms alone, forward + backward to ``z``
        (and ``pred``) + the float conversion of their logs, on features from one no-grad forward;
        ``None`` when the method adds no extra loss (or none at this point of training). This
        isolates a regulariser's own cost from the step's noise (the encoder's backward is the
        same with or without it). A callback that needs state recorded during the forward pass
        (VAE / VIR / DER heads) raises here: the caller reports it as not measurable."""
        cbs = [cb for cb in self.spec.callbacks if type(cb).extra_loss is not Callback.extra_loss]
        if not cbs:
            return None
        st = self.st
        b = self.batch()
        for cb in self.spec.callbacks:
            b = cb.prepare_batch(st, b)
        with torch.no_grad():
            pred, z = model_forward(st.model, b.x, None, self.amp_dtype)

        def terms():
            total, logs = None, {}
            for cb in cbs:
                e, lg = cb.extra_loss(st, b)
                if e is not None:
                    total = e if total is None else total + e
                logs.update(lg)
            if total is not None:
                total.backward()
            {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in logs.items()}
            computed.append(total is not None)

        times, computed = [], []
        for _ in range(n + 2):
            b.z = z.detach().clone().requires_grad_()
            b.pred = pred.detach().clone().requires_grad_()
            times.append(_timed(terms, self.device))
        if not any(computed):
            return None
        return float(np.median(times[2:]))

    def memory_step(self) -> dict:
        """One (untimed) step that records what autograd saves, and the CUDA peak."""
        params = {(p.untyped_storage().data_ptr(), p.device) for p in self.st.model.parameters()}
        saved = []

        def pack(t):
            try:
                if (t.untyped_storage().data_ptr(), t.device) not in params:
                    saved.append(t)
            except (RuntimeError, NotImplementedError):
                saved.append(t)
            return t

        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            self.step()
        out = {"act_mib": _nbytes(saved) / 2 ** 20}
        saved.clear()
        model = self.st.model
        state = list(model.parameters()) + [p.grad for p in model.parameters()]
        for s in self.st.optimizer.state.values():
            state += [v for v in s.values() if isinstance(v, torch.Tensor)]
        out["state_mib"] = _nbytes(state) / 2 ** 20
        if cuda:
            torch.cuda.synchronize(self.device)
            out["peak_extra_mib"] = (torch.cuda.max_memory_allocated(self.device) - before) / 2 ** 20
        return out


# ----------------------------------------------------------------------------------- running
def _quantiles(a) -> tuple:
    a = np.asarray(a, dtype=np.float64)
    return tuple(float(v) for v in np.percentile(a, [50, 25, 75]))


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def bench_case(case: CaseSetup, methods: Sequence[str], *, device="cpu", repeats: int = 6,
               warmup: int = 1, phases: bool = True, fds_pass: bool = True, amp: bool = False,
               channels_last: bool = False, seed: int = 0, log: Callable = print) -> dict:
    """Time ``methods`` on ``case``; returns ``{"rows": [...], "raw_ms": {label: [...]}}`` and prints
    one line per row (see the module docstring). The stages, in order: build one runner per method
    (:func:`_build_runners`), time FDS's per-epoch pass (:func:`_time_fds_passes`), time the paper's
    phase 2 and add a phase-3 runner, time every runner's step round-robin with its memory
    (:func:`_time_steps`), time the extra losses alone (:func:`_extra_loss_overheads`), and write
    the rows (:func:`_case_rows`)."""
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if methods[0] != "vanilla":
        raise ValueError("the first method must be 'vanilla' (ratios are to it)")
    base = dataclasses.replace(case.cfg, device=str(device), amp=amp, channels_last=channels_last)
    pass_loader = DataLoader(case.data.train, batch_size=base.batch_size, shuffle=False)
    errors: Dict[str, str] = {}
    runners, make, frob = _build_runners(case, methods, base, device, seed, pass_loader, errors)
    fds_pass_s = _time_fds_passes(runners, pass_loader, device, fds_pass, errors)
    phase2 = None
    if phases and frob is not None:
        try:
            phase2, p3 = _phase2(case, frob, base, device, make)
            runners.append(p3)
        except Exception as e:
            errors["frobenius:phase2"] = f"{type(e).__name__}: {e}"
    raw, mem, failed = _time_steps(case, runners, warmup, repeats, seed, errors)
    van_med = float(np.median(raw["vanilla"]))
    _extra_loss_overheads(runners, failed, mem, van_med)
    rows = _case_rows(case, runners, raw, mem, failed, fds_pass_s, phase2, base, len(pass_loader),
                      errors)
    for d in rows:
        log(format_row(d))
    return {"rows": rows, "raw_ms": {k: [t * 1e3 for t in v] for k, v in raw.items()},
            "vanilla_ms": van_med * 1e3, "title": case.title, "notes": case.notes,
            "n_rounds": repeats * case.repeat_factor}


def _build_runners(case: CaseSetup, methods, base: RunConfig, device, seed: int, pass_loader,
                   errors: dict):
    """One :class:`MethodBench` per method, all from one initial model (Vanilla first); a method
    that cannot be built is reported in ``errors``, not hidden. Returns the runners, ``make``
    (which builds another runner the same way) and the runner of ``frobenius`` (or ``None``)."""
    from ..methods import build_method
    from ..models import build_model
    torch.manual_seed(seed)
    init = build_model(base.model or case.data.model, **{**case.data.model_kwargs, **base.model_kwargs})

    def make(label, method, spec=None, cfg=None):
        cfg = cfg or dataclasses.replace(base, method=method)
        if spec is None:
            spec = build_method(cfg, case.data)
            label, spec = bench_spec(method, spec)
        x = case.x
        if spec.train_views == 2 and case.x2 is not None:
            x = case.x2
        return MethodBench(label, cfg, case.data, spec, copy.deepcopy(init), device, x, case.y,
                           case.idx, train_loader=pass_loader)

    runners: List[MethodBench] = []
    frob = None
    for m in methods:
        try:
            runners.append(make(m, m))
        except Exception as e:
            errors[m] = f"{type(e).__name__}: {e}"
            continue
        if m == "frobenius":
            frob = runners[-1]
    if not runners or runners[0].label != "vanilla":
        raise RuntimeError(f"{case.name}: vanilla could not be built: {errors.get('vanilla')}")
    return runners, make, frob


def _time_fds_passes(runners, pass_loader, device, fds_pass: bool, errors: dict) -> Dict[str, list]:
    """FDS's per-epoch statistics pass, per batch, for each runner with FDS. Measured first: it
    also makes the calibration active for the step timings that follow."""
    fds_pass_s: Dict[str, list] = {}
    for r in runners:
        fds_cbs = [cb for cb in r.spec.callbacks if cb.name == "fds"]
        if not fds_cbs:
            continue
        r.st.cfg = dataclasses.replace(r.st.cfg, max_batches=len(pass_loader))
        times = []
        try:
            for ep in range(3 if fds_pass else 1):
                r.st.epoch = ep
                times.append(_timed(lambda: [cb.on_epoch_end(r.st) for cb in fds_cbs], device)
                             / len(pass_loader))
            r.st.epoch = 3 if fds_pass else 1   # calibration on (start_smooth = 1)
        except Exception as e:
            errors[r.label + ":epoch_pass"] = f"{type(e).__name__}: {e}"
            continue
        if fds_pass:
            fds_pass_s[r.label] = times
    return fds_pass_s


def _time_steps(case: CaseSetup, runners, warmup: int, repeats: int, seed: int, errors: dict):
    """Warm-up, one memory-measured step each, then ``repeats * case.repeat_factor`` rounds of
    every runner's step in a random order per round. Returns ``(raw seconds per label, memory per
    label, failed labels)``; a runner that fails is dropped and reported in ``errors``."""
    failed = set()

    def run(r, timed):
        if r.label in failed:
            return None
        try:
            return r.timed_step() if timed else r.step()
        except Exception as e:
            failed.add(r.label)
            errors[r.label] = f"{type(e).__name__}: {e}"
            return None

    for _ in range(warmup):
        for r in runners:
            run(r, False)
    mem = {}
    for r in runners:
        if r.label not in failed:
            try:
                mem[r.label] = r.memory_step()
            except Exception as e:
                failed.add(r.label)
                errors[r.label] = f"{type(e).__name__}: {e}"
    if "vanilla" in failed:
        raise RuntimeError(f"{case.name}: vanilla failed: {errors['vanilla']}")
    rng = np.random.RandomState(seed)
    raw = {r.label: [] for r in runners}
    for _ in range(repeats * case.repeat_factor):
        for i in rng.permutation(len(runners)):
            t = run(runners[i], True)
            if t is not None:
                raw[runners[i].label].append(t)
    return raw, mem, failed


def _extra_loss_overheads(runners, failed, mem: dict, van_med: float):
    """Each runner's extra losses timed alone, into ``mem`` (ms and % of Vanilla's step); a loss
    that needs forward-time state is noted as not measurable alone (not an error)."""
    for r in runners:
        if r.label in failed:
            continue
        try:
            o = r.extra_loss_overhead()
        except Exception as e:
            mem.setdefault(r.label, {})["note"] = (f"extra loss alone not measurable "
                                                   f"({type(e).__name__})")
            continue
        if o is not None:
            mem.setdefault(r.label, {}).update(reg_ms=o * 1e3, reg_pct=100 * o / van_med)


def _case_rows(case: CaseSetup, runners, raw, mem, failed, fds_pass_s, phase2, base: RunConfig,
               n_pass_batches: int, errors: dict) -> List[dict]:
    """The case's rows: one ``step`` row per runner (ratio to Vanilla's step in the same round),
    the ``amortised`` FDS passes, the ``once`` phase 2, and one ``error`` row per failure."""
    van = np.asarray(raw["vanilla"])
    van_med = float(np.median(van))

    def row(label, kind, ratios, secs, **kw):
        med, q1, q3 = _quantiles(ratios)
        ms, ms1, ms3 = _quantiles(np.asarray(secs) * 1e3)
        d = {"case": case.name, "method": label, "kind": kind, "ratio": med, "ratio_q1": q1,
             "ratio_q3": q3, "ms": ms, "ms_q1": ms1, "ms_q3": ms3, "n": len(ratios)}
        d.update(mem.get(label, {}) if kind == "step" else {})
        d.update(kw)
        return d

    rows: List[dict] = []
    for r in runners:
        t = np.asarray(raw[r.label])
        if r.label in failed or len(t) != len(van):
            continue
        rows.append(row(r.label, "step", t / van, t))
    by = {d["method"]: d for d in rows}
    p1 = by.get("frobenius:phase1")
    p1_med = p1["ms"] / 1e3 if p1 else None
    if "frobenius:phase3" in by and p1:
        t3 = np.asarray(raw["frobenius:phase3"])
        by["frobenius:phase3"]["vs_phase1"] = float(np.median(t3 / np.asarray(raw["frobenius:phase1"])))
    for label, times in fds_pass_s.items():
        rows.append(row(f"{label}:epoch_pass", "amortised", np.asarray(times) / van_med, times,
                        note=f"per training batch; measured over {n_pass_batches} batches"))
    if phase2 is not None:
        total = np.asarray(phase2["total_s"])
        kw = {"seconds": float(np.median(total)), "pass_s_real": phase2["pass_s_real"],
              "normnet_s": phase2["normnet_s"], "n_real": case.n_real,
              "note": phase2["note"]}
        if p1_med:
            epoch_s = math.ceil(case.n_real / base.batch_size) * p1_med
            kw["phase1_epochs"] = float(np.median(total)) / epoch_s
            kw["vs_phase1"] = kw["phase1_epochs"]
        rows.append(row("frobenius:phase2", "once", total / van_med, total, **kw))
    for label, err in errors.items():
        rows.append({"case": case.name, "method": label, "kind": "error", "ratio": float("nan"),
                     "error": err})
    return rows


def _phase2(case: CaseSetup, frob: MethodBench, base: RunConfig, device, make):
    """Time phase 2 on the phase-1 runner's model; return (timings, a phase-3 MethodBench)."""
    from ..losses.frobenius import fit_norm_net
    from ..methods.frobenius import alignment_spec, dataset_norms
    s = frob.spec.settings["frobenius"]
    data, model = case.data, frob.st.model
    n_pass = len(data.train_eval)
    pass_s = []
    for _ in range(2):
        t = _timed(lambda: dataset_norms(model, data, frob.st.cfg, device), device)
        pass_s.append(t)
    observed, counts = dataset_norms(model, data, frob.st.cfg, device)
    model.train()
    labels = data.binning.centers
    present = counts > 0
    # which bins count as majority does not change the fit's cost: take the fuller half
    majority = present & (counts >= np.median(counts[present]))
    if majority.sum() < 2:
        majority = present
    fit_s = []
    net = None
    for _ in range(2):
        t0 = time.perf_counter()
        net, _info = fit_norm_net(labels, observed, majority, epochs=s["norm_epochs"],
                                  lr=s["norm_lr"], seed=base.seed)
        fit_s.append(time.perf_counter() - t0)
    predicted = net.predict(labels).cpu().numpy()
    scale = case.n_real / n_pass
    pass_real = [p * scale for p in pass_s]
    total = [p + f for p, f in zip(pass_real, fit_s)]
    spec3 = alignment_spec(frob.spec, predicted, s["gamma"], s["relative"], s["sft_ordinal"])
    cfg3 = dataclasses.replace(frob.st.cfg, lr=s["sft_lr"], method="frobenius")
    p3 = make("frobenius:phase3", "frobenius", spec=spec3, cfg=cfg3)
    note = (f"dataset pass measured over {n_pass} samples, scaled to n_real={case.n_real}; NormNet "
            f"fit {s['norm_epochs']} Adam steps")
    return {"total_s": total, "pass_s_real": float(np.median(pass_real)),
            "normnet_s": float(np.median(fit_s)), "note": note}, p3


def target_verdict(d: dict, target_pct: float = 5.0) -> str:
    """The issue's target, on a ``frobenius:phase1`` step row: the regulariser's own cost
    (``reg_pct``, precise) and the whole-step ratio (noisier) against ``target_pct``."""
    reg = d.get("reg_pct")
    ok = reg is not None and reg <= target_pct
    step = (f"whole step {100 * (d['ratio'] - 1):+.1f}% (IQR {100 * (d['ratio_q1'] - 1):+.1f}% .. "
            f"{100 * (d['ratio_q3'] - 1):+.1f}%)")
    own = f"regulariser alone {reg:.2f}% of a vanilla step" if reg is not None else "no reg_pct"
    return (f"frobenius phase 1 on {d['case']}: {own}; {step}: "
            f"{'meets' if ok else 'MISSES'} the <= {target_pct:g}% target")


def format_row(d: dict) -> str:
    """``CASE METHOD ratio=R ...`` (one line per row)."""
    if d.get("kind") == "error":
        return f"{d['case']} {d['method']} ratio=nan error={d['error']}"
    s = (f"{d['case']} {d['method']} ratio={d['ratio']:.3f} iqr=[{d['ratio_q1']:.3f},"
         f"{d['ratio_q3']:.3f}] ms={d['ms']:.2f} kind={d['kind']}")
    for k in ("reg_ms", "reg_pct", "act_mib", "state_mib", "peak_extra_mib", "vs_phase1",
              "phase1_epochs"):
        if d.get(k) is not None:
            s += f" {k}={d[k]:.3g}"
    return s


# ----------------------------------------------------------------------------------- provenance
# ----------------------------------------------------------------------------------- output
CSV_FIELDS = ("case", "method", "kind", "ratio", "ratio_q1", "ratio_q3", "ms", "ms_q1", "ms_q3", "n",
              "reg_ms", "reg_pct", "act_mib", "state_mib", "peak_extra_mib", "vs_phase1", "phase1_epochs", "seconds",
              "note", "error")


def markdown_table(rows: Sequence[dict]) -> str:
    head = ("| case | method | kind | ratio to vanilla (median) | IQR | ms (median) | "
            "extra loss alone, % of vanilla step | saved for backward MiB | vs phase 1 |")
    lines = [head, "|" + "---|" * 9]
    for d in rows:
        if d.get("kind") == "error":
            lines.append(f"| {d['case']} | {d['method']} | error | - | - | - | - | - | "
                         f"{d['error']} |")
            continue
        act = f"{d['act_mib']:.1f}" if d.get("act_mib") is not None else ""
        reg = f"{d['reg_pct']:.2f}" if d.get("reg_pct") is not None else ""
        vs = f"{d['vs_phase1']:.3f}" if d.get("vs_phase1") is not None else ""
        if d["method"] == "frobenius:phase2" and d.get("phase1_epochs") is not None:
            vs = f"{d['phase1_epochs']:.3f} epochs"
        lines.append(f"| {d['case']} | {d['method']} | {d['kind']} | {d['ratio']:.3f} | "
                     f"{d['ratio_q1']:.3f}-{d['ratio_q3']:.3f} | {d['ms']:.2f} | {reg} | {act} | "
                     f"{vs} |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], cases: Optional[Sequence[str]] = None):
    """One panel per case: every step (and amortised) row's median ratio to Vanilla with its IQR,
    on a log axis; the paper's method in red, the FDS epoch pass in grey, the 5 % line dashed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    cases = list(cases or dict.fromkeys(d["case"] for d in rows))
    rs_all = {c: sorted([d for d in rows if d["case"] == c and d.get("kind") in ("step", "amortised")],
                        key=lambda d: d["ratio"]) for c in cases}
    height = 1.2 + 0.24 * max([len(v) for v in rs_all.values()] + [1])
    ncols = min(2, len(cases))
    nrows = -(-len(cases) // ncols)
    # two panels a row, 8.5 in wide: at a page's column width the text stays >= 9 px
    fig = Figure(figsize=(8.5, height * nrows), constrained_layout=True)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in axes[len(cases):]:
        ax.set_axis_off()
    for ax, c in zip(axes, cases):
        rs = rs_all[c]
        ypos = np.arange(len(rs))
        for y, d in zip(ypos, rs):
            color = ("tab:red" if d["method"].startswith("frobenius") or "frobenius" in d["method"]
                     else ("tab:gray" if d["kind"] == "amortised" else "tab:blue"))
            ax.plot([d["ratio_q1"], d["ratio_q3"]], [y, y], color=color, lw=2, alpha=0.6)
            ax.plot([d["ratio"]], [y], "o", color=color, ms=5)
        ax.set_yticks(ypos, [d["method"] for d in rs], fontsize=9)
        ax.axvline(1.0, color="k", lw=0.8)
        ax.axvline(1.05, color="tab:red", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time / vanilla step (median, IQR)")
        ax.set_title(c, fontsize=10)
        ax.grid(axis="x", which="both", alpha=0.3)
    return fig


def write_results(out: Path, result: dict):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    rows = result["rows"]
    with open(out / "bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for d in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in d.items()})
    (out / "table.md").write_text(markdown_table(rows))
    fig = plot(rows)
    fig.savefig(out / "bench.png", dpi=110)


def load_results(path) -> dict:
    """``bench.json`` of a results folder (for the book)."""
    p = Path(path)
    return json.loads((p / "bench.json" if p.is_dir() else p).read_text())


# ----------------------------------------------------------------------------------- entry
def identity_cost(data_dir=None, img_size: int = 32, log=print) -> dict:
    """Seconds to hash every UTKFace-DIR image (the data's content identity) with an empty digest
    index (cold) and with a filled one (warm: one ``stat`` per file), and of one training epoch of
    Vanilla at ``img_size`` px on this device, measured in the same run, and their ratios."""
    import tempfile
    import time
    from ..data import image_cache as IC
    from ..data.faces import list_utkface
    from ..data.base import resolve_data_dir
    from ..experiment import load_for_config
    from ..methods import build_method
    from ..train import RunConfig, fit
    folder = resolve_data_dir(data_dir) / "utkface" / "crop_part1"
    names, _ = list_utkface(folder)
    paths = [folder / n for n in names]
    old = os.environ.get("DIRLIB_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DIRLIB_CACHE"] = tmp
        try:
            t0 = time.perf_counter()
            IC.content_digest(paths)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            IC.content_digest(paths)
            warm = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("DIRLIB_CACHE", None)
            else:
                os.environ["DIRLIB_CACHE"] = old
    cfg = RunConfig.for_dataset("utkface-dir", epochs=1, img_size=img_size, progress=False,
                                diagnostics=False, device="cpu")
    data = load_for_config(cfg, data_dir)
    log(f"identity: {len(paths)} images hashed in {cold:.2f} s cold, {warm:.3f} s warm; "
        f"timing one epoch at {img_size} px ...")
    t0 = time.perf_counter()
    fit(cfg, data, build_method(cfg, data))
    epoch = time.perf_counter() - t0
    return {"images": len(paths), "cold_s": cold, "warm_s": warm, "epoch_s": epoch,
            "img_size": img_size, "threads": torch.get_num_threads(),
            "cold_per_epoch": cold / epoch, "warm_per_epoch": warm / epoch}


def identity_markdown(res: dict) -> str:
    return ("| what | seconds | / one epoch |\n|---|---|---|\n"
            f"| hash {res['images']} images, cold | {res['cold_s']:.2f} | {res['cold_per_epoch']:.4f} |\n"
            f"| the same, warm (stat only) | {res['warm_s']:.3f} | {res['warm_per_epoch']:.5f} |\n"
            f"| one epoch, Vanilla, {res['img_size']} px, {res['threads']} thread(s) | "
            f"{res['epoch_s']:.1f} | 1 |")


def add_arguments(b: argparse.ArgumentParser):
    b.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated cases (default: all): {', '.join(CASES)}")
    b.add_argument("--methods", default="default",
                   help="comma-separated method names (vanilla is always first), or 'default': "
                        "vanilla, every registered component but the duplicates and runners in "
                        "dirlib.tools.bench.skipped_methods(), and ranksim+frobenius")
    b.add_argument("--repeats", type=int, default=6, help="timed rounds per case (mlp: 10x)")
    b.add_argument("--warmup", type=int, default=1,
                   help="untimed rounds first (then one more untimed step measures memory)")
    b.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    b.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: as is)")
    b.add_argument("--amp", action="store_true", help="RunConfig.amp (CUDA only)")
    b.add_argument("--channels-last", action="store_true", help="RunConfig.channels_last")
    b.add_argument("--no-phases", action="store_true", help="skip the paper's phases 2 and 3")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default=None, help="write bench.json/.csv/.png and table.md here "
                                               "(the committed CPU results: results/bench)")
    b.add_argument("--throughput", action="store_true",
                   help="instead: images/s of training per data path against its ceiling "
                        "(dirlib/tools/throughput.py; writes throughput.json/.md to --out)")
    b.add_argument("--quick", action="store_true", help="--throughput: one small configuration (smoke run)")
    b.add_argument("--steps", type=int, default=2, help="--throughput: timed steps per round")
    b.add_argument("--rounds", type=int, default=3, help="--throughput: interleaved rounds (median kept)")
    b.add_argument("--workers", type=int, default=None, help="--throughput: JPEG DataLoader workers")
    b.add_argument("--identity", action="store_true",
                   help="instead: what content identity costs on UTKFace-DIR (hashing every "
                        "image, cold and warm) against one training epoch, measured in the same run")
    b.add_argument("--data-dir", default=None, help="--identity: the data root (default $DIRLIB_DATA)")
    b.add_argument("--img-size", type=int, default=32, help="--identity: the epoch's image size")


def run_bench(a) -> int:
    threads_before = torch.get_num_threads()
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        if a.identity:
            res = identity_cost(a.data_dir, img_size=a.img_size, log=lambda m: print(m, flush=True))
            print(identity_markdown(res))
            if a.out:
                res["machine"] = provenance("cpu")
                out = Path(a.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / "identity.json").write_text(json.dumps(res, indent=1, default=str))
                (out / "identity.md").write_text(identity_markdown(res) + "\n")
                print(f"# wrote {out}/identity.json, identity.md")
            return 0
        if a.throughput:
            from . import throughput
            res = throughput.run(a.device,
                                 quick=a.quick, steps=a.steps, repeats=a.rounds, workers=a.workers,
                                 log=lambda m: print(m, flush=True))
            print(throughput.markdown(res))
            if a.out:
                throughput.write(a.out, res)
                print(f"# wrote {a.out}/throughput.json, throughput.md")
            return 0
        return _run_bench(a)
    finally:
        torch.set_num_threads(threads_before)


def _run_bench(a) -> int:
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        raise SystemExit(f"unknown case(s) {bad}; valid: {', '.join(CASES)}")
    if a.methods == "default":
        methods = default_methods()
    else:
        from ..methods import parse_method
        methods = [m.strip() for m in a.methods.split(",") if m.strip()]
        for m in methods:
            parse_method(m)
        methods = ["vanilla"] + [m for m in methods if m != "vanilla"]
    if a.repeats < 1 or a.warmup < 0:
        raise SystemExit("--repeats must be >= 1 and --warmup >= 0")
    device = resolve_device(a.device)
    prov = provenance(device)
    settings = {"cases": cases, "methods": methods, "repeats": a.repeats, "warmup": a.warmup,
                "amp": a.amp, "channels_last": a.channels_last, "phases": not a.no_phases,
                "seed": a.seed, "skipped": SKIPPED}
    print(f"# dirlib bench: {prov['date']} torch {prov['torch']} on {prov['device']} "
          f"({prov['cpu_model']}, {prov['torch_threads']} threads, load {prov['loadavg_start']})",
          flush=True)
    t0 = time.time()
    result = {"provenance": prov, "settings": settings, "cases": {}, "rows": []}
    for c in cases:
        case = CASES[c](seed=a.seed)
        print(f"# {c}: {case.title}", flush=True)
        r = bench_case(case, methods, device=device, repeats=a.repeats, warmup=a.warmup,
                       phases=not a.no_phases, amp=a.amp, channels_last=a.channels_last,
                       seed=a.seed, log=lambda s: print(s, flush=True))
        result["rows"] += r.pop("rows")
        result["cases"][c] = r
    prov["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    prov["wall_s"] = time.time() - t0
    for d in result["rows"]:
        if d["case"] == "utkface-resnet18" and d["method"] == "frobenius:phase1":
            print("# " + target_verdict(d))
    print(f"# done in {prov['wall_s']:.0f} s; load average {prov['loadavg_end']}", flush=True)
    if a.out:
        write_results(Path(a.out), result)
        print(f"# wrote {a.out}/bench.json, bench.csv, table.md, bench.png")
    return 1 if any(d.get("kind") == "error" for d in result["rows"]) else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dirlib bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run_bench(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
