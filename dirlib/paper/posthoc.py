"""Phases 2 and 3 of the paper's method, run after the fact on a finished run: the paper's text
protocol, the published code's protocol, and a control for each.

::

    python -m dirlib posthoc --from RUN_DIR --variant code --out DIR

``RUN_DIR`` holds a completed run record (``run.json``) and its checkpoint (``ckpt/main.pt``). The
best-validation model of that run is loaded, checked against the record's test metrics, and handed
to one variant:

* ``text``: phase 2 as ``frobenius`` (prototype norms, NormNet with a sigmoid); phase 3 on the
  training split with the base loss + gamma * eq. 7;
* ``text-no-norm``: as ``text`` with gamma = 0 (the extra epochs alone);
* ``code``: phase 2 as the published code (mean per-sample norms, Linear + softplus on the raw
  label, a few Adam epochs); phase 3 on the validation split with MSE + the code's per-label
  batch-mean norm term;
* ``code-no-norm``: the same fine-tune on the validation split, MSE only;
* ``code-fitted``: as ``code`` with its norm net fitted to convergence (L-BFGS), so that an
  under-fitted net and the norm idea can be told apart;
* ``code-from-scratch``: as ``code`` on the base's architecture at its random initialisation, what
  the published script fine-tunes when its base checkpoint does not load (no checkpoint needed).

The text variants reuse the trainer (:func:`dirlib.train.fit`): ``sft_epochs`` at ``sft_lr`` with the
base method's own loss, the epoch selected on the validation split, test metrics tracked per epoch.

The code variants fine-tune with a fresh Adam (lr 1e-3, weight decay 1e-4, batch 128, train mode,
no schedule) for ``regression_epochs`` and evaluate after *every* epoch, so one fine-tune gives
every point of the published grid's fine-tune axis. ``linear_epochs`` (the norm net's epochs) is the
grid's other axis: one fine-tune per value. Each fine-tune runs twice: on the whole validation
split, and on a seeded half of it (stratified by label) with the other half held out. Three
selection rules read the grid (:func:`select_rules`):

* (a) ``best_test``: the grid point with the lowest test error, what a sweep that prints test metrics
  allows;
* (b) ``heldout``: the grid point with the lowest error on the held-out half (fine-tuned on the other
  half), reported with the whole-validation fine-tune at that point;
* (c) ``default``: the code's defaults, 10 fine-tune epochs x 10 norm-net epochs.

The published code: AllenPu/Frobs-DIR at commit 76571a2 (``AgeDB-DIR/post_hoc_train.py``,
``utils.py``, ``model.py``, ``train.sh``), described in the project's notes; none of it is copied here.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import records
from ..checkpoint import load as load_checkpoint
from ..experiment import earlier_attempts, recorded
from ..data.base import DIRData, SubsetItems
from ..methods.options import family
from ..metrics import shot_metrics
from ..train import (RunConfig, fit, make_loader, optimizer_step, predict, resolve_device,
                     seed_everything)

VARIANTS = ("text", "text-no-norm", "code", "code-no-norm", "code-fitted", "code-from-scratch")
#: the variants that run the published code's fine-tune on the validation split
CODE_VARIANTS = ("code", "code-no-norm", "code-fitted", "code-from-scratch")
#: the variants that need no trained base: they start from the base's architecture at the seed's
#: random initialisation (the published script's case when its checkpoint does not load)
FROM_SCRATCH_VARIANTS = ("code-from-scratch",)
#: the published sweep (``train.sh``): fine-tune epochs x norm-net epochs
PUBLISHED_REGRESSION_EPOCHS = (1, 3, 5, 10, 15, 20, 25, 30, 35, 40)
PUBLISHED_LINEAR_EPOCHS = (1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
#: the code's defaults (``--regression_epoch 10 --linear_epoch 10``): selection rule (c)
CODE_DEFAULT_POINT = (10, 10)
RULES = ("best_test", "heldout", "default")


@dataclass
class PosthocConfig:
    """One post-hoc variant's settings. ``None`` fields take the defaults of the base run's dataset
    (the ``frobenius`` method's, see ``docs/frobenius-choices.md``) when the run starts, and the record
    holds the resolved values.

    Text variants: ``sft_epochs`` (default ``max(1, epochs // 5)``), ``sft_lr`` (``lr / 10``), ``gamma``
    (0.01 on STS-B, 1 on ages; forced to 0 by ``text-no-norm``), ``norm_epochs`` / ``norm_lr`` (NormNet).
    Code variants: ``regression_epochs`` (the fine-tune's length; every epoch is evaluated),
    ``linear_epochs`` (the norm net's epochs, one fine-tune each), optimiser settings of the code, and
    ``split_seed`` for the held-out half (default: the base run's seed).
    """

    variant: str = "text"
    sft_epochs: Optional[int] = None
    sft_lr: Optional[float] = None
    gamma: Optional[float] = None
    norm_epochs: int = 2000
    norm_lr: float = 0.05
    regression_epochs: int = 20
    linear_epochs: tuple = (1, 10, 19)
    code_lr: float = 1e-3
    code_weight_decay: float = 1e-4
    code_batch_size: int = 128
    linear_lr: float = 1e-3
    linear_weight_decay: float = 1e-4
    linear_batch_size: int = 4
    split_seed: Optional[int] = None

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown post-hoc variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        le = self.linear_epochs
        if isinstance(le, int) and not isinstance(le, bool):
            le = (le,)
        if not isinstance(le, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in le):
            raise ValueError(f"posthoc option linear_epochs must be an integer or a list of "
                             f"integers (e.g. linear_epochs=[1,3,5]), got {le!r}")
        self.linear_epochs = tuple(le)
        for name in ("sft_epochs", "regression_epochs", "norm_epochs", "code_batch_size",
                     "linear_batch_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"posthoc option {name} must be an integer >= 1, got {v!r}")
        if not self.linear_epochs or min(self.linear_epochs) < 1:
            raise ValueError(f"posthoc option linear_epochs must be integers >= 1, got "
                             f"{self.linear_epochs!r}")
        for name in ("sft_lr", "norm_lr", "code_lr", "linear_lr"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"posthoc option {name} must be a positive number, got {v!r}")
        for name in ("gamma", "code_weight_decay", "linear_weight_decay"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"posthoc option {name} must be a number >= 0, got {v!r}")

    def resolved(self, base_cfg: RunConfig, family: str) -> "PosthocConfig":
        """A copy with every ``None`` filled from the base run (and the variant's own rules)."""
        c = dataclasses.replace(self)
        sts = family == "sts"
        if c.sft_epochs is None:
            c.sft_epochs = max(1, base_cfg.epochs // 5)
        if c.sft_lr is None:
            c.sft_lr = base_cfg.lr * 0.1
        if c.gamma is None:
            c.gamma = 0.01 if sts else 1.0
        if c.variant == "text-no-norm":
            c.gamma = 0.0
        if c.split_seed is None:
            c.split_seed = base_cfg.seed
        return c

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------ the code's
class SoftplusNormNet(nn.Module):
    """The published code's norm network: ``Linear(1, 1)`` then softplus, on the raw label value."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.linear(labels.reshape(-1, 1).float())).reshape(-1)


def fit_softplus_norm_net(labels, norms, *, epochs, snapshots=(), lr=1e-3, weight_decay=1e-4,
                          batch_size=4, seed=0):
    """Fit :class:`SoftplusNormNet` to ``(label, norm)`` pairs as the published code does: MSE,
    ``DataLoader(batch_size=4, shuffle=True)``, Adam (lr 1e-3, weight decay 1e-4), ``epochs`` passes.

    The initialisation and the shuffles come from ``seed`` (the caller's global RNG is untouched).
    ``snapshots``: epoch counts after which the network is copied; returns ``(net, {epoch: net})``.
    Fitting once for the largest count and copying on the way equals separate fits of each count
    from the same seed.
    """
    x = torch.as_tensor(np.asarray(labels, dtype=np.float32)).reshape(-1)
    t = torch.as_tensor(np.asarray(norms, dtype=np.float32)).reshape(-1)
    if x.shape != t.shape or x.numel() == 0:
        raise ValueError(f"fit_softplus_norm_net: labels and norms must be non-empty and of equal "
                         f"length, got {tuple(x.shape)} and {tuple(t.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(t).all()):
        raise ValueError("fit_softplus_norm_net: labels and norms must be finite")
    snaps = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SoftplusNormNet()
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        g = torch.Generator().manual_seed(seed)
        for epoch in range(1, int(epochs) + 1):
            order = torch.randperm(len(x), generator=g)
            for start in range(0, len(x), batch_size):
                j = order[start:start + batch_size]
                optimizer_step(opt, F.mse_loss(net(x[j]), t[j]))
            if epoch in snapshots:
                snaps[epoch] = copy.deepcopy(net).eval()
    return net.eval(), snaps


def norm_fit_error(net: nn.Module, labels, norms) -> dict:
    """How well a norm net fits its ``(label, norm)`` pairs: ``rmse``, ``r2`` (1 - SSE / SST; NaN
    with fewer than two distinct norms) and ``n``."""
    x = torch.as_tensor(np.asarray(labels, dtype=np.float32)).reshape(-1)
    t = np.asarray(norms, dtype=np.float64).reshape(-1)
    with torch.no_grad():
        p = net(x).double().numpy()
    sse = float(((p - t) ** 2).sum())
    sst = float(((t - t.mean()) ** 2).sum())
    return {"rmse": math.sqrt(sse / max(len(t), 1)), "r2": 1.0 - sse / sst if sst > 0 else math.nan,
            "n": int(len(t))}


def fit_softplus_norm_net_converged(labels, norms, *, max_iter: int = 1000):
    """:class:`SoftplusNormNet` fitted to convergence on ``(label, norm)`` pairs: the code's MSE
    objective, started from the least-squares line through ``softplus^-1(norm)`` and minimised by
    full-batch L-BFGS (float64, strong-Wolfe line search) until the gradient vanishes.

    Returns ``(net, info)`` with ``info``: ``iterations``, ``grad_norm`` at the end, ``loss`` (the
    mean squared error on the pairs). Deterministic: no random start, no shuffles.

    >>> net, info = fit_softplus_norm_net_converged([20, 30, 40, 50], [21.0, 31.0, 41.0, 51.0])
    >>> round(float(net(torch.tensor([60.0]))), 2), info["loss"] < 1e-8
    (61.0, True)
    """
    x = torch.as_tensor(np.asarray(labels, dtype=np.float64)).reshape(-1)
    t = torch.as_tensor(np.asarray(norms, dtype=np.float64)).reshape(-1)
    if x.shape != t.shape or x.numel() == 0:
        raise ValueError(f"fit_softplus_norm_net_converged: labels and norms must be non-empty and of "
                         f"equal length, got {tuple(x.shape)} and {tuple(t.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(t).all()) or (t <= 0).any():
        raise ValueError("fit_softplus_norm_net_converged: labels must be finite and norms finite "
                         "and positive")
    inv = t + torch.log(-torch.expm1(-t))                 # softplus^-1, stable for large norms
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    coef = torch.linalg.lstsq(design, inv.reshape(-1, 1)).solution.reshape(-1)
    w = coef[0].clone().requires_grad_(True)
    b = coef[1].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-12,
                            tolerance_change=1e-16, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((F.softplus(w * x + b) - t) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    loss = closure()
    grad = math.hypot(float(w.grad), float(b.grad))
    net = SoftplusNormNet()
    with torch.no_grad():
        net.linear.weight.fill_(float(w))
        net.linear.bias.fill_(float(b))
    return net.eval(), {"iterations": int(opt.state[opt._params[0]]["n_iter"]), "grad_norm": grad,
                        "loss": float(loss.detach())}


def per_label_sample_norms(model, data: DIRData, cfg: RunConfig, device, *, augmented=True):
    """Per bin: the mean of per-sample ``||z_i||`` over the training split (``data.train``, with its
    training augmentation when ``augmented``; the model in eval mode, no grad), and the counts.
    NaN for bins without training samples. This is the published code's per-label "Frobenius norm"
    (the mean of the norms, not the norm of the mean)."""
    from ..diagnostics import collect_features
    ds = data.train if augmented else data.train_eval
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the augmentation's draws
        z, _, _ = collect_features(model, make_loader(ds, max(cfg.batch_size, 128), False, cfg),
                                   device)
    n = np.linalg.norm(z.astype(np.float64), axis=1)
    b = data.train_bins
    counts = np.bincount(b, minlength=data.binning.n_bins)
    sums = np.bincount(b, weights=n, minlength=data.binning.n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    mean[counts == 0] = np.nan
    return mean, counts


def code_norm_loss(z: torch.Tensor, bins: torch.Tensor, target_per_bin: torch.Tensor) -> torch.Tensor:
    """The published code's phase-3 norm term: over the distinct labels ``u`` of the batch,
    ``sum_u (mean_{i: bin_i = u} ||z_i|| - target_u)^2`` (summed, not averaged, over labels)."""
    if z.dim() != 2 or bins.shape != (z.shape[0],):
        raise ValueError(f"code_norm_loss: z must be (B, d) and bins (B,), got {tuple(z.shape)} and "
                         f"{tuple(bins.shape)}")
    n = torch.linalg.vector_norm(z.float(), dim=1)
    uniq, inv, counts = torch.unique(bins, return_inverse=True, return_counts=True)
    mean = n.new_zeros(len(uniq)).index_add(0, inv, n) / counts.to(n.dtype)
    target = target_per_bin.to(n.device, n.dtype)[uniq]
    if torch.isnan(target).any():
        raise ValueError("code_norm_loss: a label of the batch has no target norm")
    return ((mean - target) ** 2).sum()


def stratified_halves(labels, binning, seed: int):
    """Split indices ``0..len(labels)-1`` into two halves, stratified by label bin and seeded:
    within each bin a seeded permutation, alternately to half A and half B (A gets the odd one out).
    Returns ``(fit_half, heldout_half)``, sorted."""
    b = binning.index(labels)
    rng = np.random.RandomState(seed)
    a_idx, b_idx = [], []
    for k in np.unique(b):
        members = rng.permutation(np.flatnonzero(b == k))
        a_idx.extend(members[0::2].tolist())
        b_idx.extend(members[1::2].tolist())
    return np.sort(np.array(a_idx, dtype=np.int64)), np.sort(np.array(b_idx, dtype=np.int64))


def items_metrics(model, items, labels, data: DIRData, cfg: RunConfig, device) -> dict:
    """Shot metrics of ``model`` on a dataset of items (labels in label space)."""
    p, _ = predict(model, make_loader(items, max(cfg.batch_size, 128), False, cfg), device)
    return shot_metrics(p * data.target_scale, np.asarray(labels), data.shot_reference,
                        spec=data.shot_spec, binning=data.binning, gm_eps=data.gm_eps,
                        pearson=data.pearson)


def code_finetune(model, data: DIRData, fit_idx, cfg: RunConfig, pc: PosthocConfig, device,
                  target_per_bin=None, heldout_idx=None) -> list:
    """Fine-tune ``model`` (in place) on the validation items ``fit_idx`` as the published code does,
    and evaluate after every epoch. Returns one dict per epoch: ``epoch``, ``train_loss`` (task loss
    plus norm term), ``norm_term`` and ``task_loss`` (means over batches; the norm term is 0 without
    targets), ``norm_to_task`` (their ratio), ``test`` shot metrics and, with ``heldout_idx``,
    ``heldout`` shot metrics on those validation items.

    Only ``data.val`` items reach the optimiser here; the training split is never read.

    Why not :func:`dirlib.train.fit`: this loop is the published script's (``post_hoc_train.py``):
    a plain MSE task loss whatever the base's loss, its own optimiser, batch size and shuffling, and
    a test evaluation after every epoch. It shares the optimiser step (:func:`optimizer_step`)."""
    fit_idx = np.asarray(fit_idx, dtype=np.int64)
    items = SubsetItems(data.val, fit_idx)
    bins_all = torch.as_tensor(data.binning.index(data.val_labels[fit_idx]), dtype=torch.long)
    targets = None if target_per_bin is None else torch.as_tensor(target_per_bin, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=pc.code_lr, weight_decay=pc.code_weight_decay)
    loader = make_loader(items, pc.code_batch_size, True, cfg, seed_offset=7)
    test_loader = make_loader(data.test, max(cfg.batch_size, 128), False, cfg)
    held = None
    if heldout_idx is not None:
        held = (SubsetItems(data.val, heldout_idx), data.val_labels[np.asarray(heldout_idx)])
    out = []
    for epoch in range(1, pc.regression_epochs + 1):
        loader.generator.manual_seed(cfg.seed * 1000 + 7 * epoch + 3)
        torch.manual_seed(cfg.seed * 100003 + epoch)
        model.train()
        tot, tot_norm, tot_task, nb = 0.0, 0.0, 0.0, 0
        for x, y, j in loader:
            x, y = x.to(device), y.to(device).float()
            pred, z = model(x)
            loss = task = F.mse_loss(pred, y)
            norm_term = torch.zeros((), device=device)
            if targets is not None:
                norm_term = code_norm_loss(z, bins_all[j].to(device), targets)
                loss = loss + norm_term
            if not torch.isfinite(loss):
                raise FloatingPointError(f"code fine-tune: loss became {float(loss)} at epoch {epoch}")
            optimizer_step(opt, loss)
            tot += float(loss.detach())
            tot_norm += float(norm_term.detach())
            tot_task += float(task.detach())
            nb += 1
        p, _ = predict(model, test_loader, device)
        task_mean = tot_task / max(nb, 1)
        rec = {"epoch": epoch, "train_loss": tot / max(nb, 1), "norm_term": tot_norm / max(nb, 1),
               "task_loss": task_mean,
               "norm_to_task": (tot_norm / max(nb, 1)) / task_mean if task_mean > 0 else math.nan,
               "test": shot_metrics(p * data.target_scale, data.test_labels, data.shot_reference,
                                    spec=data.shot_spec, binning=data.binning, gm_eps=data.gm_eps,
                                    pearson=data.pearson)}
        if held is not None:
            rec["heldout"] = items_metrics(model, held[0], held[1], data, cfg, device)
        out.append(rec)
    return out


# ------------------------------------------------------------------------------------ selection
def regression_grid(max_epochs: int) -> tuple:
    """The published fine-tune epochs that a run of ``max_epochs`` covers (all of them up to 40)."""
    return tuple(e for e in PUBLISHED_REGRESSION_EPOCHS if e <= max_epochs)


def select_rules(grid: list, metric: str) -> dict:
    """Apply the three selection rules to a code-variant grid.

    ``grid``: entries ``{"linear_epochs": L or None, "fit_on": "val" | "val_half", "epochs": [...]}``
    as :func:`run_posthoc` records them. Grid points are (L, e) for e in :func:`regression_grid`.
    Returns ``{rule: {"linear_epochs", "regression_epochs", "test", "chosen_by"}}``: rule (a) the lowest
    *test* ``metric`` (all shots) among the whole-validation fine-tunes; rule (b) the lowest held-out
    error among the half fine-tunes, reported with the whole-validation fine-tune at that point; rule
    (c) the code's default point (absent when the grid does not contain it). Ties go to the earlier
    point (fewer epochs, then fewer norm-net epochs)."""
    full = {g["linear_epochs"]: g for g in grid if g["fit_on"] == "val"}
    half = {g["linear_epochs"]: g for g in grid if g["fit_on"] == "val_half"}
    if not full:
        raise ValueError("select_rules: no whole-validation fine-tune in the grid")
    max_e = min(len(g["epochs"]) for g in full.values())
    points = [(e, lin) for e in regression_grid(max_e)
              for lin in sorted(full, key=lambda v: -1 if v is None else v)]

    def at(src, lin, e):
        return src[lin]["epochs"][e - 1]

    def pick(src, key):
        return min(points, key=lambda pt: (at(src, pt[1], pt[0])[key]["all"][metric], pt[0],
                                           -1 if pt[1] is None else pt[1]))

    out = {}
    e, lin = pick(full, "test")
    out["best_test"] = {"linear_epochs": lin, "regression_epochs": e,
                        "test": at(full, lin, e)["test"], "chosen_by": f"test {metric}"}
    if half:
        e, lin = pick(half, "heldout")
        out["heldout"] = {"linear_epochs": lin, "regression_epochs": e,
                          "test": at(full, lin, e)["test"],
                          "heldout_value": at(half, lin, e)["heldout"]["all"][metric],
                          "chosen_by": f"held-out half {metric}"}
    d_e, d_lin = CODE_DEFAULT_POINT
    lin_default = None if None in full else d_lin
    if lin_default in full and d_e <= max_e:
        out["default"] = {"linear_epochs": lin_default, "regression_epochs": d_e,
                          "test": at(full, lin_default, d_e)["test"], "chosen_by": "code defaults"}
    return out


def fine_tune_health(record: dict, metric: str, start_heldout: Optional[float] = None) -> list:
    """One row per held-out fine-tune (``fit_on == "val_half"``) of a code-family record: the
    held-out half's overall ``metric`` at the start (``record["start"]``, else ``start_heldout``,
    e.g. the base's whole-validation error for records made before the start was stored), after
    the last epoch, ``worse`` (the fine-tune ended above its start), and the first and last epochs'
    norm term / task loss. Records that predate ``task_loss`` derive it as ``train_loss -
    norm_term``."""
    start = (record.get("start") or {}).get("heldout", {}).get("all", {}).get(metric, start_heldout)
    out = []
    for g in record.get("grid", []):
        if g["fit_on"] != "val_half" or not g["epochs"]:
            continue

        def ratio(e):
            task = e.get("task_loss", e["train_loss"] - e["norm_term"])
            return e["norm_term"] / task if task > 0 else math.nan

        end = g["epochs"][-1]["heldout"]["all"][metric]
        out.append({"linear_epochs": g["linear_epochs"], "start": start, "end": end,
                    "start_stored": "start" in record,
                    "worse": bool(start is not None and end > start),
                    "norm_to_task_first": ratio(g["epochs"][0]),
                    "norm_to_task_last": ratio(g["epochs"][-1])})
    return out


# ------------------------------------------------------------------------------------ base runs
def load_base(base_dir, data: Optional[DIRData] = None, data_dir=None, check: bool = True,
              from_scratch: bool = False):
    """The base run's record, config, data and best-validation model (on the run's device).

    With ``check`` the loaded model is evaluated on the test split and must reproduce the record's
    test metrics (to 1e-6 relative): a checkpoint of another run or a stale one is refused.

    ``from_scratch``: no checkpoint is read; the model is the base's architecture at the random
    initialisation its run started from (``seed_everything(seed)`` then ``build_model``, as
    :func:`dirlib.train.fit` does)."""
    from ..experiment import apply_subset, load_for_config
    from ..models import build_model
    base_dir = Path(base_dir)
    rec_path = base_dir / "run.json"
    if not rec_path.exists():
        raise FileNotFoundError(f"posthoc: no run record {rec_path}; --from must name a run folder")
    rec = records.read_json(rec_path)
    if rec.get("status") != "completed":
        raise ValueError(f"posthoc: the base run {rec_path} is {rec.get('status')!r}, not completed")
    if rec.get("final") != "main":
        raise ValueError(f"posthoc: the base run {rec_path} is a multi-phase method "
                         f"({rec['config'].get('method')!r}); start from a single-phase run")
    cfg_d = dict(rec["config"])
    cfg_d["lr_milestones"] = tuple(cfg_d.get("lr_milestones") or ())
    cfg = RunConfig(**cfg_d)
    if records.stable_hash(cfg.to_dict()) != rec.get("config_hash"):
        raise ValueError(f"posthoc: {rec_path}: config does not match its config_hash "
                         f"(edited by hand?)")
    ckpt = base_dir / "ckpt" / "main.pt"
    if from_scratch:
        data = load_for_config(cfg, data_dir) if data is None else apply_subset(cfg, data)
        _check_data(rec, data, rec_path)
        seed_everything(cfg.seed)
        model = build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs})
        device = resolve_device(cfg.device)
        return rec, cfg, data, model.to(device), device
    if not ckpt.exists():
        raise FileNotFoundError(
            f"posthoc: the base run's checkpoint {ckpt} is missing (checkpoints are not committed); "
            f"rerun the base with the same config into {base_dir}: python -m dirlib audit run "
            f"recreates it")
    data = load_for_config(cfg, data_dir) if data is None else apply_subset(cfg, data)
    _check_data(rec, data, rec_path)
    ck = load_checkpoint(ckpt)
    if ck.get("run_key") is not None and ck["run_key"] != rec.get("resume_key"):
        raise ValueError(f"posthoc: {ckpt} belongs to another run (key {ck['run_key']}, the "
                         f"record's {rec.get('resume_key')})")
    if ck.get("phase") != "main" or not ck.get("best", {}).get("state"):
        raise ValueError(f"posthoc: {ckpt} holds no best-validation state of a 'main' phase")
    model = build_model(cfg.model or data.model, **{**data.model_kwargs, **cfg.model_kwargs})
    model.load_state_dict(ck["best"]["state"])
    device = resolve_device(cfg.device)
    model.to(device)
    if check:
        m = items_metrics(model, data.test, data.test_labels, data, cfg, device)
        key = data.main_metric
        got, want = m["all"][key], rec["test"]["all"][key]
        if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            raise ValueError(f"posthoc: {ckpt} does not reproduce the record's test {key} "
                             f"({got} != {want}); the checkpoint belongs to another run")
    return rec, cfg, data, model, device


def _check_data(rec: dict, data: DIRData, rec_path: Path):
    data_hash = records.data_hash(data)
    if rec.get("data_hash") and rec["data_hash"] != data_hash:
        raise ValueError(f"posthoc: the data differ from the base run's ({data_hash} != "
                         f"{rec['data_hash']} in {rec_path})")





# ------------------------------------------------------------------------------------ the run
def _stale_base(old: Optional[dict], base_rec: dict) -> str:
    """Why a stored post-hoc record ``old`` was not made from the base run ``base_rec`` (its data
    hash, its run key, or the base's test metrics it saw differ), or ``""``."""
    if old is None:
        return ""
    link = old.get("base") or {}
    if link.get("data_hash") != base_rec.get("data_hash"):
        return "its base was retrained on other data"
    if link.get("resume_key") and link["resume_key"] != base_rec.get("resume_key"):
        return "its base is another run (run key)"
    if old.get("base_test") is not None and old["base_test"] != base_rec.get("test"):
        return "its base was retrained (its test metrics differ)"
    return ""


def run_posthoc(base_dir, variant: str, out_dir, *, data: Optional[DIRData] = None, data_dir=None,
                config: Optional[PosthocConfig] = None, log=print,
                save_predictions: Optional[str] = None) -> dict:
    """Run one post-hoc variant on the finished run in ``base_dir`` and write ``out_dir/run.json``.

    The record links to its base (``base.path`` relative to ``out_dir``, ``base.config_hash``) and has
    its own ``config_hash`` (of the resolved post-hoc config and the base's hash). Rerunning the same
    command resumes: finished fine-tunes are kept, the text variants resume from their epoch
    checkpoint. A completed record of the same config is returned as it is.
    """
    from ..experiment import check_out_dir
    check_out_dir(Path(out_dir))
    if save_predictions and variant.startswith("code"):
        raise ValueError(f"--save-predictions: the {variant} record is a grid of fine-tunes read "
                         f"under three selection rules, not one model; predictions are saved for "
                         f"the text variants")
    pc = config or PosthocConfig(variant=variant)
    if pc.variant != variant:
        pc = dataclasses.replace(pc, variant=variant)
    out_dir = Path(out_dir)
    rec_path = out_dir / "run.json"
    base_rec, cfg, data, model, device = load_base(base_dir, data, data_dir,
                                                   from_scratch=variant in FROM_SCRATCH_VARIANTS)
    pc = pc.resolved(cfg, family(data))
    base_link = {"path": os.path.relpath(Path(base_dir).resolve(), out_dir.resolve()),
                 "config_hash": base_rec["config_hash"], "data_hash": base_rec.get("data_hash"),
                 "resume_key": base_rec.get("resume_key"), "method": cfg.method, "seed": cfg.seed}
    config_hash = records.stable_hash({"posthoc": pc.to_dict(), "base": base_rec["config_hash"]})
    out_dir.mkdir(parents=True, exist_ok=True)
    with records.RunLock(out_dir):
        old = records.read_json(rec_path) if rec_path.exists() else None
        if old is not None and old.get("config_hash") != config_hash:
            raise RuntimeError(f"{rec_path} holds a post-hoc run of another configuration "
                               f"({old.get('config_hash')} != {config_hash}); use another --out")
        why = _stale_base(old, base_rec)
        if why:
            # a completed or partial run made from another training of its base (S2): kept
            # beside, never reused
            from ..experiment import _set_aside
            kept = _set_aside(rec_path)
            shutil.rmtree(out_dir / "ckpt", ignore_errors=True)
            log(f"stale {rec_path}: {why}; kept as {kept.name}, rerun")
            old = None
        if old is not None and old.get("status") == "completed":
            log(f"skip  {rec_path}: completed")
            return old
        record = {"schema": "dirlib.posthoc/1", "status": "running", "started": records.now(),
                  "variant": variant, "posthoc": pc.to_dict(), "base": base_link,
                  "config": {**cfg.to_dict(), "method": f"{cfg.method}>{variant}"},
                  "config_hash": config_hash, "data_hash": base_rec.get("data_hash"),
                  "git": records.provenance(rec_path), "versions": records.versions(),
                  "device": str(device),
                  "base_test": base_rec["test"]}
        if old is not None and old.get("grid"):
            record["grid"] = old["grid"]   # finished fine-tunes of an interrupted run
        record["attempts"] = earlier_attempts(old)
        records.write_json(rec_path, record)
        with recorded(record, rec_path):
            if variant.startswith("text"):
                record.update(_run_text(cfg, data, model, pc, out_dir, device, config_hash))
                if save_predictions:
                    from ..experiment import write_predictions
                    record["predictions"] = write_predictions(model, data, cfg, out_dir,
                                                              save_predictions)
            else:
                _run_code(cfg, data, model, pc, device, record, rec_path, log)
        return record


def _run_text(cfg, data, model, pc: PosthocConfig, out_dir: Path, device, run_key: str) -> dict:
    """The paper's text protocol: its phases 2 and 3 (:mod:`dirlib.methods.frobenius`) on the
    trained base model."""
    from ..methods import build_method
    from ..methods.frobenius import alignment_spec, norm_targets
    spec = build_method(cfg, data)
    if spec.phases is not None:
        raise ValueError(f"posthoc: the base method {cfg.method!r} is multi-phase")
    _, norm_phase = norm_targets(model, data, cfg, device, epochs=pc.norm_epochs, lr=pc.norm_lr)
    spec = alignment_spec(spec, norm_phase["per_label"]["predicted_norm"], pc.gamma)
    cfg3 = copy.deepcopy(cfg)
    cfg3.epochs, cfg3.lr, cfg3.lr_milestones = pc.sft_epochs, pc.sft_lr, ()
    ckpt = out_dir / "ckpt"
    ckpt.mkdir(parents=True, exist_ok=True)
    res = fit(cfg3, data, spec, model=model, ckpt_path=ckpt / "sft.pt", phase="sft",
              track_test=True, run_key=run_key)
    res.pop("model")
    return {"phases": {"norm": norm_phase, "sft": res}, "final": "sft", "test": res["test"],
            "val": res["val"]}


def _code_norm_targets(model, data: DIRData, cfg: RunConfig, pc: PosthocConfig, device, record):
    """Phase 2 of the code protocol: ``{grid key: per-label target norms}`` (the observed norm on
    majority labels, the norm net's prediction elsewhere), and ``record["norm"]``. ``code`` and
    ``code-from-scratch`` fit the code's net for each of ``pc.linear_epochs`` (the grid key);
    ``code-fitted`` fits it to convergence once (key ``None``: the grid has no norm-net axis)."""
    t0 = time.time()
    shots = data.bin_shots()
    observed, counts = per_label_sample_norms(model, data, cfg, device, augmented=True)
    majority = (shots == "many") & (counts > 0)
    labels = data.binning.centers
    if pc.variant == "code-fitted":
        net, info = fit_softplus_norm_net_converged(labels[majority], observed[majority])
        nets = {None: net}
    else:
        _, nets = fit_softplus_norm_net(labels[majority], observed[majority],
                                        epochs=max(pc.linear_epochs), snapshots=pc.linear_epochs,
                                        lr=pc.linear_lr, weight_decay=pc.linear_weight_decay,
                                        batch_size=pc.linear_batch_size, seed=cfg.seed)
    per_l, targets = {}, {}
    for key, net in nets.items():
        with torch.no_grad():
            predicted = net(torch.as_tensor(labels, dtype=torch.float32)).numpy()
        targets[key] = np.where(majority, observed, predicted)
        per_l["fitted" if key is None else str(key)] = {
            "predicted_norm": predicted,
            "weight": float(net.linear.weight.detach().reshape(())),
            "bias": float(net.linear.bias.detach().reshape(())),
            "fit": norm_fit_error(net, labels[majority], observed[majority])}
    record["norm"] = {"time_s": time.time() - t0, "label": labels, "count": counts,
                      "shot": shots, "observed_norm": observed, "majority": majority,
                      "by_linear_epochs": per_l}
    if pc.variant == "code-fitted":
        record["norm"]["converged"] = info
    return targets


def _run_code(cfg, data, model, pc: PosthocConfig, device, record, rec_path, log):
    start_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fit_half, held_half = stratified_halves(data.val_labels, data.binning, pc.split_seed)
    record["split"] = {"seed": pc.split_seed, "n_fit": len(fit_half), "n_heldout": len(held_half),
                       "heldout_index_hash": records.stable_hash(held_half.tolist())}
    # where every fine-tune starts from: the collapse flag compares the last epoch with it
    record["start"] = {
        "test": items_metrics(model, data.test, data.test_labels, data, cfg, device),
        "heldout": items_metrics(model, SubsetItems(data.val, held_half), data.val_labels[held_half],
                                 data, cfg, device)}
    targets_by_l = {None: None}
    if pc.variant != "code-no-norm":
        targets_by_l = _code_norm_targets(model, data, cfg, pc, device, record)
    grid = record.setdefault("grid", [])
    done = {(g["linear_epochs"], g["fit_on"]) for g in grid}
    full_idx = np.arange(len(data.val_labels))
    for lin, targets in targets_by_l.items():
        for fit_on, idx, held in (("val", full_idx, None), ("val_half", fit_half, held_half)):
            if (lin, fit_on) in done:
                continue
            t0 = time.time()
            model.load_state_dict(start_state)
            seed_everything(cfg.seed)
            epochs = code_finetune(model, data, idx, cfg, pc, device, target_per_bin=targets,
                                   heldout_idx=held)
            grid.append({"linear_epochs": lin, "fit_on": fit_on, "n_fit": int(len(idx)),
                         "time_s": time.time() - t0, "epochs": epochs})
            records.write_json(rec_path, record)
            log(f"  {pc.variant} L={lin} on {fit_on}: {time.time() - t0:.0f}s")
    sel = select_rules(grid, data.main_metric)
    record["selected"] = sel
    record["test"] = sel["heldout"]["test"]
    record["final"] = "heldout"
