"""The method registry: one name per method, composable with ``+``.

A method name is a ``+``-joined list of components, e.g. ``vanilla``, ``lds``, ``sqinv+lds+fds``,
``ranksim+frobenius``. Each component edits a :class:`~dirlib.train.MethodSpec` (sample weights,
callbacks, base loss) and may set a *runner* (multi-phase programs: ``frobenius``, ``rrt``).
Components are applied left to right; at most one runner.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

from .data.base import DIRData
from .train import MethodSpec, RunConfig


@dataclass
class Component:
    name: str
    apply: Callable  # (spec, cfg, data) -> None
    runner: Optional[Callable] = None  # (cfg, data, spec, ckpt_dir) -> result dict
    doc: str = ""


REGISTRY: Dict[str, Component] = {}
FINALIZERS: list = []  # (spec, cfg, data) -> None, run after every component (sample weights)


def register(name: str, doc: str = "", runner: Optional[Callable] = None):
    def deco(fn):
        REGISTRY[name] = Component(name, fn, runner, doc or (fn.__doc__ or "").strip())
        return fn
    return deco


def method_names() -> list:
    return sorted(REGISTRY)


def parse_method(name: str) -> list:
    parts = [p.strip().lower() for p in name.split("+") if p.strip()]
    if not parts:
        raise ValueError("empty method name")
    unknown = [p for p in parts if p not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown method component(s) {unknown} in {name!r}; valid names: "
                         f"{', '.join(method_names())} (combine with '+', e.g. ranksim+frobenius)")
    return parts


def default_loss(data: DIRData) -> str:
    """The benchmark's default regression loss: L1 for ages, MSE for STS-B."""
    return "mse" if data.main_metric == "mse" else "l1"


def build_method(cfg: RunConfig, data: DIRData):
    """Return ``(spec, runner)`` for ``cfg.method``."""
    parts = parse_method(cfg.method)
    from .method_components import check_method_kwargs
    check_method_kwargs(cfg, parts)
    spec = MethodSpec(name=cfg.method, loss=cfg.loss or default_loss(data))
    runner = None
    for p in parts:
        comp = REGISTRY[p]
        comp.apply(spec, cfg, data)
        if comp.runner is not None:
            if runner is not None:
                raise ValueError(f"{cfg.method!r} combines two multi-phase methods; use at most one "
                                 f"of: {', '.join(n for n, c in REGISTRY.items() if c.runner)}")
            runner = comp.runner
    for f in FINALIZERS:
        f(spec, cfg, data)
    from .method_components import check_unread_kwargs
    check_unread_kwargs(cfg)
    return spec, runner


@register("vanilla", "Plain regression with the base loss (--loss), no re-balancing.")
def _vanilla(spec, cfg, data):
    pass


def _load_components():
    # components defined in other modules register themselves on import
    from . import method_components  # noqa: F401


try:
    _load_components()
except ImportError as e:  # pragma: no cover - a missing optional piece must not hide vanilla
    if "method_components" not in str(e):
        raise
