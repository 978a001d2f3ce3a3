"""`liftbench run | noise | seqlen | jitter | status | report`: benchmark suites."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from liftbench.cli import app
from liftbench.cli._common import DataDirOpt, DataOpt, DeviceOpt, KeypointsOpt, console

PresetOpt = Annotated[str | None, typer.Option("--preset", help="smoke (2-core CPU, minutes) or paper (paper hyper-parameters, GPU).", show_default="the suite file's default_preset: smoke (reference: ci)", rich_help_panel="Suite")]
SeedsOpt = Annotated[int, typer.Option("--seeds", help="Run every configuration with N seeds (0..N-1).", rich_help_panel="Suite")]
OutOpt = Annotated[Path, typer.Option("--out", help="Results root: runs in OUT/runs/<run_id>/ (as train --out), suite tables in OUT/<suite>-<preset>-<data>/.", rich_help_panel="Suite")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a key in every run, e.g. --set train.epochs=2.", rich_help_panel="Suite")]
# The choices equal liftbench.executors.EXECUTORS (a test keeps them equal; the CLI does not import executors early).
ExecOpt = Annotated[Literal["local", "ray"], typer.Option("--executor", help="local (this machine; --workers, --devices) or ray (pip install 'liftbench\\[ray]'; --ray-address, --cpus-per-trial, --gpus-per-trial).", rich_help_panel="Scale-out")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="local executor: trials in parallel worker processes.", rich_help_panel="Scale-out")]
DevicesOpt = Annotated[str | None, typer.Option("--devices", help="local workers: devices round-robin, e.g. cuda:0,cuda:1.", rich_help_panel="Scale-out")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", help="Join a Ray cluster: auto or ray://host:port (default: start a local Ray).", rich_help_panel="Scale-out")]
GpusPerTrialOpt = Annotated[float | None, typer.Option("--gpus-per-trial", help="--executor ray only (an error with local): GPU share per trial (0.25 packs four per GPU).", show_default="0", rich_help_panel="Scale-out")]
CpusPerTrialOpt = Annotated[float | None, typer.Option("--cpus-per-trial", help="--executor ray only (an error with local): CPUs (and torch threads) per trial.", show_default="1", rich_help_panel="Scale-out")]
PackOpt = Annotated[int, typer.Option("--pack", help="Train up to K runs of the same shapes (seeds, toggle variants) as one stacked computation; same numbers as one by one. Configurations that measured slower packed on this device (the MLP at width > 512 on CPU) train one by one. In-process only.", rich_help_panel="Scale-out")]


def _execute(suite_name: str, *, preset, data, data_dir, keypoints, seeds, device, out, set_, test_noise=None,
             axis_values=None, train_noise=None, executor="local", workers=1, extra_overrides=None,
             devices=None, ray_address=None, gpus_per_trial=None, cpus_per_trial=None, pack=1) -> None:
    from rich.markup import escape

    from liftbench.cli.progress import RichTrainProgress, make_progress
    from liftbench.config import parse_assignments
    from liftbench.report import render_suite
    from liftbench.runner import run_suite, suite_dir
    from liftbench.suites import expand, load_suite

    check_executor_options(executor, ray_address=ray_address, gpus_per_trial=gpus_per_trial,
                           cpus_per_trial=cpus_per_trial)
    suite = load_suite(suite_name)
    overrides = {**(extra_overrides or {}), **parse_assignments(set_)}
    if data:
        overrides["data.name"] = data
    if keypoints:
        overrides["data.keypoints"] = keypoints
    if train_noise is not None:
        overrides["data.train_noise"] = train_noise
    specs = expand(suite, preset, seeds=seeds, overrides=overrides, test_noise=test_noise, axis_values=axis_values)
    preset = preset or suite.default_preset
    from liftbench.pipeline import check_output_dir

    check_output_dir(out, "--out")  # an existing file or a read-only place: one line before any work
    directory = suite_dir(out, suite.name, preset, specs[0].config.data.name)
    console.print(f"[bold]{suite.name}[/] v{suite.version} preset={preset}: {len(specs)} run(s) x "
                  f"{len(specs[0].test_noise)} test condition(s) -> {directory}")
    from liftbench.paper_match import suite_banner

    banner = suite_banner(suite.name, preset, specs[0].config.data.name)  # the library decides, the CLI renders
    if banner:
        console.print(f"[bold yellow]{banner}[/]", soft_wrap=True)
    progress = make_progress()
    overall = progress.add_task(f"suite {suite.name}", total=len(specs), info="")
    trial_bar = RichTrainProgress(progress)

    def on_start(i, spec):
        trial_bar.label = f"{spec.variant} s{spec.seed}" + (f" {spec.axis_key.split('.')[-1]}={spec.axis_value}" if spec.axis_key else "")
        return trial_bar

    def on_counts(c):  # trials in other processes: one overall bar with done / running / failed / pending
        waiting = f" · waiting for {', '.join(c.waiting_for)}" if c.waiting_for else ""
        if in_process:  # this process's own bars say the rest; only runs claimed elsewhere are news
            if waiting:
                progress.update(overall, info=waiting[3:])
            return
        progress.update(overall, completed=c.done + c.failed,
                        info=f"done {c.done} · running {c.running} · failed {c.failed} · pending {c.pending}{waiting}")

    from liftbench.errors import ConfigError

    in_process = executor == "local" and workers == 1
    if pack < 1:
        raise ConfigError(f"--pack must be >= 1 (1 = no packing), got {pack}.")
    if pack > 1 and not in_process:
        raise ConfigError("--pack trains in this process; drop --executor ray / --workers, or drop --pack.")
    exec_obj = _make_executor(executor, workers=workers, devices=devices, ray_address=ray_address,
                              gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial,
                              on_progress=on_counts, on_trial_start=on_start)

    def on_end(i, result):
        state = "error: " + escape(result.error) if result.error else ("trained" if result.trained else "already trained")
        if in_process:
            trial_bar.finish()
            progress.update(overall, advance=1, info=f"last: {result.spec.variant} ({state})")
        else:
            progress.console.print(f"  {result.spec.variant} s{result.spec.seed}: {state}", soft_wrap=True)

    with progress:
        rows, summary, results = run_suite(specs, out, directory, data_dir=data_dir, device=device,
                                           info={"suite": suite.name, "version": suite.version, "preset": preset,
                                                 "executor": executor},
                                           on_trial_end=on_end, executor=exec_obj, pack=pack)
    trained = sum(r.trained for r in results)
    failed = [r for r in results if r.error]
    render_suite(directory, console)
    console.print(f"{len(results)} run(s): {trained} trained now, {len(results) - trained - len(failed)} reused, "
                  f"{len(failed)} failed. Files: {directory}/results.csv, summary.csv, report.md, plots/")
    if failed:
        for r in failed:
            console.print(f"[red]failed[/] {r.spec.variant} seed {r.spec.seed}: {escape(r.error)}", soft_wrap=True)
        raise typer.Exit(1)


def check_executor_options(executor: str, *, ray_address: str | None, gpus_per_trial: float | None,
                           cpus_per_trial: float | None) -> None:
    """Options of the other executor are errors, never silently dropped; Ray's shares must be finite."""
    from liftbench.errors import ConfigError

    for option, value, positive in (("--cpus-per-trial", cpus_per_trial, True), ("--gpus-per-trial", gpus_per_trial, False)):
        if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
            raise ConfigError(f"{option} must be a finite number {'> 0' if positive else '>= 0'}, got {value}.")
    if executor == "local":
        ray_only = [o for o, v in (("--ray-address", ray_address), ("--gpus-per-trial", gpus_per_trial),
                                   ("--cpus-per-trial", cpus_per_trial)) if v is not None]
        if ray_only:
            raise ConfigError(f"{' / '.join(ray_only)} {'applies' if len(ray_only) == 1 else 'apply'} to --executor "
                              "ray only; the local executor runs each trial with OMP_NUM_THREADS threads (per worker: "
                              "CPUs / --workers): drop the option or add --executor ray.")


def _make_executor(executor: str, *, workers: int, devices: str | None, ray_address: str | None,
                   gpus_per_trial: float, cpus_per_trial: float, on_progress, on_trial_start):
    """The executor behind ``--executor``; local-only and ray-only options are rejected on the other."""
    from liftbench.errors import ConfigError
    from liftbench.executors import get_executor

    device_list = [d.strip() for d in (devices or "").split(",") if d.strip()]
    check_executor_options(executor, ray_address=ray_address, gpus_per_trial=gpus_per_trial,
                           cpus_per_trial=cpus_per_trial)
    if executor == "local":
        if device_list and workers < 2:
            raise ConfigError("--devices needs --workers N (N >= 2); for one process use --device.")
        return get_executor("local", workers=workers, devices=device_list, on_progress=on_progress,
                            on_trial_start=on_trial_start)
    exec_obj = get_executor(executor, workers=workers, devices=device_list, on_progress=on_progress,
                            address=ray_address, gpus_per_trial=gpus_per_trial or 0.0,
                            cpus_per_trial=1.0 if cpus_per_trial is None else cpus_per_trial)
    exec_obj.start()  # join or start Ray before any bar is drawn, so a bad --ray-address is one clean line
    return exec_obj


@app.command("run", rich_help_panel="Suites")
def run(suite: Annotated[str | None, typer.Argument(help="Suite name (see --list) or a suite TOML path.")] = None,
        list_: Annotated[bool, typer.Option("--list", help="List the suites and exit.")] = False,
        preset: PresetOpt = None, data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
        seeds: SeedsOpt = 1, device: DeviceOpt = "auto", out: OutOpt = Path("results"), set_: SetOpt = None,
        executor: ExecOpt = "local", workers: WorkersOpt = 1, devices: DevicesOpt = None,
        ray_address: RayAddressOpt = None, gpus_per_trial: GpusPerTrialOpt = None, cpus_per_trial: CpusPerTrialOpt = None, pack: PackOpt = 1) -> None:
    """Run a benchmark suite (ablation, noise, seqlen, jitter); finished runs are reused, interrupted ones resumed.

    `run noise`, `run seqlen` and `run jitter` are the same as the `noise`, `seqlen` and `jitter` commands with
    the suite file's own sigmas / lengths (those commands add --sigma, --train-noise, --lengths)."""
    from liftbench.suites import load_suite, suite_files

    if list_ or suite is None:
        table = Table(title="Suites (configs/suites)")
        for col in ("name", "version", "presets", "description"):
            table.add_column(col, overflow="fold")
        for name in suite_files():
            s = load_suite(name)
            table.add_row(s.name, str(s.version), ", ".join(s.presets), s.description)
        console.print(table)
        return
    _execute(suite, preset=preset, data=data, data_dir=data_dir, keypoints=keypoints, seeds=seeds, device=device,
             out=out, set_=set_, executor=executor, workers=workers, devices=devices, ray_address=ray_address,
             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, pack=pack)


@app.command("noise", rich_help_panel="Suites")
def noise(sigma: Annotated[str, typer.Option("--sigma", help="Test noise in px: a..b (with --step), 0,5,10 or one value.")] = "5..20",
          step: Annotated[float, typer.Option("--step", help="Step of an a..b range.")] = 5.0,
          train_noise: Annotated[float | None, typer.Option("--train-noise", help="Also train on noisy 2D (sigma px).")] = None,
          preset: PresetOpt = None, data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
          seeds: SeedsOpt = 1, device: DeviceOpt = "auto", out: OutOpt = Path("results"), set_: SetOpt = None,
          executor: ExecOpt = "local", workers: WorkersOpt = 1, devices: DevicesOpt = None,
        ray_address: RayAddressOpt = None, gpus_per_trial: GpusPerTrialOpt = None, cpus_per_trial: CpusPerTrialOpt = None, pack: PackOpt = 1) -> None:
    """Paper Table 3: train once on clean 2D, test with Gaussian noise of each sigma (sigma 0 always included).

    The same suite as `liftbench run noise`, with --sigma and --train-noise on top."""
    from liftbench.suites import parse_range

    sigmas = sorted({0.0, *parse_range(sigma, step, "--sigma", minimum=0.0)})
    if any(s < 0 for s in sigmas):
        from liftbench.errors import ConfigError
        raise ConfigError(f"--sigma values must be >= 0 pixels, got {sigma}.")
    _execute("noise", preset=preset, data=data, data_dir=data_dir, keypoints=keypoints, seeds=seeds, device=device,
             out=out, set_=set_, test_noise=sigmas, train_noise=train_noise, executor=executor, workers=workers, devices=devices, ray_address=ray_address,
             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, pack=pack)


@app.command("seqlen", rich_help_panel="Suites")
def seqlen(lengths: Annotated[str, typer.Option("--lengths", help="Sequence lengths: a..b, or a list 2,5,10.")] = "2..10",
           preset: PresetOpt = None, data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
           seeds: SeedsOpt = 1, device: DeviceOpt = "auto", out: OutOpt = Path("results"), set_: SetOpt = None,
           executor: ExecOpt = "local", workers: WorkersOpt = 1, devices: DevicesOpt = None,
        ray_address: RayAddressOpt = None, gpus_per_trial: GpusPerTrialOpt = None, cpus_per_trial: CpusPerTrialOpt = None, pack: PackOpt = 1) -> None:
    """Paper Figure 3: the seq2seq model trained and scored for each sequence length.

    The same suite as `liftbench run seqlen`, with --lengths on top."""
    from liftbench.errors import ConfigError
    from liftbench.suites import parse_range

    values = parse_range(lengths, 1.0, "--lengths", minimum=1, integer=True)
    if any(v < 1 or v != int(v) for v in values):
        raise ConfigError(f"--lengths must be whole numbers >= 1, got {lengths}.")
    _execute("seqlen", preset=preset, data=data, data_dir=data_dir, keypoints=keypoints, seeds=seeds, device=device,
             out=out, set_=set_, axis_values=[int(v) for v in values], executor=executor, workers=workers, devices=devices, ray_address=ray_address,
             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, pack=pack)


@app.command("jitter", rich_help_panel="Suites")
def jitter(preset: PresetOpt = None, data: DataOpt = None, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
           seeds: SeedsOpt = 1, device: DeviceOpt = "auto", out: OutOpt = Path("results"), set_: SetOpt = None,
           executor: ExecOpt = "local", workers: WorkersOpt = 1, devices: DevicesOpt = None,
        ray_address: RayAddressOpt = None, gpus_per_trial: GpusPerTrialOpt = None, cpus_per_trial: CpusPerTrialOpt = None, pack: PackOpt = 1) -> None:
    """Temporal quality: MPJVE, acceleration error and jitter for the MLP and seq2seq with/without smoothness.

    The same as `liftbench run jitter`."""
    _execute("jitter", preset=preset, data=data, data_dir=data_dir, keypoints=keypoints, seeds=seeds, device=device,
             out=out, set_=set_, executor=executor, workers=workers, devices=devices, ray_address=ray_address,
             gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, pack=pack)


@app.command("status", rich_help_panel="Suites")
def status(directory: Annotated[Path, typer.Argument(help="A suite directory, or the results root holding several.")] = Path("results")) -> None:
    """done / running / failed / interrupted / pending for every run of a suite (works while it runs, on any executor)."""
    from rich.markup import escape

    from liftbench.status import suite_status

    for title, rows in suite_status(directory):
        table = Table(title=title)
        for col in ("run_id", "variant", "seed", "axis", "state", "note"):
            table.add_column(col, overflow="fold")
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
            colour = {"done": "green", "running": "cyan", "interrupted": "yellow", "trained": "blue",
                      "failed": "red"}.get(r["state"], "white")
            table.add_row(r["run_id"], r["variant"], str(r["seed"]), str(r["axis"]), f"[{colour}]{r['state']}[/]",
                          escape(r.get("note", "")))
        console.print(table)
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


@app.command("report", rich_help_panel="Suites")
def report(directory: Annotated[Path, typer.Argument(help="A suite directory (results/<suite>-<preset>-<data>).")]) -> None:
    """Rich tables, report.md and PNG plots from a suite's results.csv / summary.csv."""
    from liftbench.report import render_suite

    paths = render_suite(directory, console)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")
