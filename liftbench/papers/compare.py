"""Measured numbers beside published ones, a delta only like for like: ``liftbench compare`` (per action
group) and the paper column of suite reports (``suite_paper_lookup``, headline values).

Every measured configuration (model, variant, data, keypoints, noise, window, alignment) is mapped to
its setting (``paper_match.MeasuredSetting``); a published set is its match only when
``paper_match.setting_differences`` is empty. The measured values are taken with the averaging the
matched set used (frame- or video-weighted within an action), and the column says which. A set that
came from a known-buggy evaluation is flagged in its header and in a note naming the corrected number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from liftbench.errors import ConfigError, LiftbenchError
from liftbench.models import lifter_contract
from liftbench.papers import match as PM
from liftbench.papers.baselines import load_baselines
from liftbench.results import read_rows
from liftbench.suites import load_suite

#: what ``compare_with_paper`` reads from a results file
COMPARE_COLUMNS = ("model", "variant", "dataset", "keypoints", "test_noise", "metric", "slice_type", "slice", "value",
                   "status")
SET_KEYS = ["table", "method_id", "paper_label", "train_2d", "input_2d", "variant", "noise_sigma_px", "seq_len"]
METRIC_LABEL = {"mpjpe": "P1 MPJPE", "p_mpjpe": "P2 P-MPJPE"}


def _fmt(v: float) -> str:
    return "—" if v is None or v != v else f"{v:.1f}"


def tta_of_run(results: Path, model: str, run_ids: list[str]) -> str:
    """TTA of a measured configuration from its run's config.json (next to a run's results.csv, or in
    ``<out>/runs/<run_id>/`` for a suite's); 'unknown' when no config can be found."""

    candidates = [results.parent / "config.json"] + [results.parent.parent / "runs" / r / "config.json" for r in run_ids]
    for path in candidates:
        try:
            cfg = json.loads(path.read_text())
            params = {k: v for k, v in cfg["model"].items() if k != "name"}
            if cfg["model"].get("name", model) != model:
                continue
            return PM.tta_of(lifter_contract(model, **params).test_time_augmentation)
        except (OSError, ValueError, KeyError, TypeError, LiftbenchError):
            continue
    return "unknown"


def method_of(model: str) -> str:

    try:
        return lifter_contract(model).method
    except (LiftbenchError, TypeError, ValueError):
        return ""


def _set_label(r: pd.Series) -> str:
    sigma = float(r.get("noise_sigma_px") or 0)
    seq = int(float(r.get("seq_len") or 1))
    window = f", {seq} {r.get('alignment', '')}".rstrip() if seq > 1 else ""
    tta = ", flip TTA" if str(r.get("tta", "")) == "flip" else ""
    variant = "" if str(r["variant"]) in ("", "full") else f" {r['variant']}"
    bug = "\n⚠ buggy evaluation" if str(r.get("evaluation_bug", "")) == "true" else ""
    return (f"{r['method_id']}\n{r['table']}\n({r['input_2d']}{f' σ{sigma:g}' if sigma else ''}{window}{tta}){variant}"
            f"\n{r.get('within_action', '') or 'unknown'}-weighted{bug}")


def corrected_value(row: pd.Series, metric: str) -> float | None:

    key = str(row.get("corrected_by", "") or "")
    if not key:
        return None
    try:
        pub = load_baselines(key)
    except LiftbenchError:
        return None
    sel = pub[(pub["metric"] == metric) & (pub["slice"] == "action_mean")]
    return float(sel["value"].iloc[0]) if len(sel) else None


def compare_with_paper(results: str | Path, paper: str, metric: str = "mpjpe",
                       variant: str | None = None) -> tuple[Table, list[str]]:
    """liftbench per action group (mean over seeds, one column per configuration) beside the published
    sets of ``paper``; a Δ column only for a configuration whose setting matches a published set.

    Returns the table and notes (which setting differs, buggy published numbers, ...)."""

    if metric not in METRIC_LABEL:
        raise ConfigError(f"--metric must be mpjpe or p_mpjpe, got '{metric}'.")
    results = Path(results)
    ours = read_rows(results, required=COMPARE_COLUMNS)
    ours = ours[(ours["metric"] == metric) & ours["slice_type"].isin(["action", "all", "action_video"])
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
    ours = ours.copy()
    for col, default in (("train_noise", 0.0), ("seq_len", 1), ("alignment", "")):
        if col not in ours.columns:
            ours[col] = default
    for col in ("test_noise", "train_noise", "seq_len"):
        ours[col] = pd.to_numeric(ours[col], errors="coerce").fillna(0)
    keys = ["model", "variant", "dataset", "keypoints", "train_noise", "test_noise", "seq_len", "alignment"]
    ablations = frozenset(str(v) for v in load_baselines()["variant"].unique() if str(v) not in ("", "full"))
    configs = []
    for k, g in ours.groupby(keys, sort=False):
        cfg = dict(zip(keys, k))
        run_ids = sorted(set(g["run_id"].astype(str))) if "run_id" in g else []
        seq = int(cfg["seq_len"])
        setting = PM.MeasuredSetting(method_of(str(cfg["model"])), str(cfg["dataset"]), str(cfg["keypoints"]),
                                     float(cfg["train_noise"]), float(cfg["test_noise"]), seq,
                                     str(cfg["alignment"] or ("frame" if seq == 1 else "causal")),
                                     tta_of_run(results, str(cfg["model"]), run_ids), str(cfg["variant"]))
        configs.append((cfg, setting, g))
    sets = [(key, g.reset_index(drop=True)) for key, g in pub.groupby(SET_KEYS, sort=False, dropna=False)]
    shown = [i for i, (_, g) in enumerate(sets) if (g["slice_type"] == "action").any()] or list(range(len(sets)))
    notes: list[str] = []
    matches = []
    for cfg, setting, _ in configs:
        diffs = [(PM.setting_differences(setting, g.iloc[0], ablations), i) for i, (_, g) in enumerate(sets)]
        exact = [i for d, i in diffs if not d]
        if exact:
            matches.append(exact[0])
            if exact[0] not in shown:
                shown.append(exact[0])
            continue
        matches.append(None)
        closest = min(diffs, key=lambda item: len(item[0]))[0]
        notes.append(f"liftbench {cfg['model']}/{cfg['variant']} on {cfg['dataset']} {cfg['keypoints']}: no published "
                     f"{paper} set with the same setting, so no delta; the closest differs in {'; '.join(closest)}.")
        if setting.tta == "unknown":
            notes.append(f"liftbench {cfg['model']}/{cfg['variant']}: test-time augmentation unknown (no config.json "
                         f"beside {results.name} or in ../runs/<run_id>/); compare the run's own results.csv.")
    table = Table(title=f"{METRIC_LABEL[metric]} (mm): liftbench vs {paper} (published, origin: published)")
    table.add_column("action group", no_wrap=True)
    measured_values = []
    for (cfg, setting, g), m in zip(configs, matches):
        slice_type, headline, label = PM.measured_slices(sets[m][1].iloc[0]) if m is not None else PM.measured_slices(
            {"within_action": "frames"})
        per = g[g["slice_type"] == slice_type].groupby("slice")["value"].mean()  # mean over seeds
        head = g[(g["slice_type"] == "all") & (g["slice"] == headline)]["value"]
        values = {**per.to_dict(), "action_mean": float(head.mean()) if len(head) else np.nan}
        if m is not None and slice_type == "action_video" and per.empty:
            notes.append(f"liftbench {cfg['variant']}: no video-weighted rows; evaluate with --video-mean (suites always do).")
        measured_values.append(values)
        noise = f" σ{cfg['test_noise']:g}" if cfg["test_noise"] else ""
        table.add_column(f"liftbench\n{cfg['variant']}\n({cfg['keypoints']}{noise})\n{label.split(' (')[0]}",
                         justify="right", style="bold")
    pub_values = []
    for i in shown:
        r = sets[i][1].iloc[0]
        table.add_column(_set_label(r), justify="right")
        pub_values.append(sets[i][1].set_index("slice")["value"])
        flag = PM.bug_flag(r, corrected_value(r, metric))
        if flag:
            notes.append(f"{r['method_id']} {r['table']} '{r['paper_label']}' ({r['input_2d']}): {flag}.")
    for (cfg, _, _), m in zip(configs, matches):
        if m is not None:
            table.add_column(f"Δ {cfg['variant']}\nvs {sets[m][1].iloc[0]['method_id']} {sets[m][1].iloc[0]['table']}",
                             justify="right")
    slices = sorted({s for v in measured_values for s in v} | {s for v in pub_values for s in v.index})
    slices = [s for s in slices if s not in ("action_mean", "frame_mean", "video_mean")] + ["action_mean"]
    for s in slices:
        cells = [_fmt(v.get(s, np.nan)) for v in measured_values] + [_fmt(v.get(s, np.nan)) for v in pub_values]
        cells += [_fmt(v.get(s, np.nan) - sets[m][1].set_index("slice")["value"].get(s, np.nan))
                  for v, m in zip(measured_values, matches) if m is not None]
        table.add_row("Avg" if s == "action_mean" else s, *cells)
    table.caption = ("Avg = unweighted mean over action groups; liftbench values are means over seeds, weighted within "
                     "an action as the matched published set (frame-weighted when none matches)")
    return table, list(dict.fromkeys(notes))


def _number(value, default: float = 0.0) -> float:
    """A CSV cell as a float ('' or text -> default)."""
    v = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(v) if v == v else default


def suite_paper_lookup(suite: str, metrics: list[str], rows: pd.DataFrame, summary: pd.DataFrame,
                       directory: Path):
    """For the suite report: a function condition -> (cell, note) for suites with a published table (the
    suite's ``baseline``; ``metrics`` its headline metrics):
    the published headline of the same setting beside ours with the same averaging, flagged if buggy;
    otherwise '—' and a note saying which setting differs."""

    try:
        key = load_suite(suite).baseline
        pub = load_baselines(key) if key else None
    except LiftbenchError:
        return None
    if pub is None or pub.empty:
        return None
    pub = pub[(pub["slice"] == "action_mean") & pub["metric"].isin(metrics)]
    ablations = frozenset(str(v) for v in pub["variant"].unique() if str(v) not in ("", "full"))
    summ = summary.copy()
    for col in ("seq_len", "test_noise"):
        summ[col] = pd.to_numeric(summ[col], errors="coerce")
    ok = rows[rows["status"].astype(str) == "ok"]

    def lookup(c) -> tuple[str, str]:
        mine_rows = ok[(ok["variant"].astype(str) == c["variant"])
                       & (pd.to_numeric(ok["seq_len"], errors="coerce") == c["seq_len"])]
        if mine_rows.empty:
            return "—", ""
        r0 = mine_rows.iloc[0]
        model = str(r0["model"])
        setting = PM.MeasuredSetting(
            method_of(model), str(r0["dataset"]), str(r0["keypoints"]), _number(r0["train_noise"]),
            float(c["test_noise"]), int(c["seq_len"]),
            str(r0.get("alignment", "") or ("frame" if int(c["seq_len"]) == 1 else "causal")),
            tta_of_run(directory / "results.csv", model, sorted(set(mine_rows["run_id"].astype(str)))), str(c["variant"]))
        diffs = []
        for _, p in pub.iterrows():
            d = PM.setting_differences(setting, p, ablations)
            if d:
                diffs.append(d)
                continue
            _, headline, label = PM.measured_slices(p)
            sel = summ[(summ["variant"] == c["variant"]) & (summ["seq_len"] == c["seq_len"])
                       & (summ["test_noise"] == c["test_noise"]) & (summ["metric"] == p["metric"])
                       & (summ["slice"].astype(str) == headline)]
            mine = float(sel["mean"].iloc[0]) if len(sel) else float("nan")
            proto = "P1" if p["metric"] == "mpjpe" else "P2"
            paper_delta = _number(p.get("delta", ""), float("nan"))
            flag = PM.bug_flag(p, corrected_value(p, p["metric"]))
            cell = (f"{p['value']:.1f} {proto}" + (f" (paper Δ {paper_delta:+.1f})" if paper_delta == paper_delta and paper_delta else "")
                    + f"; ours {_fmt(mine)} {label.split(' (')[0]}, Δ {_fmt(mine - p['value'])}" + (" ⚠" if flag else ""))
            return cell, (f"{p['table']} {p['paper_label']}: {flag}" if flag else "")
        closest = min(diffs, key=len) if diffs else ["no published value"]
        return "— (setting differs)", f"{c['variant']}: no published value of the same setting ({'; '.join(closest)})"
    return lookup
