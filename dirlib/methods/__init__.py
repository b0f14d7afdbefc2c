"""The methods, one file each, composable with ``+`` (``lds+fds``, ``ranksim+frobenius``).

A method file declares

* ``NAMES``: ``{name: one-line description}`` (aliases share a file: ``bmc`` / ``bmse``);
* ``DEFAULTS``: ``{option: Default(value, sts=..., source=...)}`` (per name, where aliases differ),
  read as ``--method-arg NAME.OPTION=VALUE``;
* ``build(name, opts, cfg, data) -> Part``: its callbacks, loss, sample-weight options and, for a
  multi-phase method, its phases;
* a multi-phase method also defines ``phases(spec, cfg, data) -> [Phase]`` and returns it as
  ``Part(phases=phases)``; the module-level function is how :func:`is_multi_phase` knows
  without building anything;
* optionally ``CONFLICTS``: ``{other name: why they do not combine}``.

Adding a method is adding such a file (and its tests): :func:`catalog` finds it.

>>> from dirlib.methods import method_names, is_multi_phase
>>> "ranksim" in method_names(), is_multi_phase("lds+frobenius")
(True, True)
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Dict

from ..train import MethodSpec, RunConfig
from .common import compute_weights
from .options import _SAME, Default, Options, family

#: the modules of this package that hold no method
_INFRASTRUCTURE = {"common", "options", "phases"}


@dataclass(frozen=True)
class MethodInfo:
    name: str
    doc: str
    module: ModuleType

    @property
    def defaults(self) -> Dict[str, Default]:
        d = getattr(self.module, "DEFAULTS", {})
        if d and all(isinstance(v, dict) for v in d.values()):
            return d[self.name]
        return d

    @property
    def multi_phase(self) -> bool:
        return getattr(self.module, "phases", None) is not None

    @property
    def conflicts(self) -> Dict[str, str]:
        return getattr(self.module, "CONFLICTS", {})

    @property
    def search_space(self):
        """The points ``dirlib.tools.tune`` tries (``SEARCH_SPACE``: a list of points, or a dict of value
        lists whose product is the grid); empty when the method declares none."""
        return getattr(self.module, "SEARCH_SPACE", [])


@functools.lru_cache(maxsize=None)
def catalog() -> Dict[str, MethodInfo]:
    """Every method of the package, by name."""
    out = {}
    for m in pkgutil.iter_modules(__path__):
        if m.name in _INFRASTRUCTURE:
            continue
        mod = importlib.import_module(f"{__name__}.{m.name}")
        for name, doc in mod.NAMES.items():
            if name in out:
                raise RuntimeError(f"method name {name!r} is declared by {out[name].module.__name__} "
                                   f"and {mod.__name__}")
            out[name] = MethodInfo(name, doc, mod)
    return dict(sorted(out.items()))


def method_names() -> list:
    return list(catalog())


def parse_method(name: str) -> list:
    """``"lds+FDS"`` -> ``["lds", "fds"]``; an unknown part is an error listing the valid names."""
    parts = [p.strip().lower() for p in name.split("+") if p.strip()]
    if not parts:
        raise ValueError("empty method name")
    unknown = [p for p in parts if p not in catalog()]
    if unknown:
        raise ValueError(f"unknown method component(s) {unknown} in {name!r}; valid names: "
                         f"{', '.join(method_names())} (combine with '+', e.g. ranksim+frobenius)")
    return parts


def is_multi_phase(name: str) -> bool:
    return any(catalog()[p].multi_phase for p in parse_method(name))


def defaults_table() -> str:
    """Every method's options as a Markdown table: ``--method-arg NAME.KEY``, the default (with
    STS-B's where it differs) and its source (``python -m dirlib methods --defaults``)."""
    rows = ["| option | default | source |", "|---|---|---|"]
    for name, info in catalog().items():
        for key, d in info.defaults.items():
            rows.append(f"| `{name}.{key}` | {d.describe()} | {d.source} |")
    return "\n".join(rows)


def default_loss(data) -> str:
    """The loss a run gets when its config names none: the one the data states (a table's
    ``loss``, ``from_arrays(loss=...)``), else the benchmark's: MSE where the main metric is MSE
    (STS-B), L1 otherwise (ages)."""
    return (data.info or {}).get("loss") or ("mse" if data.main_metric == "mse" else "l1")


def _check_combination(name: str, parts: list) -> None:
    infos = [catalog()[p] for p in parts]
    for i, a in enumerate(infos):
        for b in infos[i + 1:]:
            if a.module is b.module:
                raise ValueError(f"{a.name} and {b.name} are the same method; use one")
            why = a.conflicts.get(b.name) or b.conflicts.get(a.name)
            if why:
                raise ValueError(f"{name!r}: {why}")
    multi = [i.name for i in infos if i.multi_phase]
    if len(multi) > 1:
        raise ValueError(f"{name!r} combines two multi-phase methods ({', '.join(multi)}); use at "
                         f"most one of: {', '.join(n for n, i in catalog().items() if i.multi_phase)}")


def _check_options(cfg: RunConfig, parts: list) -> None:
    for k, v in cfg.method_kwargs.items():
        if "." not in k or k.split(".", 1)[0] not in parts:
            key = k.split(".", 1)[-1]
            owners = [p for p in parts if key in catalog()[p].defaults]
            hint = ("write it as COMPONENT.KEY: "
                    + (f"did you mean {' or '.join(f'{p}.{key}={v}' for p in owners)}?" if owners
                       else "e.g. ranksim.gamma=100"))
            raise ValueError(f"method argument {k!r} does not belong to a component of this method "
                             f"({'+'.join(parts)}); {hint}")


_WARNED_FAMILY = set()


def family_dependent_defaults(cfg: RunConfig, data, parts) -> list:
    """``(option, value applied, the other family's value, source)`` for each option of ``parts``
    that the run leaves at a default that depends on the task family."""
    out = []
    for p in parts:
        for key, d in catalog()[p].defaults.items():
            if d.sts is _SAME or f"{p}.{key}" in cfg.method_kwargs:
                continue
            fam = family(data)
            other = "sts" if fam == "age" else "age"
            out.append((f"{p}.{key}", d.resolve(fam, cfg), d.resolve(other, cfg), d.source))
    return out


def _warn_unstated_family(cfg: RunConfig, data, parts) -> None:
    """Data of an unstated kind gets the age benchmarks' defaults: say so once per (data, method),
    listing each family-dependent default applied with its source. Stating ``task_family=`` or
    giving the options silences it."""
    stated = (data.info or {}).get("task_family")
    if not (isinstance(stated, str) and "unstated" in stated):
        return
    applied = family_dependent_defaults(cfg, data, parts)
    key = (data.name, cfg.method)
    if not applied or key in _WARNED_FAMILY:
        return
    _WARNED_FAMILY.add(key)
    warnings.warn(
        f"{data.name}: its task family is not stated, so {cfg.method} gets the age benchmarks' "
        f"defaults: " + "; ".join(f"{o} = {v!r} (STS-B's: {w!r}; {src})" for o, v, w, src in applied)
        + ". State task_family= on the data, or give the options (--method-arg), to choose.",
        UserWarning, stacklevel=3)


def build_method(cfg: RunConfig, data) -> MethodSpec:
    """The trainer's :class:`~dirlib.train.MethodSpec` for ``cfg.method`` on ``data``: each
    part built from its file with its options, then composed (callbacks in name order, batch
    rewriters first and head modules last; one base-loss replacement and one multi-phase method
    at most; the sample weights of every part's weighting options)."""
    parts = parse_method(cfg.method)
    _check_options(cfg, parts)
    _check_combination(cfg.method, parts)
    spec = MethodSpec(name=cfg.method, loss=cfg.loss or default_loss(data))
    weighting, base_owner, phases = {}, None, None
    for p in parts:
        info = catalog()[p]
        opts = Options(p, info.defaults, cfg.method_kwargs, family=family(data), cfg=cfg)
        part = info.module.build(p, opts, cfg, data)
        if part.base_loss is not None:
            if base_owner is not None:
                raise ValueError(f"{p} replaces the regression loss, and so does {base_owner}; "
                                 f"they cannot be combined in {cfg.method!r}")
            base_owner, spec.base_loss = p, part.base_loss
        if part.loss is not None:
            spec.loss = part.loss
        spec.loss_kwargs.update(part.loss_kwargs)
        spec.callbacks += part.callbacks
        spec.train_views = max(spec.train_views, part.train_views)
        for k, v in part.weighting_defaults.items():
            weighting.setdefault(k, v)
        weighting.update(part.weighting)
        phases = phases or part.phases
        spec.settings[p] = {**{k: opts[k] for k in info.defaults}, **part.settings}
    _warn_unstated_family(cfg, data, parts)
    spec.callbacks.sort(key=lambda cb: cb.order)
    if weighting:
        spec.settings["weighting"] = weighting
        spec.sample_weights = compute_weights(weighting, data)
    if phases is not None:
        spec.phases = phases(spec, cfg, data)
    return spec
