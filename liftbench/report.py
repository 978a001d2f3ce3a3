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
    groups = [(row_label, df)] if not by else [(" ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), g)
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


_METHOD_OF_MODEL = {"seq2seq": "hossain2018", "mlp": "martinez2017"}  # which published method a lifter re-implements


def _paper_columns(pub: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Published result sets as (label, rows): per-action sets if the baseline has any, else headline-only ones."""
    keys = ["table", "method_id", "train_2d", "input_2d", "variant", "noise_sigma_px"]
    groups = list(pub.groupby(keys, sort=False, dropna=False))
    per_action = [(k, g) for k, g in groups if (g["slice_type"] == "action").any()]
    chosen = per_action or groups
    out = []
    for (table, method, train_2d, input_2d, variant, sigma), g in chosen:
        noise = f" σ{float(sigma):g}" if float(sigma or 0) else ""
        extra = "" if variant in ("", "full") else f" {variant}"
        out.append((f"{method}\n{table}\n({input_2d}{noise}){extra}", g))
    return out


def _matching_column(config: dict, columns: list[tuple[str, pd.DataFrame]]) -> int | None:
    """The published set a liftbench configuration is compared with: same method, 2D input and noise."""
    method = _METHOD_OF_MODEL.get(str(config["model"]))
    want = "gt" if str(config["keypoints"]) == "gt" and not config["test_noise"] else (
        "gt+noise" if str(config["keypoints"]) == "gt" else None)
    for i, (_, g) in enumerate(columns):
        r = g.iloc[0]
        if method and r["method_id"] != method:
            continue
        if str(r["variant"]) not in ("full", str(config["variant"])):
            continue
        if want is None and not str(r["input_2d"]).startswith("gt") or (
                want is not None and r["input_2d"] == want and float(r["noise_sigma_px"] or 0) == float(config["test_noise"])):
            return i
    return None


def compare_with_paper(results: str | Path, paper: str, metric: str = "mpjpe",
                       variant: str | None = None) -> tuple[Table, list[str]]:
    """liftbench per action group (mean over seeds, one column per model/variant/2D input/noise) beside the
    published per-action results of ``paper``, with deltas to the matching published set.

    Returns the table and notes (different datasets, no matching published set, ...)."""
    from liftbench.baselines import load_baselines
    from liftbench.results import read_rows

    if metric not in ("mpjpe", "p_mpjpe"):
        raise ConfigError(f"--metric must be mpjpe or p_mpjpe, got '{metric}'.")
    ours = read_rows(Path(results))
    ours = ours[(ours["metric"] == metric) & ours["slice_type"].isin(["action", "all"])
                & (ours["status"].astype(str) == "ok")]
    if variant:
        ours = ours[ours["variant"].astype(str) == variant]
    if ours.empty:
        raise ConfigError(f"{results} has no '{metric}' rows{f' for variant {variant}' if variant else ''} to compare; "
                          "run liftbench evaluate (or a suite) first, or check --variant.")
    pub = load_baselines(paper)
    pub = pub[pub["metric"] == metric]
    if pub.empty:
        raise ConfigError(f"Baseline '{paper}' has no '{metric}' values; try --metric {'p_mpjpe' if metric == 'mpjpe' else 'mpjpe'}.")
    notes = []
    datasets = sorted(set(ours["dataset"].astype(str)))
    if any(d != "h36m" for d in datasets):
        notes.append(f"liftbench numbers are on {', '.join(datasets)}, the paper's on Human3.6M: the datasets differ, so "
                     "per-action deltas are not a reproduction check (action groups may not even overlap).")
    ours = ours.assign(test_noise=pd.to_numeric(ours["test_noise"], errors="coerce"))
    config_keys = ["model", "variant", "keypoints", "test_noise"]
    configs = [(dict(zip(config_keys, k)), g.groupby("slice")["value"].mean())  # mean over seeds
               for k, g in ours.groupby(config_keys, sort=False)]
    columns = _paper_columns(pub)
    show_delta = len(configs) <= 3
    if not show_delta:
        notes.append(f"{len(configs)} liftbench configurations: pass --variant NAME to see deltas for one of them.")
    table = Table(title=f"{METRIC_LABEL.get(metric, metric)} (mm): liftbench vs {paper} (published, origin: published)")
    table.add_column("action group", no_wrap=True)
    for cfg, _ in configs:
        noise = f" σ{cfg['test_noise']:g}" if cfg["test_noise"] else ""
        table.add_column(f"liftbench\n{cfg['variant']}\n({cfg['keypoints']}{noise})", justify="right", style="bold")
    for label, _ in columns:
        table.add_column(label, justify="right")
    matches = [_matching_column(cfg, columns) if show_delta else None for cfg, _ in configs]
    for (cfg, _), m in zip(configs, matches):
        if show_delta:
            table.add_column(f"Δ {cfg['variant']}" + ("\nvs " + " ".join(columns[m][0].split("\n")[0::2])
                                                      if m is not None else ""), justify="right")
            if m is None:
                notes.append(f"no published {paper} set matches liftbench {cfg['model']}/{cfg['variant']} on "
                             f"{cfg['keypoints']} (noise {cfg['test_noise']:g} px): no delta shown.")
    pub_values = [g.set_index("slice")["value"] for _, g in columns]
    slices = sorted({s for _, v in configs for s in v.index} | {s for v in pub_values for s in v.index})
    slices = [s for s in slices if s not in ("action_mean", "frame_mean", "video_mean")] + ["action_mean"]
    for s in slices:
        cells = [_fmt(v.get(s, np.nan)) for _, v in configs] + [_fmt(v.get(s, np.nan)) for v in pub_values]
        if show_delta:
            cells += [_fmt(v.get(s, np.nan) - pub_values[m].get(s, np.nan)) if m is not None else "—"
                      for (_, v), m in zip(configs, matches)]
        table.add_row("Avg" if s == "action_mean" else s, *cells)
    table.caption = "Avg = unweighted mean over action groups; liftbench values are means over seeds"
    return table, notes


# --------------------------------------------------------------------------------------------
# Suite reports
# --------------------------------------------------------------------------------------------

HEADLINE_METRICS = {"ablation": ["mpjpe", "p_mpjpe"], "noise": ["p_mpjpe", "mpjpe"], "seqlen": ["mpjpe", "p_mpjpe"],
                    "jitter": ["mpjpe", "mpjve", "accel_error", "jitter", "jitter_gt"]}
METRIC_LABEL = {"mpjpe": "P1 MPJPE", "p_mpjpe": "P2 P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE",
                "accel_error": "accel err", "jitter": "jitter", "jitter_gt": "GT jitter", "pck150": "PCK150", "auc": "AUC"}


def _mean_sd(sub: pd.DataFrame) -> str:
    if sub.empty:
        return "—"
    r = sub.iloc[0]
    sd = "" if r["n"] < 2 or r["sd"] != r["sd"] else f" ± {r['sd']:.1f}"
    return f"{r['mean']:.1f}{sd} (n={int(r['n'])})"


def _load_suite_files(directory: Path):
    from liftbench.results import read_rows
    import json

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not (directory / "summary.csv").exists() or not manifest_path.exists():
        raise ConfigError(f"{directory} is not a suite directory (no summary.csv / manifest.json); run a suite first.")
    rows = read_rows(directory / "results.csv")
    summary = pd.read_csv(directory / "summary.csv", keep_default_na=False, na_values=["nan", "NaN"])
    for c in ("mean", "sd", "n", "ci95_low", "ci95_high"):  # sd/CI of a single seed are written as empty cells
        if c in summary:
            summary[c] = pd.to_numeric(summary[c], errors="coerce")
    return rows, summary, json.loads(manifest_path.read_text())


def headline_frame(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (variant, seq_len, test_noise) with mean/sd/n per metric at slice action_mean."""
    s = summary[(summary["slice_type"] == "all") & (summary["slice"] == "action_mean") & summary["metric"].isin(metrics)].copy()
    for c in ("seq_len", "test_noise"):
        s[c] = pd.to_numeric(s[c], errors="coerce")
    return s


def suite_tables(directory: Path) -> tuple[list[Table], str]:
    """Rich tables and the Markdown text of a suite report."""
    rows, summary, manifest = _load_suite_files(directory)
    suite = manifest.get("suite", "")
    metrics = HEADLINE_METRICS.get(suite, ["mpjpe", "p_mpjpe"])
    head = headline_frame(summary, metrics)
    variants = list(dict.fromkeys(r["variant"] for r in manifest["runs"]))
    tables, md = [], [f"# liftbench suite report: {suite} ({manifest.get('preset', '')})", "",
                      f"Directory: `{directory}`. Values: mean ± sd over seeds (n) of the action-group average "
                      "(unweighted mean over action groups, every test frame scored exactly once).", ""]
    paper = _paper_values(suite)
    conditions = head[["variant", "seq_len", "test_noise"]].drop_duplicates()
    conditions["order"] = conditions["variant"].map({v: i for i, v in enumerate(variants)})
    conditions = conditions.sort_values(["order", "seq_len", "test_noise"])
    ref = head[head["variant"] == "full"] if suite == "ablation" else None
    table = Table(title=f"{suite}: headline metrics (mm; {rows['dataset'].iloc[0] if len(rows) else ''})")
    cols = ["variant", "seq_len", "noise px"] + [METRIC_LABEL.get(m, m) for m in metrics]
    if ref is not None:
        cols += ["Δ P1 vs full"]
    if paper is not None:
        cols += ["paper H36M (Δ)" if suite == "ablation" else "paper (H36M)"]
    for c in cols:
        table.add_column(c, justify="left" if c == "variant" else "right")
    md += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, c in conditions.iterrows():
        sel = head[(head["variant"] == c["variant"]) & (head["seq_len"] == c["seq_len"]) & (head["test_noise"] == c["test_noise"])]
        cells = [c["variant"], f"{int(c['seq_len'])}", f"{c['test_noise']:g}"] + [_mean_sd(sel[sel["metric"] == m]) for m in metrics]
        if ref is not None:
            r = ref[(ref["metric"] == "mpjpe") & (ref["test_noise"] == c["test_noise"])]
            mine = sel[sel["metric"] == "mpjpe"]
            cells.append(f"{mine['mean'].iloc[0] - r['mean'].iloc[0]:+.1f}" if len(r) and len(mine) else "—")
        if paper is not None:
            cells.append(paper(c))
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    tables.append(table)
    if suite == "ablation":  # Table 4 is per action group too: P1 and P2, one row per variant
        clean = rows[(rows["status"].astype(str) == "ok")
                     & (pd.to_numeric(rows["test_noise"], errors="coerce") == pd.to_numeric(rows["test_noise"], errors="coerce").min())]
        for metric, title in (("mpjpe", "Protocol #1 (MPJPE, mm)"), ("p_mpjpe", "Protocol #2 (P-MPJPE, mm)")):
            wide = paper_table(clean, metric, title=f"{suite}: {title} per action group, mean over seeds", by=["variant"],
                               order=variants)
            tables.append(wide)
            md += ["", f"### {title} per action group (mean over seeds; Avg = unweighted mean over groups)", "",
                   *_table_markdown(wide)]
    if suite == "ablation" and paper is not None:
        table.caption = ("paper: Hossain & Little Table 4, computed with the evaluation bug that scored mostly the first "
                         "frames of each video; the corrected full model is 58.25 mm P1 (baselines/hossain2018_corrected.csv)")
        md += ["", f"Note: {table.caption}."]
    md += ["", "Paper values are published Human3.6M numbers (baselines/), shown for orientation only; "
           "they are not liftbench results and not comparable when the dataset differs.", ""]
    errors = rows[rows["status"].astype(str) == "error"]
    if len(errors):
        md += ["## Failed runs", ""] + [f"- {r.variant} seed {r.seed}: {r.error}" for r in errors.itertuples()] + [""]
    return tables, "\n".join(md)


def _paper_values(suite: str):
    """A function condition -> published value string, for suites with a paper table."""
    try:
        from liftbench.baselines import load_baselines
    except ImportError:
        return None
    try:
        if suite == "ablation":
            pub = load_baselines("hossain2018_table4")
            def lookup(c):
                sel = pub[pub["variant"] == c["variant"]]
                if not len(sel):
                    return "—"
                delta = pd.to_numeric(sel["delta"], errors="coerce").iloc[0]
                return f"{sel['value'].iloc[0]:.1f} P1" + (f" ({delta:+.1f})" if delta == delta and delta else "")
            return lookup
        if suite == "noise":
            pub = load_baselines("hossain2018_table3_noise")
            def lookup(c):
                method = "Martinez" if c["variant"] == "mlp" else "Hossain"
                sel = pub[pub["method_id"].astype(str).str.lower().str.startswith(method.lower())
                          & (pub["train_2d"].astype(str) == "gt") & pub["input_2d"].isin(["gt", "gt+noise"])
                          & (pd.to_numeric(pub["noise_sigma_px"], errors="coerce") == c["test_noise"])]
                return f"{sel['value'].iloc[0]:.1f} (P2)" if len(sel) else "—"
            return lookup
    except Exception:  # noqa: BLE001 - a missing/changed baseline file must not break a report
        return None
    return None


def suite_plots(directory: Path) -> list[Path]:
    """PNG plots: error vs sigma / sequence length with seed spread, ablation bars with deltas, training curves."""
    import json

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
    fig, ax = plt.subplots(figsize=(8, 4))
    root = Path(directory).parent / "runs"
    drawn = 0
    for run in manifest["runs"]:
        log = root / run["run_id"] / "metrics.jsonl"
        if log.exists():
            recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            if recs and "test_mpjpe" in recs[0]:
                ax.plot([r["epoch"] for r in recs], [r["test_mpjpe"] for r in recs], marker=".",
                        label=f"{run['variant']} s{run['seed']}" + (f" {run['axis_value']}" if run.get("axis_key") else ""))
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
    from liftbench.results import write_text_atomic

    tables, md = suite_tables(Path(directory))
    for t in tables:
        console.print(t)
    plots = suite_plots(Path(directory))
    md += "\n## Plots\n\n" + "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots) + "\n"
    path = Path(directory) / "report.md"
    write_text_atomic(path, md)
    return [path, *plots]
