"""Measured numbers beside published ones, a delta only like for like: ``liftbench compare`` (per action
group) and the paper column of suite reports (``suite_paper_lookup``, headline values).

Every measured configuration (model, variant, data, the keypoints it was trained on and scored on, noise,
window, alignment) is mapped to its setting (``match.MeasuredSetting``); a published set is its match
only when ``match.setting_differences`` is empty. The measured values are taken the way the matched set
was computed (frame- or video-weighted within an action; rigid or similarity P2), and the column says
which. A set that came from a known-buggy evaluation is flagged in its header and in a note naming the
corrected number; a configuration that is not the paper's data or recipe gets its differences as a note
(``config.recipe_differences``, as ``report`` says them), and one scored on a test subset no delta.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from liftbench.config import ExperimentConfig, config_from_dict
from liftbench.errors import ConfigError, LiftbenchError
from liftbench.models import lifter_contract
from liftbench.papers import match as PM
from liftbench.papers.baselines import P2_KIND_METRIC, load_baselines
from liftbench.results import fill_keypoint_columns, read_rows
from liftbench.suites import load_suite

#: what ``compare_with_paper`` reads from a results file
COMPARE_COLUMNS = ("model", "variant", "dataset", "keypoints", "test_noise", "metric", "slice_type", "slice", "value",
                   "status")
SET_KEYS = ["table", "method_id", "paper_label", "train_2d", "input_2d", "variant", "noise_sigma_px", "seq_len",
            "p2_kind", "convention"]
METRIC_LABEL = {"mpjpe": "P1 MPJPE", "p_mpjpe": "P2 P-MPJPE"}


def _fmt(v: float) -> str:
    return "—" if v is None or v != v else f"{v:.1f}"


def run_config(results: Path, model: str, run_ids: list[str], complete: bool = False) -> ExperimentConfig | None:
    """The resolved config of a measured configuration: ``config.json`` next to a run's results.csv, or in
    ``<out>/runs/<run_id>/`` for a suite's; None when none can be read (or it names another lifter, or, with
    ``complete``, lacks its train or data section: defaults would then stand in for what the run used)."""
    runs = results.parent.parent / "runs"
    candidates = [results.parent / "config.json"] + [runs / r / "config.json" for r in run_ids]
    for path in candidates:
        try:
            raw = json.loads(path.read_text())
            if raw["model"].get("name", model) != model or (complete and not {"train", "data"} <= set(raw)):
                continue
            return config_from_dict(raw, where=str(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, LiftbenchError):
            continue
    return None


def tta_of_run(results: Path, model: str, run_ids: list[str]) -> str:
    """TTA of a measured configuration from its run's config (``run_config``); 'unknown' without one."""
    cfg = run_config(results, model, run_ids)
    if cfg is None:
        return "unknown"
    try:
        return PM.tta_of(lifter_contract(cfg.model, **cfg.model_params).test_time_augmentation)
    except (LiftbenchError, TypeError, ValueError):
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
    kind = f"\n{r['p2_kind']} P2" if str(r.get("p2_kind", "")) in P2_KIND_METRIC else ""
    bug = "\n⚠ buggy evaluation" if str(r.get("evaluation_bug", "")) == "true" else ""
    convention = f"\n{r['convention']} convention" if str(r.get("convention", "") or "") else ""
    return (f"{r['method_id']}\n{r['table']}\n({r['input_2d']}{f' σ{sigma:g}' if sigma else ''}{window}{tta}){variant}"
            f"\n{r.get('within_action', '') or 'unknown'}-weighted{kind}{convention}{bug}")


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


def partial_of_runs(ours: pd.DataFrame, group: pd.DataFrame, run_ids: list[str]) -> str:
    """Whether a configuration scored a test subset, from all rows of its runs: the rows of a convention
    with a smaller frame set by design (MotionBERT's) cannot tell, the every-frame rows beside them can."""
    rows = ours[ours["run_id"].astype(str).isin(run_ids)] if run_ids and "run_id" in ours.columns else group
    return PM.partial_test_of(rows)


def _measured_columns(ours: pd.DataFrame) -> pd.DataFrame:
    ours = fill_keypoint_columns(ours)
    for col, default in (("train_noise", 0.0), ("seq_len", 1), ("alignment", ""),
                         ("convention", PM.DEFAULT_CONVENTION)):
        if col not in ours.columns:
            ours[col] = default
    for col in ("test_noise", "train_noise", "seq_len"):
        ours[col] = pd.to_numeric(ours[col], errors="coerce").fillna(0)
    ours["convention"] = ours["convention"].astype(str).replace("", PM.DEFAULT_CONVENTION)
    # a convention that scores every frame once like liftbench's (videopose3d) repeats liftbench's rows: one column
    frame_sets = {c: PM.frame_set_of(c) for c in ours["convention"].unique()}  # per name, not per row
    every_frame = ours["convention"].map(frame_sets).eq(PM.DEFAULT_CONVENTION)
    return ours[~(every_frame & ours["convention"].ne(PM.DEFAULT_CONVENTION))]


def compare_with_paper(results: str | Path, paper: str, metric: str = "mpjpe",
                       variant: str | None = None) -> tuple[Table, list[str]]:
    """liftbench per action group (mean over seeds, one column per configuration) beside the published
    sets of ``paper``; a Δ column only for a configuration whose setting matches a published set.

    Returns the table and notes (which setting differs, buggy published numbers, recipe differences ...)."""

    if metric not in METRIC_LABEL:
        raise ConfigError(f"--metric must be mpjpe or p_mpjpe, got '{metric}'.")
    results = Path(results)
    rows = read_rows(results, required=COMPARE_COLUMNS)
    kinds = [metric] + ([P2_KIND_METRIC["rigid"]] if metric == "p_mpjpe" else [])  # both P2 kinds: chosen per match
    rows = rows[rows["metric"].isin(kinds) & rows["slice_type"].isin(["action", "all", "action_video"])
                & (rows["status"].astype(str) == "ok")]
    if variant:
        rows = rows[rows["variant"].astype(str) == variant]
    if not (rows["metric"] == metric).any():
        raise ConfigError(f"{results} has no '{metric}' rows{f' for variant {variant}' if variant else ''} to compare; "
                          "run liftbench evaluate (or a suite) first, or check --variant.")
    pub = load_baselines(paper)
    for col in ("p2_kind", "convention"):  # load_baselines leaves '' (never NaN) where a file lacks the column
        if col not in pub.columns:
            pub[col] = ""
    pub = pub[pub["metric"] == metric]
    if pub.empty:
        raise ConfigError(f"Baseline '{paper}' has no '{metric}' values; try --metric "
                          f"{'p_mpjpe' if metric == 'mpjpe' else 'mpjpe'}.")
    ours = _measured_columns(rows.copy())
    keys = ["model", "variant", "dataset", "train_keypoints", "keypoints", "train_noise", "test_noise", "seq_len",
            "alignment", "convention"]
    ablations = frozenset(str(v) for v in load_baselines()["variant"].unique() if str(v) not in ("", "full"))
    notes: list[str] = []
    configs = []
    for k, g in ours.groupby(keys, sort=False):
        cfg = dict(zip(keys, k))
        run_ids = sorted(set(g["run_id"].astype(str))) if "run_id" in g else []
        seq = int(cfg["seq_len"])
        run_cfg = run_config(results, str(cfg["model"]), run_ids, complete=True)
        setting = PM.MeasuredSetting(method_of(str(cfg["model"])), str(cfg["dataset"]), str(cfg["keypoints"]),
                                     float(cfg["train_noise"]), float(cfg["test_noise"]), seq,
                                     str(cfg["alignment"] or ("frame" if seq == 1 else "causal")),
                                     tta_of_run(results, str(cfg["model"]), run_ids), str(cfg["variant"]),
                                     str(cfg["train_keypoints"]), partial_of_runs(ours, g, run_ids),
                                     str(cfg["convention"]))
        configs.append((cfg, setting, g))
        banner = PM.run_banner(PM.recipe_differences(run_cfg)) if run_cfg is not None else None
        if banner:
            notes.append(f"liftbench {cfg['model']}/{cfg['variant']}: {banner}")
    sets = [(key, g.reset_index(drop=True)) for key, g in pub.groupby(SET_KEYS, sort=False, dropna=False)]
    shown = [i for i, (_, g) in enumerate(sets) if (g["slice_type"] == "action").any()] or list(range(len(sets)))
    matches = []
    for cfg, setting, _ in configs:
        diffs = [(PM.setting_differences(setting, g.iloc[0], ablations), i) for i, (_, g) in enumerate(sets)]
        exact = [i for d, i in diffs if not d]
        if exact:  # the most detailed matching set (per action, or headline and frame mean); ties: file order
            best = max(exact, key=lambda i: len(sets[i][1]))
            matches.append(best)
            if best not in shown:
                shown.append(best)
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
    for (cfg, _, g), m in zip(configs, matches):
        published = sets[m][1].iloc[0] if m is not None else {"within_action": "frames", "metric": metric}
        slice_type, headline, label = PM.measured_slices(published)
        measured, kind = PM.measured_metric(published)
        g = g[g["metric"] == measured]
        per = g[g["slice_type"] == slice_type].groupby("slice")["value"].mean()  # mean over seeds
        head = g[(g["slice_type"] == "all") & (g["slice"] == headline)]["value"]
        frames = g[(g["slice_type"] == "all") & (g["slice"] == "frame_mean")]["value"]
        values = {**per.to_dict(), "action_mean": float(head.mean()) if len(head) else np.nan,
                  "frame_mean": float(frames.mean()) if len(frames) else np.nan}
        if m is not None and (per.empty or head.empty):
            what = "video-weighted" if slice_type == "action_video" else measured
            notes.append(f"liftbench {cfg['variant']}: no {what} rows; re-evaluate the run with this liftbench "
                         "(suites compute both averagings and both P2 kinds).")
        measured_values.append(values)
        noise = f" σ{cfg['test_noise']:g}" if cfg["test_noise"] else ""
        trained = "" if cfg["train_keypoints"] == cfg["keypoints"] else f"trained {cfg['train_keypoints']}, scored "
        convention = "" if cfg["convention"] == PM.DEFAULT_CONVENTION else f"\n{cfg['convention']} convention"
        table.add_column(f"liftbench\n{cfg['variant']}\n({trained}{cfg['keypoints']}{noise})\n{label.split(' (')[0]}"
                         + (f"\n{kind.split(' (')[0]}" if kind else "") + convention, justify="right", style="bold")
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
    frame_mean_published = any("frame_mean" in v.index for v in pub_values)
    slices = ([s for s in slices if s not in ("action_mean", "frame_mean", "video_mean")] + ["action_mean"]
              + (["frame_mean"] if frame_mean_published else []))
    for s in slices:
        cells = [_fmt(v.get(s, np.nan)) for v in measured_values] + [PM.fmt_published(v.get(s, np.nan))
                                                                     for v in pub_values]
        cells += [_fmt(v.get(s, np.nan) - sets[m][1].set_index("slice")["value"].get(s, np.nan))
                  for v, m in zip(measured_values, matches) if m is not None]
        table.add_row({"action_mean": "Avg", "frame_mean": "Avg over frames"}.get(s, s), *cells)
    table.caption = ("Avg = unweighted mean over action groups (Avg over frames: over every counted frame); liftbench "
                     "values are means over seeds, weighted within "
                     "an action and P2-aligned as the matched published set (frame-weighted, similarity P2 when none "
                     "matches); published values as printed")
    return table, list(dict.fromkeys(notes))


def _number(value, default: float = 0.0) -> float:
    """A CSV cell as a float ('' or text -> default)."""
    v = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return float(v) if v == v else default


def suite_paper_lookup(suite: str, metrics: list[str], rows: pd.DataFrame, summary: pd.DataFrame,
                       directory: Path):
    """For the suite report: a function condition -> (cell, note) for suites with a published table (the
    suite's ``baseline``; ``metrics`` its headline metrics):
    the published headline of the same setting beside ours with the same averaging and P2 kind, flagged if
    buggy; otherwise '—' and a note saying which setting differs."""

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
    ok = fill_keypoint_columns(rows[rows["status"].astype(str) == "ok"])

    def lookup(c) -> tuple[str, str]:
        mine_rows = ok[(ok["variant"].astype(str) == c["variant"])
                       & (pd.to_numeric(ok["seq_len"], errors="coerce") == c["seq_len"])]
        if mine_rows.empty:
            return "—", ""
        r0 = mine_rows.iloc[0]
        model = str(r0["model"])
        seq = int(c["seq_len"])
        setting = PM.MeasuredSetting(
            method_of(model), str(r0["dataset"]), str(r0["keypoints"]), _number(r0["train_noise"]),
            float(c["test_noise"]), seq, str(r0.get("alignment", "") or ("frame" if seq == 1 else "causal")),
            tta_of_run(directory / "results.csv", model, sorted(set(mine_rows["run_id"].astype(str)))),
            str(c["variant"]), str(r0["train_keypoints"]), PM.partial_test_of(mine_rows))
        diffs = []
        for _, p in pub.iterrows():
            d = PM.setting_differences(setting, p, ablations)
            if d:
                diffs.append(d)
                continue
            _, headline, label = PM.measured_slices(p)
            measured, kind = PM.measured_metric(p)
            sel = summ[(summ["variant"] == c["variant"]) & (summ["seq_len"] == c["seq_len"])
                       & (summ["test_noise"] == c["test_noise"]) & (summ["metric"] == measured)
                       & (summ["slice"].astype(str) == headline)]
            mine = float(sel["mean"].iloc[0]) if len(sel) else float("nan")
            proto = "P1" if p["metric"] == "mpjpe" else f"P2{' ' + p['p2_kind'] if kind else ''}"
            paper_delta = _number(p.get("delta", ""), float("nan"))
            flag = PM.bug_flag(p, corrected_value(p, p["metric"]))
            printed = f" (paper Δ {paper_delta:+.1f})" if paper_delta == paper_delta and paper_delta else ""
            cell = (f"{PM.fmt_published(p['value'])} {proto}{printed}; ours {_fmt(mine)} {label.split(' (')[0]}, "
                    f"Δ {_fmt(mine - p['value'])}" + (" ⚠" if flag else ""))
            return cell, (f"{p['table']} {p['paper_label']}: {flag}" if flag else "")
        closest = min(diffs, key=len) if diffs else ["no published value"]
        return "— (setting differs)", f"{c['variant']}: no published value of the same setting ({'; '.join(closest)})"
    return lookup
