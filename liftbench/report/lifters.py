"""Lifters side by side (``liftbench run lifters`` and any suite whose variants use several lifters).

One row per variant: the lifter's label and contract (alignment, receptive field), its trainable
parameters, P1 / P2 / MPJVE / jitter (headline action means, mean over seeds), training seconds per
epoch and inference frames per second. The accuracy columns come from the suite's tidy rows; the
costs come from each run's own files (``run.json``, ``metrics.jsonl``, ``protocol.json``), because
wall-clock numbers are machine-dependent and never belong in ``results.csv`` (a regression check
would flag the machine, not the code).

Causal and centred lifters see different frames (centred ones see the future), so the table carries
an ``alignment`` column and ``ranking_note`` says when one ranking mixes both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from liftbench.errors import DataError
from liftbench.models import LIFTERS, lifter_contract

COLUMNS = ("variant", "model", "label", "alignment", "receptive_field", "scored_in", "parameters", "mpjpe", "p_mpjpe",
           "mpjve", "jitter", "train_s_per_epoch", "inference_frames_per_s", "seeds")
ACCURACY = ("mpjpe", "p_mpjpe", "mpjve", "jitter")


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _seconds_per_epoch(run_dir: Path) -> float:
    """Median wall seconds of the run's epochs (metrics.jsonl); NaN when unknown."""
    seconds = []
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("seconds"), (int, float)) and record["seconds"] > 0:
                seconds.append(float(record["seconds"]))
    except (OSError, ValueError):
        return float("nan")
    return float(np.median(seconds)) if seconds else float("nan")


def lifter_table(rows: pd.DataFrame, runs_dir: Path) -> pd.DataFrame:
    """Per-variant comparison (module docstring) from a suite's rows and its runs directory."""

    if rows.empty:
        raise DataError("No result rows to compare; run the suite first (liftbench run lifters).")
    convention = rows["convention"].astype(str) if "convention" in rows else pd.Series("", index=rows.index)
    ok = rows[(rows["status"].astype(str) == "ok") & (rows["slice"].astype(str) == "action_mean")
              & (pd.to_numeric(rows["test_noise"], errors="coerce").fillna(0) == 0)
              & convention.isin(["", "liftbench"])]  # every frame once: never another codebase's frame set
    out = []
    for variant, group in ok.groupby("variant", sort=False):
        model = str(group["model"].iloc[0])
        run_ids = sorted(set(group["run_id"].astype(str)))
        runs = [runs_dir / r for r in run_ids]
        config = _json(runs[0] / "config.json") if runs else {}
        params = {k: v for k, v in config.get("model", {}).items() if k != "name"}
        try:
            contract = lifter_contract(model, **params) if model in LIFTERS else None
        except Exception:  # noqa: BLE001 - a run of an older liftbench: show what the rows say
            contract = None
        values = {m: float(pd.to_numeric(group.loc[group["metric"] == m, "value"], errors="coerce").mean())
                  for m in ACCURACY}
        fps = [_json(r / "protocol.json").get("inference", {}).get("frames_per_s") for r in runs]
        fps = [float(v) for v in fps if isinstance(v, (int, float))]
        out.append({
            "variant": variant, "model": model, "label": contract.label if contract else model,
            "alignment": str(group["alignment"].iloc[0]) if "alignment" in group else "",
            "receptive_field": int(pd.to_numeric(group["seq_len"], errors="coerce").iloc[0]),
            "scored_in": (("2.5D mm" if contract.representation.output_norm == "image25d" else "camera mm")
                          if contract else ""),
            "parameters": int(_json(runs[0] / "run.json").get("trainable_parameters", 0)) if runs else 0,
            **values,
            "train_s_per_epoch": float(np.nanmedian([_seconds_per_epoch(r) for r in runs])) if runs else float("nan"),
            "inference_frames_per_s": float(np.median(fps)) if fps else float("nan"),
            "seeds": len(set(group["seed"].astype(str)))})
    return pd.DataFrame(out, columns=list(COLUMNS))


def ranking_note(table: pd.DataFrame) -> str:
    """'' or what the ranking mixes: causal, centred and clip lifters; ground truth in different spaces."""
    notes = []
    kinds = set(table["alignment"]) - {"frame", ""}
    if len(kinds) > 1:
        notes.append("Causal, centred and clip lifters are ranked together: centred and clip ones also see future "
                     "frames (alignment column); compare within one alignment for a like-for-like ranking.")
    if "scored_in" in table and len(set(table["scored_in"]) - {""}) > 1:
        notes.append("Not all errors are in one space: '2.5D mm' rows (MotionBERT) are scored against the ground "
                     "truth in image-plane 2.5D with the true per-frame scale, as its evaluation does.")
    return " ".join(notes)


def _cell(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"


def comparison_report(rows: pd.DataFrame, runs_dir: Path):
    """(rich Table, Markdown lines) of ``lifter_table``; None when the rows hold fewer than two lifters."""
    from rich.table import Table

    if rows.empty or rows["model"].nunique() < 2:
        return None
    table = lifter_table(rows, runs_dir)
    headers = ["variant", "lifter", "alignment", "RF", "scored in", "params", "P1 mm", "P2 mm", "MPJVE", "jitter",
               "train s/epoch", "infer frames/s", "seeds"]
    rich = Table(title="Lifters side by side (headline action means over seeds; costs from this machine's runs)")
    for h in headers:
        rich.add_column(h, justify="left" if h in ("variant", "lifter", "alignment") else "right", overflow="fold")
    md = ["", "### Lifters side by side", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in table.itertuples():
        cells = [r.variant, r.label, r.alignment, str(r.receptive_field), r.scored_in, f"{r.parameters:,}",
                 _cell(r.mpjpe), _cell(r.p_mpjpe), _cell(r.mpjve, 2), _cell(r.jitter, 2), _cell(r.train_s_per_epoch),
                 _cell(r.inference_frames_per_s, 0), str(r.seeds)]
        rich.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    note = ranking_note(table)
    if note:
        rich.caption = note
        md += ["", f"**{note}**"]
    md += ["", "Training seconds per epoch and inference frames/s are wall-clock on the machine that ran the suite "
           "(not in results.csv: they measure the machine as much as the lifter); runs trained together under "
           "`--pack` report their pack's epoch time."]
    return rich, md, table


def comparison_plot(table: pd.DataFrame, out: Path) -> Path:
    """P1 against inference speed, one marker per variant (filled = centred, open = causal / frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in table.itertuples():
        filled = r.alignment == "centred"
        ax.scatter([r.inference_frames_per_s], [r.mpjpe], s=60, marker="o",
                   facecolors=None if filled else "none", edgecolors="C0" if filled else "C1")
        ax.annotate(f"{r.variant} (RF {r.receptive_field})", (r.inference_frames_per_s, r.mpjpe), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("inference frames/s (this machine)")
    ax.set_ylabel("P1 MPJPE (mm), action mean")
    ax.set_title("Lifters: accuracy vs speed (filled = centred window)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
