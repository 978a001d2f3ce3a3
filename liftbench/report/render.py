"""Rendering: paper-style rich tables, Markdown reports and matplotlib plots from result rows only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from liftbench._files import write_text_atomic
from liftbench.config import config_from_dict
from liftbench.errors import ConfigError, DataError, LiftbenchError, one_line
from liftbench.papers.claim_table import CLAIM_HEADERS, claim_cells, claim_notes, claims_lead
from liftbench.papers.claims import SEEDS_FORMULA, check_claims
from liftbench.papers.compare import (  # noqa: F401  (re-exported)
    COMPARE_COLUMNS,
    compare_with_paper,
    suite_paper_lookup,
)
from liftbench.papers.match import SuiteSetting, suite_setting
from liftbench.report.lifters import comparison_plot, comparison_report, lifter_table
from liftbench.results import ROW_COLUMNS, read_rows


def _fmt(v: float, digits: int = 1) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def paper_table(rows: pd.DataFrame, metric: str, title: str, row_label: str = "liftbench",
                by: list[str] | None = None, order: list[str] | None = None) -> Table:
    """Wide table: action groups as columns plus Avg (action_mean), one row per ``by`` group
    (in ``order`` of the first ``by`` key when given; values averaged over the remaining rows, e.g. seeds)."""
    df = rows[(rows["metric"] == metric) & rows["slice_type"].isin(["action", "all"])]
    actions = sorted(df.loc[df["slice_type"] == "action", "slice"].unique())
    table = Table(title=title)
    table.add_column("")
    for a in actions:
        table.add_column(a[:9], justify="right")
    table.add_column("Avg", justify="right", style="bold")
    groups = [(row_label, df)] if not by else [(" ".join(map(str, key if isinstance(key, tuple) else (key,))), g)
                                               for key, g in df.groupby(by, sort=False)]
    if order:
        rank = {v: i for i, v in enumerate(order)}
        groups.sort(key=lambda item: rank.get(item[0].split(" ")[0], len(rank)))
    for label, g in groups:
        values = g.groupby("slice")["value"].mean()
        table.add_row(label, *[_fmt(values.get(a, np.nan)) for a in actions], _fmt(values.get("action_mean", np.nan)))
    return table


def _table_markdown(table: Table) -> list[str]:
    """A rich Table as Markdown lines (header, rule, rows)."""
    headers = [str(c.header) for c in table.columns]
    cells = [list(map(str, c.cells)) for c in table.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(col[i] for col in cells) + " |" for i in range(len(cells[0]) if cells else 0)]
    return lines


def conventions_table(rows: pd.DataFrame, card: dict) -> Table:
    """One line per evaluation convention of the same predictions: P1 (action mean, frame mean), P2, and the
    frames it scores / counts of the full test set. Never a difference across conventions: each is its own
    protocol, shown side by side."""
    table = Table(title="The same predictions under each codebase's evaluation convention (mm)")
    for col in ("convention", "P1 action mean", "P1 frame mean", "P2 action mean", "frames scored", "counted",
                "of test frames"):
        table.add_column(col, justify="left" if col == "convention" else "right")
    conv = rows["convention"].astype(str)
    for name, info in card.items():
        sel = rows[(conv == name) & (rows["slice_type"] == "all")]

        def value(metric: str, slc: str, sel=sel) -> str:
            hit = sel[(sel["metric"] == metric) & (sel["slice"] == slc)]["value"]
            return _fmt(float(hit.iloc[0])) if len(hit) else "—"

        table.add_row(name, value("mpjpe", "action_mean"), value("mpjpe", "frame_mean"),
                      value("p_mpjpe", "action_mean"), f"{info['frames_scored']:,}", f"{info['frames_counted']:,}",
                      f"{info['test_frames']:,}")
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


# --------------------------------------------------------------------------------------------
# Suite reports
# --------------------------------------------------------------------------------------------

# the noise suite shows both P2 kinds: Table 3's seq2seq column is rigid (Hossain's released code), Martinez's
# similarity
HEADLINE_METRICS = {"ablation": ["mpjpe", "p_mpjpe"], "noise": ["p_mpjpe", "p_mpjpe_rigid", "mpjpe"],
                    "seqlen": ["mpjpe", "p_mpjpe"], "jitter": ["mpjpe", "mpjve", "accel_error", "jitter", "jitter_gt"]}
METRIC_LABEL = {"mpjpe": "P1 MPJPE", "p_mpjpe": "P2 P-MPJPE", "p_mpjpe_rigid": "P2 rigid (no scale)",
                "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE",
                "accel_error": "accel err", "jitter": "jitter", "jitter_gt": "GT jitter", "pck150": "PCK150",
                "auc": "AUC"}


def _mean_sd(sub: pd.DataFrame) -> str:
    if sub.empty:
        return "—"
    r = sub.iloc[0]
    sd = "" if r["n"] < 2 or r["sd"] != r["sd"] else f" ± {r['sd']:.1f}"
    return f"{r['mean']:.1f}{sd} (n={int(r['n'])})"


#: what the suite report reads from summary.csv (written by ``runner.summarize``)
SUMMARY_COLUMNS = ("variant", "seq_len", "test_noise", "metric", "slice_type", "slice", "mean", "sd", "n")


def _load_suite_files(directory: Path):
    """results.csv, summary.csv and manifest.json of a suite directory, each checked for what the report
    reads: a missing column or a malformed manifest is one line naming the file (never a KeyError)."""

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not (directory / "summary.csv").exists() or not manifest_path.exists():
        raise ConfigError(f"{directory} is not a suite directory (no summary.csv / manifest.json); run a suite first.")
    rows = read_rows(directory / "results.csv", required=ROW_COLUMNS)
    summary_path = directory / "summary.csv"
    try:
        summary = pd.read_csv(summary_path, keep_default_na=False, na_values=["nan", "NaN"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{summary_path} is not a readable CSV ({one_line(exc)}); re-run the suite "
                        "to rebuild it.") from exc
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise DataError(f"{summary_path} is not a liftbench summary: missing column(s) {', '.join(missing)}; "
                        "re-run the suite to rebuild it.")
    for c in ("mean", "sd", "n", "ci95_low", "ci95_high"):  # sd/CI of a single seed are written as empty cells
        if c in summary:
            summary[c] = pd.to_numeric(summary[c], errors="coerce")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{manifest_path} is not valid JSON ({exc}); re-run the suite to rebuild it.") from exc
    runs = manifest.get("runs") if isinstance(manifest, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) and isinstance(r.get("variant"), str)
                                             and isinstance(r.get("run_id"), str) and "seed" in r for r in runs):
        raise DataError(f"{manifest_path} is not a liftbench suite manifest (needs a 'runs' list with each run's "
                        "run_id, variant and seed); re-run the suite to rebuild it.")
    return rows, summary, manifest


def headline_frame(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (variant, seq_len, test_noise) with mean/sd/n per metric at slice action_mean."""
    s = summary[(summary["slice_type"] == "all") & (summary["slice"] == "action_mean")
                & summary["metric"].isin(metrics)].copy()
    for c in ("seq_len", "test_noise"):
        s[c] = pd.to_numeric(s[c], errors="coerce")
    return s


def suite_setting_of(directory: Path, manifest: dict) -> SuiteSetting:
    """The banner of a suite directory (``papers.match.suite_setting``) from the resolved config of every run
    (``<out>/runs/<run_id>/config.json``) against the preset's declared setting."""
    runs = Path(directory).parent / "runs"
    configs = []
    for run in manifest["runs"]:
        try:
            cfg = config_from_dict(json.loads((runs / run["run_id"] / "config.json").read_text()),
                                   where=str(runs / run["run_id"] / "config.json"))
        except (OSError, ValueError, LiftbenchError):
            cfg = None
        configs.append((run["variant"], run.get("axis_value"), cfg))
    return suite_setting(str(manifest.get("suite", "")), str(manifest.get("preset", "")), configs)


def suite_banner_of(directory: Path, rows: pd.DataFrame, manifest: dict) -> str | None:
    """The one-line banner of a suite directory (None: the runs are a paper table's declared setting)."""
    return suite_setting_of(directory, manifest).banner


def suite_tables(directory: Path) -> tuple[list[Table], str]:
    """Rich tables and the Markdown text of a suite report."""

    rows, summary, manifest = _load_suite_files(directory)
    suite = manifest.get("suite", "")
    preset = manifest.get("preset", "")
    metrics = HEADLINE_METRICS.get(suite, ["mpjpe", "p_mpjpe"])
    head = headline_frame(summary, metrics)
    video = headline_frame(summary[summary["slice"].astype(str) == "video_mean"].assign(slice="action_mean"),
                           metrics[:1])
    variants = list(dict.fromkeys(r["variant"] for r in manifest["runs"]))
    setting = suite_setting_of(directory, manifest)
    banner, table_name = setting.banner, setting.reproduces
    tables, md = [], [f"# liftbench suite report: {suite} ({preset})", "",
                      *([f"**{banner}**", ""] if banner else []),
                      *([f"Reproduces: {table_name}.", ""] if table_name else []),
                      f"Directory: `{directory}`. Values: mean ± sd over seeds (n) of the action-group average "
                      "(unweighted mean over action groups, frame-weighted within a group, every test frame scored "
                      "exactly once); 'video-weighted' = mean of per-video means within a group (Hossain's "
                      "weighting).", ""]
    paper = suite_paper_lookup(suite, HEADLINE_METRICS.get(suite, ["mpjpe"]), rows, summary, Path(directory))
    conditions = head[["variant", "seq_len", "test_noise"]].drop_duplicates()
    conditions["order"] = conditions["variant"].map({v: i for i, v in enumerate(variants)})
    conditions = conditions.sort_values(["order", "seq_len", "test_noise"])
    ref = head[head["variant"] == "full"] if suite == "ablation" else None
    table = Table(title=f"{suite}: headline metrics (mm; {rows['dataset'].iloc[0] if len(rows) else ''})")
    cols = ["variant", "seq_len", "noise px"] + [METRIC_LABEL.get(m, m) for m in metrics]
    cols += [f"{METRIC_LABEL.get(metrics[0], metrics[0])} video-weighted"]
    if ref is not None:
        cols += ["Δ P1 vs full"]
    if paper is not None:
        cols += ["paper H36M (same setting only)"]
    for c in cols:
        table.add_column(c, justify="left" if c == "variant" else "right")
    md += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    paper_notes: list[str] = []
    def at(frame: pd.DataFrame, c: pd.Series) -> pd.DataFrame:
        return frame[(frame["variant"] == c["variant"]) & (frame["seq_len"] == c["seq_len"])
                     & (frame["test_noise"] == c["test_noise"])]

    for _, c in conditions.iterrows():
        sel = at(head, c)
        cells = [c["variant"], f"{int(c['seq_len'])}", f"{c['test_noise']:g}"]
        cells += [_mean_sd(sel[sel["metric"] == m]) for m in metrics]
        cells.append(_mean_sd(at(video, c)))
        if ref is not None:
            r = ref[(ref["metric"] == "mpjpe") & (ref["test_noise"] == c["test_noise"])]
            mine = sel[sel["metric"] == "mpjpe"]
            cells.append(f"{mine['mean'].iloc[0] - r['mean'].iloc[0]:+.1f}" if len(r) and len(mine) else "—")
        if paper is not None:
            cell, note = paper(c)
            cells.append(cell)
            if note:
                paper_notes.append(note)
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    if paper_notes:
        table.caption = "\n".join(dict.fromkeys(paper_notes))
        md += [""] + [f"- {n}" for n in dict.fromkeys(paper_notes)]
    tables.append(table)
    if suite == "ablation":  # Table 4 is per action group too: P1 and P2, one row per variant
        sigma = pd.to_numeric(rows["test_noise"], errors="coerce")
        clean = rows[(rows["status"].astype(str) == "ok") & (sigma == sigma.min())]
        for metric, title in (("mpjpe", "Protocol #1 (MPJPE, mm)"), ("p_mpjpe", "Protocol #2 (P-MPJPE, mm)")):
            wide = paper_table(clean, metric, title=f"{suite}: {title} per action group, mean over seeds",
                               by=["variant"], order=variants)
            tables.append(wide)
            md += ["", f"### {title} per action group (mean over seeds; Avg = unweighted mean over groups)", "",
                   *_table_markdown(wide)]
    lifters = comparison_report(rows, Path(directory).parent / "runs")
    if lifters is not None:
        tables.append(lifters[0])
        md += lifters[1]
    claims = claim_table(rows, suite)
    if claims is not None:
        tables.append(claims)
        datasets = sorted(set(rows["dataset"].astype(str))) if len(rows) else []
        md += ["", "### Claim checks (per-seed headline values, 95 % t-intervals)", "",
               *([f"**{banner}**", ""] if banner else []), claims_lead(datasets), "", *_table_markdown(claims), "",
               *[f"- {n}" for n in str(claims.caption or "").splitlines() if n], "",
               f"Seeds needed: {SEEDS_FORMULA}."]
    md += ["", "Paper values are published Human3.6M numbers (baselines/), shown only beside a measured value of the "
           "same setting (2D source of training and test, averaging, P2 kind, window, alignment, TTA); they are not "
           "liftbench results.", ""]
    errors = rows[rows["status"].astype(str) == "error"]
    if len(errors):
        md += ["## Failed runs", ""] + [f"- {r.variant} seed {r.seed}: {r.error}" for r in errors.itertuples()] + [""]
    return tables, "\n".join(md)


def claim_table(rows: pd.DataFrame, suite: str) -> Table | None:
    """The paper's claims this suite can test (``liftbench.papers.claims``), one row each; None if there are none."""

    results = check_claims(rows, suite)
    if not results:
        return None
    table = Table(title=f"{suite}: the paper's claims against the measured seeds")
    for h in CLAIM_HEADERS:
        table.add_column(h, overflow="fold", justify="right" if h in ("seeds a/b",) else "left")
    for r in results:
        table.add_row(*claim_cells(r))
    table.caption = "\n".join(claim_notes(results))
    return table


def suite_plots(directory: Path) -> list[Path]:
    """PNG plots: error vs sigma / sequence length with seed spread, ablation bars with deltas, training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows, summary, manifest = _load_suite_files(directory)
    plots = Path(directory) / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    head = headline_frame(summary, ["mpjpe", "p_mpjpe"])
    def varies_within_a_variant(axis: str) -> bool:  # an MLP (T=1) beside a seq2seq (T=5) is no sweep
        return bool((head.groupby("variant")[axis].nunique() > 1).any()) if len(head) else False

    for axis, label in (("test_noise", "test noise sigma (px)"), ("seq_len", "sequence length T")):
        if varies_within_a_variant(axis):
            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for ax, metric in zip(axes, ("mpjpe", "p_mpjpe")):
                for variant, g in head[head["metric"] == metric].groupby("variant", sort=False):
                    g = g.sort_values(axis)
                    ax.plot(g[axis], g["mean"], marker="o", label=variant)
                    if (g["n"] > 1).any():
                        ax.fill_between(g[axis], g["ci95_low"], g["ci95_high"], alpha=0.2)
                ax.set_xlabel(label)
                ax.set_ylabel(f"{METRIC_LABEL[metric]} (mm)")
                ax.grid(alpha=0.3)
                ax.legend()
            fig.suptitle(f"{manifest.get('suite')}: error vs {label} (mean, 95% CI over seeds)")
            fig.tight_layout()
            path = plots / f"error_vs_{axis}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    p1 = head[(head["metric"] == "mpjpe") & (head["test_noise"] == head["test_noise"].min())]
    if p1["variant"].nunique() > 1 and not varies_within_a_variant("seq_len"):
        fig, ax = plt.subplots(figsize=(8, 4))
        order = list(dict.fromkeys(r["variant"] for r in manifest["runs"]))
        p1 = p1.set_index("variant").reindex([v for v in order if v in set(p1["variant"])])
        err = p1["sd"].fillna(0).to_numpy()
        bars = ax.bar(p1.index, p1["mean"], yerr=err, capsize=4, color="#4C72B0")
        ref = p1["mean"].get("full", np.nan)
        for bar, value, e in zip(bars, p1["mean"], err):
            text = f"{value:.1f}" + (f" ({value - ref:+.1f})" if ref == ref and value != ref else "")
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height() + e), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, float(np.nanmax(p1["mean"].to_numpy() + err)) * 1.15)
        ax.set_ylabel("P1 MPJPE (mm)")
        ax.set_title(f"{manifest.get('suite')}: P1 per variant (Δ vs full)")
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        path = plots / "variants_p1.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if rows["model"].nunique() > 1:  # several lifters: accuracy against inference speed (when any run measured it)
        lifters = lifter_table(rows, Path(directory).parent / "runs")
        speeds = pd.to_numeric(lifters["inference_frames_per_s"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(speeds).any() and (speeds[np.isfinite(speeds)] > 0).any():  # a log axis of NaN cannot be drawn
            written.append(comparison_plot(lifters, plots / "lifters_p1_vs_speed.png"))
    fig, ax = plt.subplots(figsize=(8, 4))
    root = Path(directory).parent / "runs"
    drawn = 0
    for run in manifest["runs"]:
        log = root / run["run_id"] / "metrics.jsonl"
        if log.exists():
            try:
                recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"{log} is not a liftbench metrics log ({exc}); delete it (it is rewritten at the "
                                "next checkpoint) or retrain the run.") from exc
            if recs and all(isinstance(r, dict) and "test_mpjpe" in r and "epoch" in r for r in recs):
                ax.plot([r["epoch"] for r in recs], [r["test_mpjpe"] for r in recs], marker=".",
                        label=f"{run['variant']} s{run['seed']}"
                        + (f" {run['axis_value']}" if run.get("axis_key") else ""))
                drawn += 1
    if drawn:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel("test P1 (mm)")
        ax.set_title("training curves (test MPJPE per epoch)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = plots / "training_curves.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    plt.close(fig)
    return written


def render_suite(directory: Path, console) -> list[Path]:
    """Print the suite tables and write report.md and plots; returns the written paths."""

    tables, md = suite_tables(Path(directory))
    _, _, manifest = _load_suite_files(Path(directory))
    banner = suite_setting_of(Path(directory), manifest).banner
    if banner:
        console.print(f"[bold yellow]{banner}[/]", soft_wrap=True)
    for t in tables:
        console.print(t)
    plots = suite_plots(Path(directory))
    md += "\n## Plots\n\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots) + "\n"
    path = Path(directory) / "report.md"
    write_text_atomic(path, md)
    return [path, *plots]
