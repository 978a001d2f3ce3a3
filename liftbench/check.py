"""Regression checks: compare a results CSV with a committed reference, value by value.

Rows are matched on ``MATCH_KEYS``. Tolerances are per metric, in the grammar ``mpjpe:0.5mm``
(absolute) or ``mpjpe:2%`` (relative), from (lowest to highest precedence) built-in defaults, a
``<reference>.toml`` sidecar (``[tolerances] mpjpe = "0.5mm"``) and the command line. Every compared
value gets a verdict (same / better / worse / missing / extra / not-comparable / new-failure /
fixed) and the exit code is decided only after all of them: 0 all within tolerance, 1 any value worse
or a new failure, 2 rows missing/extra/unmatched or a malformed file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from liftbench.errors import ConfigError, DataError
from liftbench.results import read_rows, write_rows

MATCH_KEYS: tuple[str, ...] = ("model", "variant", "seed", "dataset", "keypoints", "train_noise", "test_noise",
                               "seq_len", "metric", "slice_type", "slice")
DEFAULT_TOLERANCE = "0.5mm"
_TOL_RE = re.compile(r"^\s*(?:(?P<metric>[a-z0-9_]+)\s*:\s*)?(?P<value>[0-9]*\.?[0-9]+(?:e-?\d+)?)\s*(?P<unit>mm|%|abs)?\s*$")


@dataclass(frozen=True)
class Tolerance:
    value: float
    relative: bool

    def allows(self, reference: float, delta: float) -> bool:
        limit = abs(reference) * self.value / 100.0 if self.relative else self.value
        return abs(delta) <= limit + 1e-12

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(text: str) -> tuple[str | None, Tolerance]:
    """'mpjpe:0.5mm' -> ('mpjpe', 0.5 absolute); '2%' -> (None, 2 % relative)."""
    m = _TOL_RE.match(str(text))
    if not m:
        raise ConfigError(f"Could not parse tolerance '{text}': use METRIC:VALUEmm (absolute) or METRIC:VALUE% (relative), "
                          "e.g. mpjpe:0.5mm or p_mpjpe:2%.")
    return m.group("metric"), Tolerance(float(m.group("value")), m.group("unit") == "%")


@dataclass
class Tolerances:
    default: Tolerance = field(default_factory=lambda: parse_tolerance(DEFAULT_TOLERANCE)[1])
    per_metric: dict[str, Tolerance] = field(default_factory=dict)

    def for_metric(self, metric: str) -> Tolerance:
        return self.per_metric.get(metric, self.default)

    def update(self, specs: list[str] | dict[str, str]) -> None:
        items = [f"{k}:{v}" if k != "default" else str(v) for k, v in specs.items()] if isinstance(specs, dict) else specs
        for spec in items:
            metric, tol = parse_tolerance(spec)
            if metric is None or metric == "default":
                self.default = tol
            else:
                self.per_metric[metric] = tol


def load_tolerances(reference: Path, tol_mm: float | None = None, tol_rel: float | None = None,
                    extra: list[str] | None = None) -> Tolerances:
    tols = Tolerances()
    sidecar = Path(reference).with_suffix(".toml")
    if sidecar.exists():
        try:
            doc = tomllib.loads(sidecar.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{sidecar} is not valid TOML: {exc}.") from exc
        table = doc.get("tolerances", {})
        if not isinstance(table, dict):
            raise DataError(f"{sidecar}: [tolerances] must be a table of metric = \"VALUEmm\" or \"VALUE%\".")
        tols.update({k: str(v) for k, v in table.items()})
    if tol_mm is not None:
        tols.default = Tolerance(tol_mm, False)
        tols.per_metric = {k: v for k, v in tols.per_metric.items() if v.relative}
    if tol_rel is not None:
        tols.default = Tolerance(tol_rel, True)
        tols.per_metric = {k: v for k, v in tols.per_metric.items() if not v.relative}
    tols.update(extra or [])
    return tols


@dataclass
class Verdict:
    key: dict[str, str]
    reference: float | None
    current: float | None
    delta: float | None
    tolerance: str
    verdict: str  # same | better | worse | missing | extra | not-comparable | new-failure | fixed

    def label(self) -> str:
        k = self.key
        return f"{k['model']}/{k['variant']}/seed{k['seed']}/{k['dataset']}/noise{k['test_noise']}/T{k['seq_len']}/{k['metric']}/{k['slice']}"


def _keyed(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [k for k in MATCH_KEYS if k not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; is it a liftbench results.csv?")
    df = df.copy()
    for k in MATCH_KEYS:
        df[k] = df[k].astype(str)
    for k in ("train_noise", "test_noise", "seq_len", "seed"):  # '5' and '5.0' are the same condition
        df[k] = pd.to_numeric(df[k], errors="coerce").map(lambda v: f"{v:g}" if v == v else "")
    dup = df.duplicated(list(MATCH_KEYS), keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise DataError(f"{path}: {int(dup.sum())} rows share the same key (e.g. {row['model']}/{row['variant']}/"
                        f"{row['metric']}/{row['slice']}); each value must appear once.")
    return df.set_index(list(MATCH_KEYS))


def compare(results: Path, reference: Path, tolerances: Tolerances, higher_is_better: dict[str, bool] | None = None) -> list[Verdict]:
    cur = _keyed(read_rows(results), Path(results))
    ref = _keyed(read_rows(reference), Path(reference))
    verdicts = []
    for key in ref.index.union(cur.index, sort=False):
        kd = dict(zip(MATCH_KEYS, key))
        tol = tolerances.for_metric(kd["metric"])
        r = ref.loc[key] if key in ref.index else None
        c = cur.loc[key] if key in cur.index else None
        rv = float(r["value"]) if r is not None else None
        cv = float(c["value"]) if c is not None else None
        if c is None:
            verdicts.append(Verdict(kd, rv, None, None, str(tol), "missing"))
            continue
        if r is None:
            verdicts.append(Verdict(kd, None, cv, None, str(tol), "extra"))
            continue
        r_ok = str(r.get("status", "ok")) in ("ok", "")
        c_ok = str(c.get("status", "ok")) in ("ok", "")
        if r_ok and not c_ok:
            verdicts.append(Verdict(kd, rv, cv, None, str(tol), "new-failure"))
            continue
        if c_ok and not r_ok:
            verdicts.append(Verdict(kd, rv, cv, None, str(tol), "fixed"))
            continue
        for col in ("protocol_version", "dataset_fingerprint"):
            if col in r and col in c and str(r[col]) and str(c[col]) and str(r[col]) != str(c[col]):
                verdicts.append(Verdict(kd, rv, cv, None, str(tol), "not-comparable"))
                break
        else:
            delta = cv - rv
            if tol.allows(rv, delta):
                verdict = "same"
            else:
                hib = str(c.get("higher_is_better", "False")).lower() == "true"
                verdict = "better" if (delta > 0) == hib else "worse"
            verdicts.append(Verdict(kd, rv, cv, delta, str(tol), verdict))
    return verdicts


def exit_code(verdicts: list[Verdict]) -> int:
    kinds = {v.verdict for v in verdicts}
    if kinds & {"missing", "extra", "not-comparable"}:
        return 2
    if kinds & {"worse", "new-failure", "better"}:
        return 1  # a value moved beyond tolerance in either direction: update the reference on purpose
    return 0


def update_reference(results: Path, reference: Path) -> list[Verdict]:
    """Rewrite the reference from ``results`` on purpose; returns what changed (for printing)."""
    changes = compare(results, reference, Tolerances(Tolerance(0.0, False))) if Path(reference).exists() else []
    write_rows(Path(reference), read_rows(results))
    return [v for v in changes if v.verdict != "same"]


def check_files(results: str | Path, reference: str | Path, *, tol_mm: float | None = None,
                tol_rel: float | None = None, tolerances: list[str] | None = None) -> tuple[list[Verdict], int]:
    """Python entry point of ``liftbench check``: (every verdict, the exit code the CLI would return)."""
    tols = load_tolerances(Path(reference), tol_mm, tol_rel, tolerances)
    verdicts = compare(Path(results), Path(reference), tols)
    return verdicts, exit_code(verdicts)
