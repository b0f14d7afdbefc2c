"""Multi-phase methods as lists of phases.

A :class:`Phase` is a name and a function of the :class:`PhaseRun` (the run so far: the config,
the data, the composed method, the model the last phase left, every finished phase's result).
:func:`run_phases` runs them in order and hands each result to ``on_phase_end`` (the run record is
written there, so a killed run keeps its finished phases). ``bench`` times a phase's step from its
``spec``; the post-hoc command and the notebooks call the phase functions of
:mod:`dirlib.methods.frobenius` themselves.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..train import MethodSpec, RunConfig, fit, resolve_device


@dataclass
class Phase:
    """One phase: ``run(r) -> result`` (the record's ``phases[name]``). ``spec``: what the phase
    trains with, where that is known before it runs (``dirlib.tools.bench`` times its step under
    ``bench_label``)."""

    name: str
    run: Callable[["PhaseRun"], dict]
    spec: Optional[MethodSpec] = None
    bench_label: Optional[str] = None


@dataclass
class PhaseRun:
    cfg: RunConfig
    data: object
    spec: MethodSpec
    ckpt_dir: Path
    model: object = None
    results: dict = field(default_factory=dict)
    run_key: Optional[str] = None          # the run's identity, checked in every checkpoint

    @property
    def device(self):
        return resolve_device(self.cfg.device)

    def fit(self, phase: str, spec: Optional[MethodSpec] = None, **cfg_changes) -> dict:
        """Train ``phase`` from the current model (a fresh one for the first phase) with ``spec``
        (default: the composed method) and the run's config changed by ``cfg_changes``; keep the
        trained model and return the phase's result."""
        cfg = dataclasses.replace(copy.deepcopy(self.cfg), **cfg_changes)
        res = fit(cfg, self.data, spec or self.spec, model=self.model,
                  ckpt_path=self.ckpt_dir / f"{phase}.pt", phase=phase, run_key=self.run_key)
        self.model = res.pop("model")
        return res


def run_phases(phases: List[Phase], cfg: RunConfig, data, spec: MethodSpec, ckpt_dir: Path,
               on_phase_end: Optional[Callable[[dict], None]] = None,
               run_key: Optional[str] = None) -> dict:
    """Run ``phases`` in order; return ``{"phases", "final", "phase_times_s"}`` for the record."""
    r = PhaseRun(cfg, data, spec, Path(ckpt_dir), run_key=run_key)
    times = {}
    for ph in phases:
        t0 = time.time()
        r.results[ph.name] = ph.run(r)
        times[ph.name] = r.results[ph.name].get("time_s", time.time() - t0)
        if on_phase_end is not None:
            on_phase_end({"phases": r.results})
    # the final model goes back to the caller (predictions), never into the record
    return {"phases": r.results, "final": phases[-1].name, "phase_times_s": times,
            "model": r.model}
