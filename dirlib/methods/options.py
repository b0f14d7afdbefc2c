"""A method's options: its declared defaults (per task family, with their sources) and the
``--method-arg NAME.KEY=VALUE`` values a run gives.

>>> from dirlib.methods.options import Default, Options
>>> DEFAULTS = {"gamma": Default(100.0, sts=3e-4, source="RankSim READMEs"),
...             "lam": Default(2.0, source="RankSim READMEs")}
>>> o = Options("ranksim", DEFAULTS, {"ranksim.lam": 1}, family="sts", cfg=None)
>>> o["gamma"], o["lam"]
(0.0003, 1.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict

from ..datasets import find as find_dataset

class _Same:
    """The sentinel of :class:`Default`: STS-B's value is the age family's."""

    def __repr__(self) -> str:
        return "same as the age family's"


_SAME = _Same()


@dataclass(frozen=True)
class Default:
    """One option's default: ``value`` for the age family (and for custom data that states no
    family), ``sts`` where STS-B's published value differs, and the public ``source`` of both.
    A callable value is called with the run's config (``lambda cfg: cfg.epochs``)."""

    value: Any
    sts: Any = _SAME
    source: str = ""

    def resolve(self, family: str, cfg) -> Any:
        v = self.sts if family == "sts" and self.sts is not _SAME else self.value
        return v(cfg) if callable(v) else v

    def describe(self) -> str:
        """The default as the docs print it (``100 (STS-B: 0.0003)``)."""
        def show(v):
            return (v.__doc__ or "computed") if callable(v) else repr(v)
        return show(self.value) + ("" if self.sts is _SAME else f" (STS-B: {show(self.sts)})")


#: numeric options that must be > 0 (scales, temperatures, rates, kernel widths); the others must
#: be >= 0 (weights, coefficients); ``*epochs`` integers >= 1; ``momentum`` in [0, 1]; ``ks``
#: (kernel sizes) odd integers >= 1
POSITIVE = ("sigma", "tau", "label_tau", "norm_tau", "norm_lr", "sft_lr", "softplus_beta",
            "prior_alpha", "lam", "temperature", "init_sigma", "sigma_lr", "bw", "step",
            "pretrain_lr", "linear_lr")


def check_range(full: str, v) -> None:
    """Refuse by name a numeric option outside its meaningful range."""
    key = full.split(".", 1)[1]
    if not math.isfinite(v):
        raise ValueError(f"method argument {full} must be finite, got {v!r}")
    if key == "epochs" or key.endswith("_epochs"):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"method argument {full} must be an integer >= 1 (a phase of zero "
                             f"epochs trains nothing), got {v!r}")
    elif key == "ks":
        if not isinstance(v, int) or v < 1 or v % 2 == 0:
            raise ValueError(f"method argument {full} must be an odd integer >= 1, got {v!r}")
    elif key == "momentum":
        if not 0 <= v <= 1:
            raise ValueError(f"method argument {full} must lie in [0, 1], got {v!r}")
    elif key in POSITIVE:
        if v <= 0:
            raise ValueError(f"method argument {full} must be > 0, got {v!r}")
    elif key not in ("min_label", "max_label") and v < 0:
        raise ValueError(f"method argument {full} must be >= 0, got {v!r}")


class Options:
    """The options of one method in one run: ``opts[key]`` is the given value (type- and
    range-checked) or the declared default for the data's task family. A given key the method
    does not declare is an error that lists the keys it does."""

    def __init__(self, name: str, defaults: Dict[str, Default], given: dict, *, family: str,
                 cfg) -> None:
        self.name, self.defaults, self.family, self.cfg = name, defaults, family, cfg
        prefix = name + "."
        self.given = {k[len(prefix):]: v for k, v in given.items() if k.startswith(prefix)}
        unknown = sorted(prefix + k for k in self.given if k not in defaults)
        if unknown:
            raise ValueError(f"unknown method argument(s) {unknown}; this method reads: "
                             f"{', '.join(prefix + k for k in sorted(defaults))}")

    def __getitem__(self, key: str):
        default = self.defaults[key].resolve(self.family, self.cfg)
        if key not in self.given:
            return default
        v, full = self.given[key], f"{self.name}.{key}"
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise TypeError(f"method argument {full} must be true/false, got {v!r}")
            return v
        if isinstance(default, (int, float)):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise TypeError(f"method argument {full} must be a number, got {v!r}")
            check_range(full, v)
            return float(v) if isinstance(default, float) else v
        return v

    def one_of(self, key: str, allowed) -> Any:
        """``self[key]``, refused by name unless it is one of ``allowed``."""
        v = self[key]
        if v not in allowed:
            raise ValueError(f"method argument {self.name}.{key} must be one of {tuple(allowed)}, "
                             f"got {v!r}")
        return v


def family(data) -> str:
    """Which published defaults a method uses on ``data``: ``"sts"`` (STS-B) or ``"age"``
    (AgeDB/IMDB-WIKI). Custom data states it (``from_arrays(task_family=...)``, in
    ``data.info["task_family"]``); unstated, it is the age family, and the record says so."""
    stated = (data.info or {}).get("task_family")
    if stated:
        return "sts" if str(stated).startswith("sts") else "age"
    info = find_dataset(data.name)
    return info.family if info is not None else "age"


def epochs_of_run(cfg) -> int:
    """the run's --epochs"""
    return cfg.epochs


def lr_of_run(cfg) -> float:
    """the run's --lr"""
    return cfg.lr


def tenth_of_lr(cfg) -> float:
    """--lr / 10"""
    return cfg.lr * 0.1


def fifth_of_epochs(cfg) -> int:
    """max(1, --epochs // 5)"""
    return max(1, cfg.epochs // 5)

