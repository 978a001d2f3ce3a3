"""Tidy result rows and their provenance.

``results.csv`` is long/tidy: one measured value per row (``docs/results.md``). Files are only ever
replaced atomically (``_files.write_text_atomic``), so a crash or kill leaves either the old file or
the new one, never a partial row.
"""

from __future__ import annotations

import datetime as _dt
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

PROTOCOL_VERSION = "1"

ROW_COLUMNS: tuple[str, ...] = (
    # identity
    "run_id", "suite", "model", "variant", "seed", "origin",
    # conditions
    "dataset", "dataset_fingerprint", "keypoints", "train_noise", "test_noise", "noise_seed", "seq_len", "alignment",
    # measurement
    "metric", "slice_type", "slice", "averaging", "value", "unit", "higher_is_better",
    # coverage
    "n_frames", "n_frames_expected",
    # provenance
    "protocol_version", "config_hash", "liftbench_version", "torch_version", "device", "git_sha", "created_utc",
    # status
    "status", "error",
)

#: columns that identify one value (everything but the measurement, provenance and status)
KEY_COLUMNS: tuple[str, ...] = ("suite", "model", "variant", "seed", "dataset", "keypoints", "train_noise",
                                "test_noise", "seq_len", "metric", "slice_type", "slice")


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
    ``DataError`` naming the file (readers pass the columns they use, e.g. ``ROW_COLUMNS``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a results.csv written by liftbench.")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path} is not a readable CSV ({one_line(exc)}).") from exc
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
