"""Rendering: paper-style rich tables, Markdown reports and matplotlib plots from result rows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from liftbench.errors import ConfigError


def _fmt(v: float, digits: int = 1) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def paper_table(rows: pd.DataFrame, metric: str, title: str, row_label: str = "liftbench",
                by: list[str] | None = None) -> Table:
    """Wide table: action groups as columns plus Avg (action_mean), one row per ``by`` group."""
    df = rows[(rows["metric"] == metric) & rows["slice_type"].isin(["action", "all"])]
    actions = sorted(df.loc[df["slice_type"] == "action", "slice"].unique())
    table = Table(title=title)
    table.add_column("")
    for a in actions:
        table.add_column(a[:9], justify="right")
    table.add_column("Avg", justify="right", style="bold")
    groups = [(row_label, df)] if not by else [(" ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), g)
                                               for key, g in df.groupby(by, sort=False)]
    for label, g in groups:
        values = g.groupby("slice")["value"].mean()
        table.add_row(label, *[_fmt(values.get(a, np.nan)) for a in actions], _fmt(values.get("action_mean", np.nan)))
    return table


def joint_table(rows: pd.DataFrame) -> Table:
    df = rows[rows["slice_type"] == "joint"]
    table = Table(title="Per-joint error (mm, unweighted mean over action groups)")
    table.add_column("joint")
    metrics = [m for m in ("mpjpe", "p_mpjpe") if m in set(df["metric"])]
    for m in metrics:
        table.add_column(m, justify="right")
    for joint in df["slice"].drop_duplicates():
        table.add_row(joint, *[_fmt(df[(df["slice"] == joint) & (df["metric"] == m)]["value"].mean()) for m in metrics])
    return table


def compare_with_paper(results: str | Path, paper: str, metric: str = "mpjpe") -> tuple[Table, list[str]]:
    """liftbench per action group vs a published table; deltas; notes when datasets differ."""
    from liftbench.baselines import load_baselines
    from liftbench.results import read_rows

    if metric not in ("mpjpe", "p_mpjpe"):
        raise ConfigError(f"--metric must be mpjpe or p_mpjpe, got '{metric}'.")
    ours = read_rows(Path(results))
    ours = ours[(ours["metric"] == metric) & ours["slice_type"].isin(["action", "all"])]
    if ours.empty:
        raise ConfigError(f"{results} has no '{metric}' rows to compare; run liftbench evaluate first.")
    pub = load_baselines(paper)
    pub = pub[pub["metric"] == metric]
    warnings = []
    datasets = sorted(set(ours["dataset"].astype(str)))
    if any(d != "h36m" for d in datasets):
        warnings.append(f"liftbench numbers are on {', '.join(datasets)}, the paper's on Human3.6M: the datasets differ, "
                        "so per-action deltas are not a reproduction check (action groups may not even overlap).")
    variants = list(pub[["method", "input_2d", "variant"]].drop_duplicates().itertuples(index=False, name=None))
    mine = ours.groupby("slice")["value"].mean()
    table = Table(title=f"{metric}: liftbench vs {paper} (published)")
    table.add_column("action group")
    table.add_column("liftbench", justify="right")
    for method, input_2d, variant in variants:
        table.add_column(f"{method} [{input_2d}{'' if variant in ('', 'full') else ', ' + str(variant)}]", justify="right")
        table.add_column("Δ", justify="right")
    slices = sorted(set(mine.index) | set(pub["slice"])) 
    slices = [s for s in slices if s not in ("action_mean", "frame_mean", "video_mean")] + ["action_mean"]
    for s in slices:
        cells = [_fmt(mine.get(s, np.nan))]
        for method, input_2d, variant in variants:
            sel = pub[(pub["method"] == method) & (pub["input_2d"] == input_2d) & (pub["variant"] == variant) & (pub["slice"] == s)]
            p = float(sel["value"].iloc[0]) if len(sel) else np.nan
            cells += [_fmt(p), _fmt(mine.get(s, np.nan) - p)]
        table.add_row("Avg" if s == "action_mean" else s, *cells)
    return table, warnings
