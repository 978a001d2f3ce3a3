"""Claim checks: does the measured per-seed data support what a paper says, and in which setting?

A paper's claims are data (``baselines/<paper>_claims.csv``, one row per claim):

* ``suite`` (one or several, ``ablation|tables``), ``family`` (the paper table it belongs to: Holm's
  family), ``text``, ``metric``, the expected direction ``expected`` (``greater``: a - b > 0, or a
  positive slope; ``less``: the opposite);
* ``kind`` with its conditions, each a selector ``column=value`` (``|`` between alternatives):

  - ``difference``: ``a`` against ``b`` (e.g. ``variant=no_residual`` against ``variant=full``);
  - ``largest``: ``a`` against the worst of the alternatives in ``b`` per seed (``a - max_i b_i`` for
    ``greater``): "removing the residuals hurts most";
  - ``slope``: the least-squares slope of value against ``axis`` (``test_noise``) of the ``a`` rows;
  - ``slope_difference``: slope of ``a`` minus slope of ``b`` per seed (an interaction: "the seq2seq's
    error grows faster with σ than the MLP's");

  ``where`` holds what both sides share (``test_noise=0``);
* ``setting``: the paper's setting of the claim (``dataset=h36m,train_2d=sh_ft,test_2d=sh_ft``, keys in
  ``match.CLAIM_SETTING_KEYS``). The claim is checked *against the paper* only when the measured rows are
  in that setting (``match.claim_setting_differences``, the same gate as the paper column); otherwise it is
  a claim about the measured setting ("on mocap-mini"), with no paper Δ;
* the paper's Δ (``paper_difference``) and what it is (``paper_basis``): ``printed`` (the paper printed it,
  clean), ``printed_buggy`` (printed, from Hossain & Little's buggy evaluation: a trend), ``corrected``
  (from the authors' corrected numbers), ``clean`` (computed from clean published numbers), ``trend`` (a
  buggy number without a correction is involved: only the direction is shown, never the value);
* ``min_effect``: the smallest difference worth detecting, in the metric's unit (per axis unit for slopes),
  used for "seeds needed" when no paper Δ may be shown; ``note``: a caveat shown to the reader.

From the per-seed headline values (``slice = action_mean``) the check computes the measured difference
with its 95 % interval and a two-sided p-value (``liftbench.papers.stats``: paired t when both sides share
seeds, else Welch; per-seed slopes for trends). The verdict is about direction and significance only:
*same direction (p < 0.05)*, *opposite direction (p < 0.05)*, *not significant at n seeds* (with the seeds
needed to detect the paper's Δ or the declared minimum effect at the observed spread), *not testable*
(no spread across seeds) or *not measured*. ``check_claims`` adds Holm-adjusted p-values per family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from liftbench.errors import DataError, one_line
from liftbench.papers import stats as S
from liftbench.papers.baselines import baselines_dir
from liftbench.papers.match import CLAIM_SETTING_KEYS, claim_setting_differences, scope_of
from liftbench.results import fill_keypoint_columns

CLAIM_COLUMNS = ("id", "suite", "text", "metric", "kind", "a", "b", "where", "expected")
OPTIONAL_COLUMNS = ("family", "axis", "setting", "paper_difference", "paper_basis", "min_effect", "note", "source",
                    "paper")
KINDS = ("difference", "largest", "slope", "slope_difference")
DIRECTIONS = ("greater", "less")
PAPER_BASES = ("printed", "printed_buggy", "corrected", "clean", "trend")
SHOWN_BASES = ("printed", "printed_buggy", "corrected", "clean")  # a number may be printed beside ours
NUMERIC_KEYS = ("test_noise", "train_noise", "seq_len", "seed")
SEEDS_FORMULA = S.SEEDS_FORMULA
MANY_SEEDS = 100  # past this, "seeds needed" says only that the effect is too small to chase at this spread


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
    family: str = ""
    axis: str = ""
    setting: str = ""
    paper_basis: str = ""
    min_effect: float | None = None

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.suite.split("|") if s.strip())

    @property
    def paper_shown(self) -> float | None:
        """The paper's Δ when it may be printed as a number (never a Δ against an uncorrected buggy value)."""
        return self.paper_difference if self.paper_basis in SHOWN_BASES else None


@dataclass(frozen=True)
class ClaimResult:
    """The measured side of one claim. ``difference``/``ci_*`` are in the metric's unit (per axis unit
    for a slope). ``outcome``: same | opposite | not significant | not testable | not measured."""

    claim: Claim
    outcome: str
    interval: S.Interval = field(default_factory=lambda: S.Interval(S.NAN))
    n_a: int = 0
    n_b: int = 0
    seeds_needed: int | None = None
    effect: float | None = None  # the δ behind seeds_needed
    effect_source: str = ""  # "the paper's Δ" | "the declared minimum effect"
    detail: str = ""
    differences: tuple[str, ...] = ()  # how the measured setting differs from the claim's paper setting
    scope: str = ""  # '' = the paper's setting; else where it was measured ('on mocap-mini')
    holm_p: float = S.NAN

    # flat views, for tables and tests
    difference = property(lambda self: self.interval.difference)
    ci_low = property(lambda self: self.interval.low)
    ci_high = property(lambda self: self.interval.high)
    p_value = property(lambda self: self.interval.p_value)
    test = property(lambda self: self.interval.test)

    @property
    def in_paper_setting(self) -> bool:
        return not self.differences

    @property
    def paper_inside(self) -> bool | None:
        """Whether the paper's Δ (when it may be shown, in the paper's setting) lies in the 95 % interval."""
        paper = self.claim.paper_shown
        if paper is None or not self.in_paper_setting or not self.interval.testable:
            return None
        return self.ci_low <= paper <= self.ci_high


def claim_files(directory: Path | None = None) -> list[Path]:
    """``*_claims.csv`` in the baselines directory (they are not published-number files)."""

    directory = Path(directory) if directory is not None else baselines_dir()
    return sorted(directory.glob("*_claims.csv")) if directory.is_dir() else []


def _number(text: str, what: str, where: str, positive: bool = False) -> float | None:
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise DataError(f"{where}: {what} must be a number or empty, got {text!r}.") from exc
    if not math.isfinite(value) or (positive and value <= 0):
        raise DataError(f"{where}: {what} must be a finite number{' > 0' if positive else ''}, got {text!r}.")
    return value


def read_claims(path: Path) -> list[Claim]:
    """Read and validate one claims file; a problem is a ``DataError`` naming the file and line."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"Claims file {path} is not a readable CSV: {one_line(exc)}") from exc
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"Claims file {path} lacks column(s) {', '.join(missing)}; required: "
                        f"{', '.join(CLAIM_COLUMNS)}.")
    claims = []
    for i, r in enumerate(df.fillna("").to_dict("records"), start=2):  # CSV line (header is line 1)
        where = f"Claims file {path} line {i}"
        r = {**{c: "" for c in OPTIONAL_COLUMNS}, **{k: str(v).strip() for k, v in r.items()}}
        if r["kind"] not in KINDS or r["expected"] not in DIRECTIONS:
            raise DataError(f"{where}: kind must be one of {', '.join(KINDS)} and expected one of "
                            f"{', '.join(DIRECTIONS)}, got {r['kind']!r} / {r['expected']!r}.")
        if r["kind"] == "slope" and not r["axis"] and r["a"] and "=" not in r["a"]:
            r["axis"], r["a"] = r["a"], ""  # the older layout: the axis in column a, the rows in ``where``
        needs_b = r["kind"] in ("difference", "largest", "slope_difference")
        if not r["id"] or (r["kind"] != "slope" and not r["a"]) or (needs_b and not r["b"]):
            raise DataError(f"{where}: a claim needs an id, condition a and (for a {r['kind']}) b.")
        if r["kind"].startswith("slope") and not r["axis"]:
            raise DataError(f"{where}: a {r['kind']} claim needs its axis (e.g. axis = test_noise).")
        for text in (r["a"], r["b"], r["where"]):
            _parse_selector(text, where)
        if r["kind"] == "largest" and sum("|" in v for v in _parse_selector(r["b"], where).values()) != 1:
            raise DataError(f"{where}: a largest claim lists its alternatives in b as one column=x|y|z.")
        setting = _parse_selector(r["setting"], where)
        unknown = sorted(set(setting) - set(CLAIM_SETTING_KEYS))
        if unknown:
            raise DataError(f"{where}: unknown setting key(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(CLAIM_SETTING_KEYS)}.")
        paper = _number(r["paper_difference"], "paper_difference", where)
        basis = r["paper_basis"] or ("printed" if paper is not None else "")
        if basis and basis not in PAPER_BASES:
            raise DataError(f"{where}: paper_basis must be one of {', '.join(PAPER_BASES)} or empty, got {basis!r}.")
        claims.append(Claim(r["id"], r["suite"], r["text"], r["metric"], r["kind"], r["a"], r["b"], r["where"],
                            r["expected"], paper, r["source"], r["note"], r["family"], r["axis"], r["setting"],
                            basis, _number(r["min_effect"], "min_effect", where, positive=True)))
    return claims


def load_claims(suite: str | None = None, directory: Path | None = None) -> list[Claim]:
    """Every shipped claim, or those a given suite can test."""
    claims = [c for path in claim_files(directory) for c in read_claims(path)]
    return [c for c in claims if suite is None or suite in c.suites]


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
    """Rows matching every ``column=value`` (``value`` may list alternatives ``x|y``); numbers compare as numbers."""
    mask = pd.Series(True, index=rows.index)
    for key, value in selector.items():
        if key not in rows.columns:
            return rows.iloc[0:0]
        options = value.split("|")
        if key in NUMERIC_KEYS:
            column = pd.to_numeric(rows[key], errors="coerce").to_numpy(dtype=float)
            mask &= np.logical_or.reduce([np.isclose(column, float(v)) for v in options])
        else:
            mask &= rows[key].astype(str).isin(options)
    return rows[mask]


def headline_rows(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok per-seed headline rows (``all`` / ``action_mean``) of one metric."""
    return rows[(rows["status"].astype(str) == "ok") & (rows["metric"].astype(str) == metric)
                & (rows["slice_type"].astype(str) == "all") & (rows["slice"].astype(str) == "action_mean")]


def _seed(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["seed"], errors="coerce")


def per_seed(rows: pd.DataFrame, metric: str, selector: dict[str, str]) -> pd.Series:
    """seed -> headline value (``action_mean``) of the ok rows matching ``selector``."""
    sel = _select(headline_rows(rows, metric), selector)
    return sel.groupby(_seed(sel))["value"].mean()


def per_seed_slopes(data: pd.DataFrame, axis: str) -> pd.Series:
    """seed -> least-squares slope of value against ``axis`` (seeds with fewer than two axis values left out)."""
    slopes = {}
    for seed, g in data.groupby(_seed(data)):
        x = pd.to_numeric(g[axis], errors="coerce").to_numpy(dtype=float)
        if len(np.unique(x)) >= 2:
            slopes[seed] = float(np.polyfit(x, g["value"].to_numpy(dtype=float), 1)[0])
    return pd.Series(slopes, dtype=float)


def _measure(claim: Claim, rows: pd.DataFrame) -> tuple[S.Interval, int, int, str, pd.DataFrame]:
    """(interval, n_a, n_b, detail when not measured, the rows used)."""
    where = _parse_selector(claim.where, claim.id)
    a_sel, b_sel = ({**where, **_parse_selector(side, claim.id)} for side in (claim.a, claim.b))
    head = headline_rows(rows, claim.metric)
    if claim.kind.startswith("slope"):
        if claim.axis not in rows.columns:
            return S.Interval(S.NAN), 0, 0, f"no column {claim.axis!r} in the results", head.iloc[0:0]
        used = [_select(head, a_sel)] + ([_select(head, b_sel)] if claim.kind == "slope_difference" else [])
        slopes = [per_seed_slopes(u, claim.axis) for u in used]
        if any(s.empty for s in slopes):
            return S.Interval(S.NAN), 0, 0, f"fewer than two {claim.axis} values per seed", pd.concat(used)
        if claim.kind == "slope":
            return S.paired(slopes[0].to_numpy()), len(slopes[0]), len(slopes[0]), "", used[0]
        shared = slopes[0].index.intersection(slopes[1].index)
        if not len(shared):
            return S.Interval(S.NAN), len(slopes[0]), len(slopes[1]), "no seed has both sides", pd.concat(used)
        out = S.paired((slopes[0][shared] - slopes[1][shared]).to_numpy())
        out = replace(out, test="paired t on per-seed slope differences")
        return out, len(shared), len(shared), "", pd.concat(used)
    a = per_seed(rows, claim.metric, a_sel)
    if claim.kind == "largest":  # the worst alternative per seed (the best for ``less``)
        key, values = next((k, v.split("|")) for k, v in _parse_selector(claim.b, claim.id).items() if "|" in v)
        alternatives = [per_seed(rows, claim.metric, {**b_sel, key: v}) for v in values]
        present = [s for s in alternatives if not s.empty]
        both = pd.concat(present, axis=1).dropna() if present else pd.DataFrame()
        b = (both.max(axis=1) if claim.expected == "greater" else both.min(axis=1)) if len(present) == len(values) \
            else pd.Series(dtype=float)
    else:
        b = per_seed(rows, claim.metric, b_sel)
    used = pd.concat([_select(head, a_sel), _select(head, b_sel)])
    if a.empty or b.empty:
        missing = ", ".join(filter(None, (claim.a if a.empty else claim.b, claim.where)))
        return S.Interval(S.NAN), len(a), len(b), f"no ok rows for {missing}", used
    shared = a.index.intersection(b.index)
    if claim.kind == "largest" or len(shared) == len(a) == len(b):
        out = S.paired((a[shared] - b[shared]).to_numpy())
        if claim.kind == "largest":
            out = replace(out, test=f"paired t on a − {'max' if claim.expected == 'greater' else 'min'} of the others")
        return out, len(shared), len(shared), "", used
    return S.welch(a.to_numpy(), b.to_numpy()), len(a), len(b), "", used


def check_claim(claim: Claim, rows: pd.DataFrame) -> ClaimResult:
    """Measure one claim on a suite's result rows (all seeds), gated by the claim's paper setting."""
    interval, n_a, n_b, detail, used = _measure(claim, rows)
    if "run_id" in rows.columns and "run_id" in used.columns:  # the runs behind the claim, every metric
        used = rows[rows["run_id"].astype(str).isin(set(used["run_id"].astype(str)))]
    differences = claim_setting_differences(_parse_selector(claim.setting, claim.id), used) if len(used) else []
    scope = scope_of(differences, used)
    if detail:
        return ClaimResult(claim, "not measured", interval, n_a, n_b, detail=detail, differences=tuple(differences),
                           scope=scope)
    sign = 1.0 if claim.expected == "greater" else -1.0
    if not interval.testable:
        outcome = "not significant" if min(n_a, n_b) < 2 else "not testable"
    elif interval.p_value < S.ALPHA:
        outcome = "same" if sign * interval.difference > 0 else "opposite"
    else:
        outcome = "not significant"
    effect, source = None, ""
    if claim.paper_shown is not None:
        effect, source = claim.paper_shown, "the paper's Δ"
    elif claim.min_effect is not None:
        effect, source = claim.min_effect, "the declared minimum effect"
    need = S.seeds_needed(effect, interval.sd) if outcome == "not significant" else None
    return ClaimResult(claim, outcome, interval, n_a, n_b, need, effect, source, "", tuple(differences), scope)


def check_claims(rows: pd.DataFrame, suite: str, directory: Path | None = None) -> list[ClaimResult]:
    """Every shipped claim the suite can test, measured on its rows, with Holm-adjusted p-values within
    each family (the claims of one paper table)."""
    rows = fill_keypoint_columns(rows)  # rows older than the columns: trained and scored on ``keypoints``
    results = [check_claim(c, rows) for c in load_claims(suite, directory)]
    out = list(results)
    for family in dict.fromkeys(r.claim.family or r.claim.id for r in results):
        members = [i for i, r in enumerate(results) if (r.claim.family or r.claim.id) == family]
        adjusted = S.holm([results[i].p_value if results[i].interval.testable else S.NAN for i in members])
        for i, p in zip(members, adjusted):
            out[i] = replace(results[i], holm_p=p)
    return out
