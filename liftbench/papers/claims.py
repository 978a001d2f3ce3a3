"""Claim checks: does the measured per-seed data support what a paper says?

A paper's claims are data (``baselines/<paper>_claims.csv``, one row per claim): which suite can test
it, the metric, the two conditions compared (``a`` and ``b``, e.g. ``variant=no_residual`` against
``variant=full``) or, for a trend, the axis (``kind = slope``), and the expected direction
(``greater``: a - b > 0, or a positive slope; ``less``: the opposite).

From the per-seed headline values (``slice = action_mean``) the check computes the measured
difference with its 95 % interval, using a t-distribution (``scipy.stats.t``):

* **paired** when both sides share seeds (the same seed on each side, as a suite runs them): the
  interval of the mean per-seed difference, ``d ± t(0.975, n-1) · s_d / √n``;
* **Welch** otherwise: ``(mean_a - mean_b) ± t(0.975, ν) · √(s_a²/n_a + s_b²/n_b)`` with the
  Welch-Satterthwaite ν;
* a **slope** claim fits a least-squares line of value against the axis for each seed and takes the
  paired interval of the per-seed slopes.

Verdict: *reproduced* (the interval lies on the expected side of 0), *contradicted* (it lies on the
other side), or *not significant* at this many seeds, with the seeds needed at the observed spread
for a two-sided 5 % test at 80 % power: the smallest ``n ≥ 2`` with
``n ≥ (t(0.975, n-1) + t(0.80, n-1))² · s² / d²`` (the t-quantile version of
``(z₀.₉₇₅ + z₀.₈₀)² s²/d²``), where ``d`` is the observed difference and ``s`` the standard deviation of
one seed's difference (paired: ``s_d``; Welch: ``√(s_a² + s_b²)``, then seeds per side). A difference
of the wrong sign is said so: more seeds would test a contradiction, not the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liftbench.errors import DataError, one_line
from liftbench.papers.baselines import baselines_dir

CLAIM_COLUMNS = ("id", "suite", "text", "metric", "kind", "a", "b", "where", "expected")
KINDS = ("difference", "slope")
DIRECTIONS = ("greater", "less")
NUMERIC_KEYS = ("test_noise", "train_noise", "seq_len", "seed")
SEEDS_FORMULA = ("smallest n >= 2 with n >= (t(0.975, n-1) + t(0.80, n-1))² · s² / d² (two-sided 5 %, 80 % power; "
                 "d = observed difference, s = sd of one seed's difference)")


@dataclass(frozen=True)
class Claim:
    """One statement of a paper, as data (see the module docstring for the columns)."""

    id: str
    suite: str
    text: str
    metric: str
    kind: str
    a: str
    b: str
    where: str
    expected: str
    paper_difference: float | None = None
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """The measured side of one claim. ``difference``/``ci_*`` are in the metric's unit (per axis unit for a slope)."""

    claim: Claim
    verdict: str  # reproduced | not significant | contradicted | not measured
    difference: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    test: str = ""  # "paired t" | "Welch t" | "paired t on per-seed slopes"
    n_a: int = 0
    n_b: int = 0
    seeds_needed: int | None = None
    detail: str = ""


def claim_files(directory: Path | None = None) -> list[Path]:
    """``*_claims.csv`` in the baselines directory (they are not published-number files)."""

    directory = Path(directory) if directory is not None else baselines_dir()
    return sorted(directory.glob("*_claims.csv")) if directory.is_dir() else []


def read_claims(path: Path) -> list[Claim]:
    """Read and validate one claims file; a problem is a ``DataError`` naming the file and line."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"Claims file {path} is not a readable CSV: {one_line(exc)}") from exc
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"Claims file {path} lacks column(s) {', '.join(missing)}; required: {', '.join(CLAIM_COLUMNS)}.")
    claims = []
    for i, r in enumerate(df.fillna("").to_dict("records"), start=2):  # CSV line (header is line 1)
        if r["kind"] not in KINDS or r["expected"] not in DIRECTIONS:
            raise DataError(f"Claims file {path} line {i}: kind must be one of {', '.join(KINDS)} and expected one of "
                            f"{', '.join(DIRECTIONS)}, got {r['kind']!r} / {r['expected']!r}.")
        if not r["id"] or not r["a"] or (r["kind"] == "difference" and not r["b"]):
            raise DataError(f"Claims file {path} line {i}: a claim needs an id, condition a and (for a difference) b.")
        for text in (r["a"], r["b"], r["where"]) if r["kind"] == "difference" else (r["b"], r["where"]):
            _parse_selector(text, f"Claims file {path} line {i}")
        paper = str(r.get("paper_difference", "")).strip()
        try:
            paper_value = float(paper) if paper else None
        except ValueError as exc:
            raise DataError(f"Claims file {path} line {i}: paper_difference must be a number or empty, got {paper!r}.") from exc
        claims.append(Claim(r["id"], r["suite"], r["text"], r["metric"], r["kind"], r["a"], r["b"], r["where"],
                            r["expected"], paper_value, r.get("source", ""), r.get("note", "")))
    return claims


def load_claims(suite: str | None = None, directory: Path | None = None) -> list[Claim]:
    """Every shipped claim, or those a given suite can test."""
    claims = [c for path in claim_files(directory) for c in read_claims(path)]
    return [c for c in claims if suite is None or c.suite == suite]


def _parse_selector(text: str, where: str) -> dict[str, str]:
    """``"variant=full,test_noise=0"`` -> {"variant": "full", "test_noise": "0"} ('' -> {})."""
    out = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise DataError(f"{where}: condition {part!r} must read column=value (e.g. variant=full).")
        out[key.strip()] = value.strip()
    return out


def _select(rows: pd.DataFrame, selector: dict[str, str]) -> pd.DataFrame:
    mask = pd.Series(True, index=rows.index)
    for key, value in selector.items():
        if key not in rows.columns:
            return rows.iloc[0:0]
        if key in NUMERIC_KEYS:
            mask &= np.isclose(pd.to_numeric(rows[key], errors="coerce").to_numpy(dtype=float), float(value))
        else:
            mask &= rows[key].astype(str) == value
    return rows[mask]


def per_seed(rows: pd.DataFrame, metric: str, selector: dict[str, str]) -> pd.Series:
    """seed -> headline value (``action_mean``) of the ok rows matching ``selector``."""
    ok = rows[(rows["status"].astype(str) == "ok") & (rows["metric"].astype(str) == metric)
              & (rows["slice_type"].astype(str) == "all") & (rows["slice"].astype(str) == "action_mean")]
    sel = _select(ok, selector)
    return sel.groupby(pd.to_numeric(sel["seed"], errors="coerce"))["value"].mean()


MANY_SEEDS = 100  # past this, "seeds needed" says only that the difference is too small to chase


def seeds_needed(difference: float, sd: float, max_seeds: int = 100_000) -> int | None:
    """Seeds for a two-sided 5 % test at 80 % power at the observed spread (see ``SEEDS_FORMULA``):
    the smallest n >= 2 with n >= ((t(0.975, n-1) + t(0.80, n-1)) · s / |d|)²; None if d is 0 or
    not finite, or more than ``max_seeds`` would be needed."""
    from scipy.stats import t

    if not (math.isfinite(difference) and math.isfinite(sd)) or difference == 0:
        return None
    ratio = (sd / abs(difference)) ** 2

    def enough(n: int) -> bool:  # the requirement falls as n grows, so this flips once from False to True
        return n >= (t.ppf(0.975, n - 1) + t.ppf(0.80, n - 1)) ** 2 * ratio

    if not enough(max_seeds):
        return None
    low, high = 2, max_seeds
    while low < high:  # bisection for the smallest n that is enough
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid + 1, high)
    return low


def paired_interval(differences: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, low, high, sd) of per-seed differences with a 95 % t-interval (NaN bounds for one seed)."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    half = float(t.ppf(0.975, len(d) - 1)) * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half, sd


def welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """(mean_a - mean_b, low, high, √(s_a² + s_b²)) with a 95 % Welch t-interval."""
    from scipy.stats import t

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan"), float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff, 0.0
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf(0.975, dof)) * se
    return diff, diff - half, diff + half, math.sqrt(a.var(ddof=1) + b.var(ddof=1))


def _verdict(claim: Claim, diff: float, low: float, high: float, sd: float, n: int) -> tuple[str, int | None]:
    sign = 1.0 if claim.expected == "greater" else -1.0
    if math.isfinite(low) and math.isfinite(high):
        if sign * low > 0 and sign * high > 0:
            return "reproduced", None
        if sign * low < 0 and sign * high < 0:
            return "contradicted", None
    verdict = f"not significant at {n} seed{'s' if n != 1 else ''}"
    if math.isfinite(diff) and sign * diff < 0:
        verdict += ", observed difference has the opposite sign"
    return verdict, seeds_needed(diff, sd)


def check_claim(claim: Claim, rows: pd.DataFrame) -> ClaimResult:
    """Measure one claim on a suite's result rows (all seeds)."""
    where = _parse_selector(claim.where, claim.id)
    if claim.kind == "slope":
        axis = claim.a
        data = _select(rows[(rows["status"].astype(str) == "ok") & (rows["metric"].astype(str) == claim.metric)
                            & (rows["slice_type"].astype(str) == "all") & (rows["slice"].astype(str) == "action_mean")],
                       where)
        if axis not in data.columns:
            return ClaimResult(claim, "not measured", detail=f"no column {axis!r} in the results")
        slopes = []
        for _, g in data.groupby(pd.to_numeric(data["seed"], errors="coerce")):
            x = pd.to_numeric(g[axis], errors="coerce").to_numpy(dtype=float)
            if len(np.unique(x)) >= 2:
                slopes.append(float(np.polyfit(x, g["value"].to_numpy(dtype=float), 1)[0]))
        if not slopes:
            return ClaimResult(claim, "not measured", detail=f"fewer than two {axis} values per seed")
        diff, low, high, sd = paired_interval(np.array(slopes))
        verdict, need = _verdict(claim, diff, low, high, sd, len(slopes))
        return ClaimResult(claim, verdict, diff, low, high, "paired t on per-seed slopes", len(slopes), len(slopes), need)
    a = per_seed(rows, claim.metric, {**where, **_parse_selector(claim.a, claim.id)})
    b = per_seed(rows, claim.metric, {**where, **_parse_selector(claim.b, claim.id)})
    if a.empty or b.empty:
        missing = ", ".join(filter(None, (claim.a if a.empty else claim.b, claim.where)))
        return ClaimResult(claim, "not measured", n_a=len(a), n_b=len(b), detail=f"no ok rows for {missing}")
    shared = a.index.intersection(b.index)
    if len(shared) == len(a) == len(b):
        diff, low, high, sd = paired_interval((a[shared] - b[shared]).to_numpy())
        test, n = "paired t", len(shared)
    else:
        diff, low, high, sd = welch_interval(a.to_numpy(), b.to_numpy())
        test, n = "Welch t", min(len(a), len(b))
    verdict, need = _verdict(claim, diff, low, high, sd, n)
    return ClaimResult(claim, verdict, diff, low, high, test, len(a), len(b), need)


def check_claims(rows: pd.DataFrame, suite: str, directory: Path | None = None) -> list[ClaimResult]:
    """Every shipped claim the suite can test, measured on its rows."""
    return [check_claim(c, rows) for c in load_claims(suite, directory)]


def claim_cells(result: ClaimResult) -> list[str]:
    """One table row: claim, paper, measured difference [95 % CI], n, test, verdict."""
    c = result.claim
    unit = " /px" if c.kind == "slope" else ""

    def num(v: float) -> str:
        return "—" if v != v else f"{v:+.2f}"

    measured = "—" if result.verdict == "not measured" else (
        f"{num(result.difference)}{unit} [{num(result.ci_low)}, {num(result.ci_high)}]")
    verdict = result.verdict
    if result.seeds_needed and result.seeds_needed > MANY_SEEDS:  # the observed difference is ~0: nothing to detect
        verdict += f" (> {MANY_SEEDS} seeds needed: no difference to detect at this spread)"
    elif result.seeds_needed:
        verdict += f" (≈{result.seeds_needed} seeds needed)"
    elif result.detail:
        verdict += f" ({result.detail})"
    paper = "—" if c.paper_difference is None else f"{c.paper_difference:+.2f}{unit}"
    n = f"{result.n_a}/{result.n_b}" if c.kind == "difference" else str(result.n_a)
    return [c.id, c.text, c.metric, paper, measured, n, result.test or "—", verdict]


CLAIM_HEADERS = ("claim", "statement", "metric", "paper Δ", "measured Δ [95 % CI]", "seeds a/b", "test", "verdict")
