"""The statistics of claim checks: t-intervals over seeds, two-sided p-values, seeds needed, Holm.

Conventions: every function takes per-seed values (one number per training seed: a headline value, a
per-seed difference or a per-seed slope) and returns plain floats; ``scipy.stats.t`` gives the
quantiles. Intervals are 95 % and two-sided, so "the interval excludes 0" and "p < 0.05" are the same
statement.

* **paired** (both sides share seeds): ``d̄ ± t(0.975, n-1) · s_d / √n`` over the per-seed differences,
  ``p = 2 · P(T_{n-1} > |d̄| / (s_d/√n))``.
* **Welch** (the sides do not share seeds): ``(ā - b̄) ± t(0.975, ν) · √(s_a²/n_a + s_b²/n_b)`` with the
  Welch-Satterthwaite ``ν``.
* A spread of zero (every seed gave the same value, e.g. a deterministic run repeated) leaves nothing
  to test: the interval is NaN, never the point ``[d, d]`` that would call any ``d ≠ 0`` significant.
* **Seeds needed** for an effect ``δ`` declared beforehand (the paper's Δ, or a claim's minimum effect;
  never the observed difference, which would be post-hoc power) at the observed spread ``s``: the
  smallest ``n ≥ 2`` with ``n ≥ (t(0.975, n-1) + t(0.80, n-1))² · s² / δ²`` (two-sided 5 %, 80 % power;
  the t-quantile version of ``(z₀.₉₇₅ + z₀.₈₀)² s²/δ²``). Welch: seeds per side, with
  ``s = √(s_a² + s_b²)``.
* **Holm** (several claims of one paper table): adjusted ``p_(i) = max_{j ≤ i} min(1, (m - j + 1) p_(j))``
  over the m sorted p-values; a claim holds at familywise 5 % when its adjusted p < 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.80
SEEDS_FORMULA = ("smallest n >= 2 with n >= (t(0.975, n-1) + t(0.80, n-1))² · s² / δ² (two-sided 5 %, 80 % power; "
                 "δ = the paper's Δ or the claim's declared minimum effect, never the observed one; s = sd of one "
                 "seed's difference; Welch: seeds per side)")
NAN = float("nan")


@dataclass(frozen=True)
class Interval:
    """A measured difference with its 95 % interval; ``sd`` is the spread of one seed's difference."""

    difference: float
    low: float = NAN
    high: float = NAN
    sd: float = NAN
    p_value: float = NAN  # two-sided
    test: str = ""

    @property
    def testable(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def paired(differences) -> Interval:
    """The paired t-interval of per-seed differences (or slopes); NaN bounds for one seed or no spread."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    if len(d) < 2 or len(np.unique(d)) < 2:
        return Interval(mean, test="paired t")
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(len(d))
    half = float(t.ppf(1 - ALPHA / 2, len(d) - 1)) * se
    p = float(2 * t.sf(abs(mean) / se, len(d) - 1))
    return Interval(mean, mean - half, mean + half, sd, p, "paired t")


def welch(a, b) -> Interval:
    """The Welch t-interval of ``mean(a) - mean(b)``; NaN bounds with < 2 seeds a side or no spread."""
    from scipy.stats import t

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, test="Welch t")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:  # both sides constant: no spread to test a difference against
        return Interval(diff, test="Welch t")
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf(1 - ALPHA / 2, dof)) * se
    p = float(2 * t.sf(abs(diff) / se, dof))
    return Interval(diff, diff - half, diff + half, math.sqrt(a.var(ddof=1) + b.var(ddof=1)), p, "Welch t")


def seeds_needed(effect: float | None, sd: float, max_seeds: int = 100_000) -> int | None:
    """Seeds to detect a difference of ``effect`` at spread ``sd`` (see ``SEEDS_FORMULA``); None if the
    effect or spread is unknown, zero or not finite, or more than ``max_seeds`` would be needed."""
    from scipy.stats import t

    if effect is None or not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0 or sd <= 0:
        return None
    ratio = (sd / abs(effect)) ** 2

    def enough(n: int) -> bool:  # the requirement falls as n grows, so this flips once from False to True
        return n >= (t.ppf(1 - ALPHA / 2, n - 1) + t.ppf(POWER, n - 1)) ** 2 * ratio

    if not enough(max_seeds):
        return None
    low, high = 2, max_seeds
    while low < high:  # bisection for the smallest n that is enough
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN (untested) entries stay NaN and do not count in m."""
    finite = [(p, i) for i, p in enumerate(p_values) if p == p]
    out = [NAN] * len(p_values)
    running = 0.0
    m = len(finite)
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
