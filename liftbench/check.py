"""Regression checks: compare a results CSV with a committed reference, value by value.

Rows are matched on ``MATCH_KEYS``. Tolerances are per metric, in the grammar ``mpjpe:0.5mm``
(absolute) or ``mpjpe:2%`` (relative), from (lowest to highest precedence) built-in defaults, a
``<reference>.toml`` sidecar (``[tolerances] mpjpe = "0.5mm"``) and the command line. Every compared
value gets a verdict (same / better / worse / missing / extra / not-comparable / new-failure /
fixed) and the exit code is decided only after all of them: 0 all within tolerance, 1 any value worse
or a new failure, 2 rows missing/extra/unmatched or a malformed file.

Keys come from files: control characters and newlines in them are escaped (``values.printable``) before
they reach a verdict, so a crafted key cannot print a line of its own (a fake ``PASS:``).
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from liftbench.errors import ConfigError, DataError
from liftbench.results import read_rows, write_rows
from liftbench.values import CONFIG_MAX_BYTES, load_toml_capped, printable

# ``train_keypoints``: a file older than that column gets it from ``keypoints`` (``results.read_rows``), so an
# old reference still compares with new results; the same for ``convention`` (empty or absent: liftbench's).
# A value under another evaluation convention is another value, never "the same" one.
MATCH_KEYS: tuple[str, ...] = ("model", "variant", "seed", "dataset", "keypoints", "train_keypoints", "train_noise",
                               "test_noise", "seq_len", "convention", "metric", "slice_type", "slice")
DEFAULT_TOLERANCE = "0.5mm"
_TOL_RE = re.compile(r"^\s*(?:(?P<metric>[a-z0-9_]+)\s*:\s*)?(?P<value>[0-9]*\.?[0-9]+(?:e-?\d+)?)\s*"
                     r"(?P<unit>mm|%|abs)?\s*$")
_KEY_CHARS = 1 << 20  # escape keys whole (no '...' cut), so that two different keys never print alike


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
    if not m or not math.isfinite(float(m.group("value"))):  # the grammar has no sign; 1e999 is inf
        raise ConfigError(f"Could not parse tolerance '{printable(text)}': use METRIC:VALUEmm (absolute) or "
                          "METRIC:VALUE% (relative) with a finite VALUE >= 0, e.g. mpjpe:0.5mm or p_mpjpe:2%.")
    return m.group("metric"), Tolerance(float(m.group("value")), m.group("unit") == "%")


def _check_tolerance_option(value: float | None, option: str) -> None:
    """NaN would compare False and silently pass everything; a negative limit fails everything."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not math.isfinite(value) or value < 0):
        raise ConfigError(f"{option} must be a finite number >= 0, got {printable(value)}.")


@dataclass
class Tolerances:
    default: Tolerance = field(default_factory=lambda: parse_tolerance(DEFAULT_TOLERANCE)[1])
    per_metric: dict[str, Tolerance] = field(default_factory=dict)

    def for_metric(self, metric: str) -> Tolerance:
        return self.per_metric.get(metric, self.default)

    def update(self, specs: list[str] | dict[str, str]) -> None:
        items = ([f"{k}:{v}" if k != "default" else str(v) for k, v in specs.items()] if isinstance(specs, dict)
                 else specs)
        for spec in items:
            metric, tol = parse_tolerance(spec)
            if metric is None or metric == "default":
                self.default = tol
            else:
                self.per_metric[metric] = tol


def _read_sidecar(sidecar: Path) -> dict[str, object]:
    """The ``[tolerances]`` table of a reference's sidecar; not a regular file, oversized, binary, too deeply
    nested or non-TOML is one DataError."""
    doc = load_toml_capped(sidecar, 'a tolerance sidecar: TOML with [tolerances] mpjpe = "0.5mm"', CONFIG_MAX_BYTES,
                           error=DataError)
    table = doc.get("tolerances", {})
    if not isinstance(table, dict):
        raise DataError(f"{sidecar}: [tolerances] must be a table of metric = \"VALUEmm\" or \"VALUE%\".")
    return table


def load_tolerances(reference: Path, tol_mm: float | None = None, tol_rel: float | None = None,
                    extra: list[str] | None = None) -> Tolerances:
    _check_tolerance_option(tol_mm, "--tol-mm")
    _check_tolerance_option(tol_rel, "--tol-rel")
    tols = Tolerances()
    sidecar = Path(reference).with_suffix(".toml")
    if sidecar.exists():
        table = _read_sidecar(sidecar)
        try:
            tols.update({k: str(v) for k, v in table.items()})
        except ConfigError as exc:
            raise DataError(f"{sidecar}: {exc}") from exc
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
        return (f"{k['model']}/{k['variant']}/seed{k['seed']}/{k['dataset']}/noise{k['test_noise']}/T{k['seq_len']}/"
                f"{k['metric']}/{k['slice']}")


_OK_STATUS = ("ok", "")  # a results file without a status column holds ok rows


def _label(row: pd.Series) -> str:
    keys = ("model", "variant", "seed", "dataset", "test_noise", "seq_len", "metric", "slice")
    return "/".join(printable(str(row[k])) for k in keys)


def _raw_value(path: Path, position: int) -> str:
    """The ``value`` cell as written (read_rows has already turned text into NaN), for the error message."""
    try:
        return str(pd.read_csv(path, usecols=["value"], dtype=str, keep_default_na=False)["value"].iloc[position])
    except Exception:  # noqa: BLE001 - only decorates an error that is raised anyway
        return "?"


def _keyed(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [k for k in MATCH_KEYS if k not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; is it a liftbench results.csv?")
    df = df.copy()
    for k in MATCH_KEYS:
        df[k] = df[k].astype(str)
    for k in ("train_noise", "test_noise", "seq_len", "seed"):  # '5' and '5.0' are the same condition
        df[k] = pd.to_numeric(df[k], errors="coerce").map(lambda v: f"{v:g}" if v == v else "")
    status = df["status"].astype(str) if "status" in df.columns else pd.Series("ok", index=df.index)
    unknown = ~status.isin(_OK_STATUS + ("error",))
    if unknown.any():
        line = int(df.index[unknown][0]) + 2  # CSV line: header is line 1
        raise DataError(f"{path}: row {_label(df.loc[df.index[unknown][0]])} (line {line}) has status "
                        f"'{printable(status[unknown].iloc[0])}'; use ok or error.")
    bad = status.isin(_OK_STATUS) & ~np.isfinite(pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=float))
    if bad.any():
        first = df.index[bad][0]
        raw = _raw_value(path, int(first))
        raise DataError(f"{path}: row {_label(df.loc[first])} (line {int(first) + 2}) has value '{printable(raw)}', "
                        f"not a finite number ({int(bad.sum())} such row(s)); an ok row needs one: fix the file or "
                        "regenerate it.")
    dup = df.duplicated(list(MATCH_KEYS), keep=False)
    if dup.any():
        row = df[dup].iloc[0]
        raise DataError(f"{path}: {int(dup.sum())} rows share the same key (e.g. {_label(row)}); each value must "
                        "appear once.")
    for k in MATCH_KEYS:  # keys are printed: escape newlines and control characters (reversibly, never cut)
        df[k] = df[k].map(lambda text: printable(text, _KEY_CHARS))
    return df.set_index(list(MATCH_KEYS))


def compare(results: Path, reference: Path, tolerances: Tolerances,
            higher_is_better: dict[str, bool] | None = None) -> list[Verdict]:
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
        r_ok = str(r.get("status", "ok")) in _OK_STATUS
        c_ok = str(c.get("status", "ok")) in _OK_STATUS
        if not r_ok and not c_ok:  # failed in both: nothing moved (NaN - NaN must not read as "better")
            verdicts.append(Verdict(kd, rv, cv, None, str(tol), "same"))
            continue
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
    rows = read_rows(results)
    _keyed(rows, Path(results))  # a malformed file never becomes the reference
    changes = compare(results, reference, Tolerances(Tolerance(0.0, False))) if Path(reference).exists() else []
    write_rows(Path(reference), rows)
    return [v for v in changes if v.verdict != "same"]


def check_files(results: str | Path, reference: str | Path, *, tol_mm: float | None = None,
                tol_rel: float | None = None, tolerances: list[str] | None = None) -> tuple[list[Verdict], int]:
    """Python entry point of ``liftbench check``: (every verdict, the exit code the CLI would return)."""
    tols = load_tolerances(Path(reference), tol_mm, tol_rel, tolerances)
    verdicts = compare(Path(results), Path(reference), tols)
    return verdicts, exit_code(verdicts)
