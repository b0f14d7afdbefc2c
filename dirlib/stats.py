"""Paired comparisons over seeds.

Two arms that start from the same seed (the same initial weights, the same data order) are compared
by their per-seed differences, not by overlapping mean ± std bars: the seed-to-seed spread that both
arms share cancels out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class PairedDifference:
    """``mean`` of the per-seed differences ``a - b``, its 95% (``level``) t interval ``[lo, hi]``,
    the sample standard deviation ``sd`` of the differences, ``n`` pairs and the paired t-test's
    two-sided ``p`` value. With one pair the interval and ``p`` are NaN (undefined)."""

    mean: float
    lo: float
    hi: float
    sd: float
    n: int
    p: float
    level: float = 0.95

    @property
    def detectable(self) -> bool:
        """The interval excludes zero (an undefined interval never does)."""
        return bool(self.lo > 0 or self.hi < 0)

    @property
    def direction(self) -> int:
        """+1: ``a`` above ``b`` beyond the interval, -1: below, 0: no detectable effect."""
        return 0 if not self.detectable else (1 if self.mean > 0 else -1)


def paired_difference(a, b, level: float = 0.95) -> PairedDifference:
    """Paired difference ``a - b`` over matched seeds, with a Student-t interval.

    ``a`` and ``b`` are equal-length sequences whose i-th entries share a seed. NaN pairs are an
    error (a missing run must be named, not dropped).

    >>> d = paired_difference([1.0, 2.0, 3.0], [0.5, 1.0, 2.5])
    >>> round(d.mean, 4), round(d.sd, 4), d.n
    (0.6667, 0.2887, 3)
    >>> round(d.lo, 4), round(d.hi, 4)   # 0.6667 -/+ t(0.975, 2) * 0.2887 / sqrt(3)
    (-0.0504, 1.3838)
    >>> d.detectable
    False
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: a and b must pair up, got {a.size} and {b.size} values")
    if a.size == 0:
        raise ValueError("paired_difference: no pairs")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("paired_difference: NaN or inf among the values (a missing run?)")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = a - b
    n = d.size
    mean = float(d.mean())
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, math.nan, n, math.nan, level)
    sd = float(d.std(ddof=1))
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * _st.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedDifference(mean, mean - half, mean + half, sd, n, p, level)
