"""Tidy result rows and their provenance.

``results.csv`` is long/tidy: one measured value per row (``docs/results.md``). Files are only ever
replaced atomically (``_files.write_text_atomic``), so a crash or kill leaves either the old file or
the new one, never a partial row.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from liftbench import __version__
from liftbench._files import write_text_atomic
from liftbench.errors import DataError, one_line
from liftbench.values import TABLE_MAX_BYTES, printable, read_text_capped, reading

PROTOCOL_VERSION = "1"

ROW_COLUMNS: tuple[str, ...] = (
    # identity
    "run_id", "suite", "model", "variant", "seed", "origin",
    # conditions
    "dataset", "dataset_fingerprint", "keypoints", "train_keypoints", "test_keypoints", "train_noise", "test_noise",
    "noise_seed", "seq_len", "alignment", "convention",
    # measurement
    "metric", "slice_type", "slice", "averaging", "value", "unit", "higher_is_better",
    # coverage
    "n_frames", "n_frames_expected", "n_counted", "coverage",
    # provenance
    "protocol_version", "config_hash", "liftbench_version", "torch_version", "device", "git_sha", "created_utc",
    # status
    "status", "error",
)

#: columns that identify one value (everything but the measurement, provenance and status). ``keypoints`` is
#: the 2D the value was scored on (= ``test_keypoints``, kept for older readers); ``train_keypoints`` the 2D the
#: run was trained on (from its resolved config): a GT-trained run scored on detections is another condition.
KEY_COLUMNS: tuple[str, ...] = ("suite", "model", "variant", "seed", "dataset", "keypoints", "train_keypoints",
                                "test_keypoints", "train_noise", "test_noise", "seq_len", "convention", "metric",
                                "slice_type", "slice")
#: the evaluation convention of rows written before the column existed, or left empty: liftbench's own
DEFAULT_CONVENTION = "liftbench"


#: columns added after results files existed, and what an older file's rows mean by them
LATER_COLUMNS = {"convention": DEFAULT_CONVENTION, "n_counted": "", "coverage": "full"}


def fill_convention_column(df: pd.DataFrame) -> pd.DataFrame:
    """Rows older than ``LATER_COLUMNS`` (or leaving them empty) were scored liftbench's way, every frame once,
    on the full test set; returns a copy."""
    df = df.copy()
    for col, default in LATER_COLUMNS.items():
        values = df[col].astype(str) if col in df.columns else pd.Series("", index=df.index)
        df[col] = values.where(~values.isin(["", "nan"]), default) if default else values.replace("nan", "")
    return df


def fill_keypoint_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Rows written before ``train_keypoints``/``test_keypoints`` existed: both were the row's ``keypoints``
    (a run was then always scored on the 2D it was trained on, unless re-evaluated with --keypoints, which
    such files cannot tell). Empty cells are filled the same way; returns a copy."""
    df = df.copy()
    fallback = df["keypoints"].astype(str) if "keypoints" in df.columns else pd.Series("", index=df.index)
    for col in ("train_keypoints", "test_keypoints"):
        values = df[col].astype(str) if col in df.columns else pd.Series("", index=df.index)
        df[col] = values.where(~values.isin(["", "nan"]), fallback)
    return df


def rows_frame(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows -> DataFrame with exactly ``ROW_COLUMNS`` in order (missing columns filled with '')."""
    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for col in ROW_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    return df[list(ROW_COLUMNS)]


def write_rows(path: Path, rows: list[dict[str, Any]] | pd.DataFrame) -> Path:
    """Replace ``path`` with these rows (atomic)."""
    df = rows_frame(rows)
    write_text_atomic(path, df.to_csv(index=False, float_format="%.6g"))
    return Path(path)


def append_rows(path: Path, rows: list[dict[str, Any]] | pd.DataFrame) -> Path:
    """Append rows to a results CSV by rewriting it atomically (a kill never leaves a partial row)."""
    path = Path(path)
    new = rows_frame(rows)
    if path.exists():
        new = pd.concat([read_rows(path), new], ignore_index=True)
    return write_rows(path, new)


#: columns every reader of a results file relies on (``status`` tells measured values from failed runs)
REQUIRED_COLUMNS: tuple[str, ...] = ("metric", "slice_type", "slice", "value", "status")


def read_rows(path: Path, required: tuple[str, ...] = REQUIRED_COLUMNS) -> pd.DataFrame:
    """A results CSV as strings plus a numeric ``value``; a missing ``required`` column is a one-line
    ``DataError`` naming the file (readers pass the columns they use, e.g. ``ROW_COLUMNS``). A file older
    than ``train_keypoints``/``test_keypoints`` gets them from ``keypoints`` (``fill_keypoint_columns``)."""
    path = Path(path)
    text = read_text_capped(path, "a results.csv written by liftbench", TABLE_MAX_BYTES)  # regular, capped, BOM dropped
    try:
        with reading(path, "a results CSV"):
            df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[])
    except DataError as exc:
        cause = exc.__cause__
        if not isinstance(cause, (pd.errors.ParserError, pd.errors.EmptyDataError)):
            raise
        raise DataError(f"{path} is not a readable CSV ({printable(one_line(cause), 120)}).") from cause
    del text
    df = fill_convention_column(fill_keypoint_columns(df))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path} is not a liftbench results file: missing column(s) {', '.join(missing)}; "
                        "pass a results.csv written by liftbench evaluate or a suite (or re-run it).")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


@lru_cache(maxsize=1)
def git_sha() -> str:
    """Commit of the liftbench source tree ('unknown' outside a git checkout), '+dirty' if modified."""
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(device: str) -> dict[str, str]:
    import torch

    return {"liftbench_version": __version__, "torch_version": torch.__version__, "device": device,
            "git_sha": git_sha(), "created_utc": utc_now(), "protocol_version": PROTOCOL_VERSION}


def machine_info(device: str) -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info
