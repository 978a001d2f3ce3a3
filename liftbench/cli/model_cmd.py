"""`liftbench models | train | evaluate | baselines | compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from liftbench.cli._common import DataDirOpt, DataOpt, DeviceOpt, JsonOpt, KeypointsOpt, TensorBoardOpt, console
from liftbench.cli.app import app


def _short_citation(paper: str) -> str:
    """'Martinez, Hossain, ..., ICCV 2017 (code: ...)' -> 'Martinez et al., ICCV 2017' (the full text is in --json)."""
    import re

    authors = paper.split(",")[0].strip()
    venue = re.search(r"\b([A-Z]{3,5} \d{4})\b", paper)
    return f"{authors}{'' if '&' in authors else ' et al.'}" + (f", {venue.group(1)}" if venue else "")


@app.command("models", rich_help_panel="Models")
def models(as_json: JsonOpt = False) -> None:
    """Registered lifters: parameters, input window, ablation toggles and their paper defaults."""
    from liftbench.models.catalog import describe_lifters

    rows = describe_lifters()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="Lifters")
    for col in ("name", "aliases", "parameters", "window", "toggles (defaults)", "paper"):
        table.add_column(col, no_wrap=col != "paper", justify="right" if col in ("parameters", "window") else "left")
    for r in rows:
        toggles = "\n".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in r["toggles"].items())
        table.add_row(r["name"], ", ".join(r["aliases"]), f"{r['parameters']:,}", str(r["input_window"]), toggles,
                      _short_citation(r["paper"]))
    console.print(table)


@app.command("train", rich_help_panel="Models")
def train(
    model: Annotated[str, typer.Argument(help="Lifter name or alias (see `liftbench models`).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML experiment file.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override any key: --set hidden_size=256 (repeatable).")] = None,
    data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="Training epochs (paper: MLP 200, seq2seq 100).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of initialisation, data order and dropout.")] = None,
    subset: Annotated[float | None, typer.Option(
        "--subset", help="Keep this fraction of every training sequence (quick runs); the test split stays whole "
                         "(data.test_subset trims it).")] = None,
    device: DeviceOpt = "auto",
    out: Annotated[Path, typer.Option(
        "--out", help="Results root (as for the suites): the run directory is OUT/runs/<model>-<config hash>/, "
        "so a suite with the same --out reuses it.")] = Path("results"),
    resume: Annotated[bool, typer.Option(
        "--resume", "-r", help="Continue an interrupted run from its checkpoint.")] = False,
    tensorboard: TensorBoardOpt = False,
) -> None:
    """Train one lifter; writes OUT/runs/<model>-<config hash>/ (config, checkpoint, metrics.jsonl).

    A finished run is found again by its config hash and reused only if the data behind it are unchanged
    (same dataset fingerprint); otherwise its files are moved to <run dir>.stale-<old fingerprint>/ and it
    retrains."""
    from liftbench._files import check_output_dir
    from liftbench.cli.progress import make_progress, train_progress
    from liftbench.config import parse_assignments, resolve_config
    from liftbench.pipeline import train_run
    from liftbench.tensorboard_log import require_tensorboard

    options = {"data.name": data, "data.keypoints": keypoints, "train.epochs": epochs, "train.seed": seed,
               "data.subset": subset}
    cfg = resolve_config(model, config, options=options, overrides=parse_assignments(set_))
    check_output_dir(out, "--out")
    if tensorboard:
        require_tensorboard()  # a missing extra is one line before any work
    console.print(f"run {cfg.run_id}: {cfg.model} {cfg.toggles()} on {cfg.data.name}")
    with make_progress() as progress:
        outcome = train_run(cfg, out_dir=out / "runs", data_dir=data_dir, device=device, resume=resume,
                            progress=train_progress(progress, cfg.run_id), claim=True, tensorboard=tensorboard)
    if outcome.stale_dir:
        console.print(f"note: the data changed since this run was trained (other dataset fingerprint); the old run "
                      f"was moved to {outcome.stale_dir} and the run retrained.", soft_wrap=True)
    if outcome.input_scores:
        colour = "yellow" if "stood in" in outcome.input_scores else "dim"
        console.print(f"[{colour}]score channel: {outcome.input_scores}[/]", soft_wrap=True)
    if outcome.skipped:
        console.print(f"Run already complete: {outcome.run_dir} (nothing to do).")
    else:
        console.print(f"[green]done[/] {outcome.state.epoch} epoch(s) -> {outcome.run_dir}")
    if tensorboard:
        console.print(f"TensorBoard: tensorboard --logdir {outcome.run_dir / 'tensorboard'}")
    console.print(f"next: liftbench evaluate {outcome.run_dir}")


@app.command("evaluate", rich_help_panel="Evaluation")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `liftbench train`.")],
    data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
    noise_sigma: Annotated[float, typer.Option(
        "--noise-sigma", help="Gaussian noise (px) added to the test 2D input.")] = 0.0,
    noise_seed: Annotated[int, typer.Option("--noise-seed", help="Seed of the test noise (same for every model).")] = 0,
    save_predictions: Annotated[bool, typer.Option("--save-predictions", help="Also write predictions.npz.")] = False,
    video_mean: Annotated[bool, typer.Option(
        "--video-mean", help="Also report Hossain's video-weighted average.")] = False,
    per_joint: Annotated[bool, typer.Option("--per-joint", help="Print the per-joint table too.")] = False,
    results_dir: Annotated[Path | None, typer.Option(
        "--results-dir", help="Directory for results.csv, protocol.json (and predictions.npz); "
        "default: the run directory.")] = None,
    convention: Annotated[list[str] | None, typer.Option(
        "--convention", help="Also score as a codebase's own evaluation does (repeatable): "
        "videopose3d, motionbert, mixste (liftbench: every frame once, always written).")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Score every test frame exactly once: P1/P2 tables, results.csv, protocol.json (+ predictions.npz)."""
    from liftbench.pipeline import evaluate_run
    from liftbench.report.render import conventions_table, joint_table, paper_table

    res = evaluate_run(run_dir, data=data, data_dir=data_dir, keypoints=keypoints, noise_sigma=noise_sigma,
                       noise_seed=noise_seed, save_predictions=save_predictions, out=results_dir, device=device,
                       video_mean=video_mean, conventions=tuple(convention or ()))
    label = f"{res.card['model']} {res.card['run_id']}"
    own = res.rows[res.rows["convention"].astype(str) == "liftbench"]
    for metric, title in (("mpjpe", "Protocol #1 (MPJPE, mm)"), ("p_mpjpe", "Protocol #2 (P-MPJPE, mm)")):
        console.print(paper_table(own, metric, title=f"{title} — {res.card['dataset']['name']}, "
                                  f"noise {noise_sigma:g} px", row_label=label))
    if len(res.card["conventions"]) > 1:
        console.print(conventions_table(res.rows, res.card["conventions"]))
    if per_joint:
        console.print(joint_table(own))
    if res.card.get("input_scores"):
        colour = "yellow" if "stood in" in res.card["input_scores"] else "dim"
        console.print(f"[{colour}]score channel: {res.card['input_scores']}[/]", soft_wrap=True)
    frames = res.card["frames"]
    console.print(f"frames scored {frames['test_scored']:,} of {frames['test_expected']:,} "
                  f"(every frame exactly once: {frames['every_frame_exactly_once']}); "
                  "Avg = unweighted mean over action groups")
    console.print(f"wrote {res.out_dir / 'results.csv'}, {res.out_dir / 'protocol.json'}"
                  + (f", {res.out_dir / 'predictions.npz'}" if save_predictions else ""))


@app.command("baselines", rich_help_panel="Evaluation")
def baselines(as_json: JsonOpt = False) -> None:
    """Published reference numbers shipped in baselines/ (never liftbench results)."""
    from liftbench.papers.baselines import list_baselines

    rows = list_baselines()
    if as_json:
        console.print_json(json.dumps([dict(r) if isinstance(r, dict) else list(r) for r in rows]))
        return
    table = Table(title="Published baselines (origin: published)")
    for col in ("key", "description", "rows", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        r = r if isinstance(r, dict) else dict(zip(("key", "description", "n_rows", "source"), r))
        table.add_row(str(r["key"]), str(r["description"]), str(r["n_rows"]), str(r["source"]))
    console.print(table)


def _check_paper(value: str) -> str:
    """--paper must name a shipped baseline (checked when the command line is parsed)."""
    from liftbench.papers.baselines import load_baselines

    load_baselines(value)  # UnknownNameError listing the keys
    return value


def _check_metric(value: str) -> str:
    """--metric: a name (or alias) of the metric registry that the published baselines hold."""
    from liftbench.errors import UnknownNameError, unknown_name_message
    from liftbench.metrics import METRICS
    from liftbench.papers.baselines import load_baselines

    published = sorted(set(load_baselines()["metric"].astype(str)) & set(METRICS.names()))
    name = METRICS.canonical(value) if value in METRICS else value
    if name not in published:
        raise UnknownNameError("--metric: " + unknown_name_message("metric with published baselines", value, published))
    return name


@app.command("compare", rich_help_panel="Evaluation")
def compare(
    results: Annotated[Path, typer.Argument(help="A results.csv (run or suite).")],
    paper: Annotated[str, typer.Option(
        "--paper", callback=_check_paper, help="Baseline key from `liftbench baselines`, e.g. hossain2018, "
        "hossain2018_corrected, martinez2017, pavllo2019.")] = "hossain2018_corrected",
    metric: Annotated[str, typer.Option(
        "--metric", callback=_check_metric,
        help="A registered metric the baselines publish: mpjpe (P1) or p_mpjpe (P2).")] = "mpjpe",
    variant: Annotated[str | None, typer.Option(
        "--variant", help="Only this liftbench variant (e.g. full, mlp).")] = None,
) -> None:
    """liftbench vs a paper, per action group; a delta only where the setting matches (2D source, data, noise,
    window, alignment, TTA, variant), with the published averaging; buggy published numbers are flagged."""
    from liftbench.report.render import compare_with_paper

    table, warnings = compare_with_paper(results, paper, metric, variant)
    for w in warnings:
        console.print(f"[yellow]note:[/] {w}", soft_wrap=True)
    console.print(table)
