"""`liftbench run | noise | seqlen | jitter | status | report`: benchmark suites."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from liftbench.cli._common import DataDirOpt, DataOpt, DeviceOpt, KeypointsOpt, TensorBoardOpt, console
from liftbench.cli.app import app

PresetOpt = Annotated[str | None, typer.Option(
    "--preset", help="smoke (2-core CPU, minutes) or paper (paper hyper-parameters, GPU).",
    show_default="the suite file's default_preset: smoke (reference: ci)", rich_help_panel="Suite")]
SeedsOpt = Annotated[int, typer.Option(
    "--seeds", help="Run every configuration with N seeds (0..N-1).", rich_help_panel="Suite")]
OutOpt = Annotated[Path, typer.Option(
    "--out", help="Results root: runs in OUT/runs/<run_id>/ (as train --out), "
    "suite tables in OUT/<suite>-<preset>-<data>/.", rich_help_panel="Suite")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a key in every run, e.g. --set train.epochs=2.", rich_help_panel="Suite")]
# The choices equal liftbench.runner.executors.EXECUTORS (a test keeps them equal;
# the CLI does not import executors early).
ExecOpt = Annotated[Literal["local", "ray"], typer.Option(
    "--executor", help="local (this machine; --workers, --devices) or ray (pip install 'liftbench\\[ray]'; "
    "--ray-address, --cpus-per-trial, --gpus-per-trial).", rich_help_panel="Scale-out")]
WorkersOpt = Annotated[int, typer.Option(
    "--workers", help="local executor: trials in parallel worker processes.", rich_help_panel="Scale-out")]
DevicesOpt = Annotated[str | None, typer.Option(
    "--devices", help="local workers: devices round-robin, e.g. cuda:0,cuda:1.", rich_help_panel="Scale-out")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", help="Join a Ray cluster: auto or ray://host:port (default: start a local Ray).",
    rich_help_panel="Scale-out")]
GpusPerTrialOpt = Annotated[float | None, typer.Option(
    "--gpus-per-trial", help="--executor ray only (an error with local): GPU share per trial "
    "(0.25 packs four per GPU).", show_default="0", rich_help_panel="Scale-out")]
CpusPerTrialOpt = Annotated[float | None, typer.Option(
    "--cpus-per-trial", help="--executor ray only (an error with local): CPUs (and torch threads) per trial.",
    show_default="1", rich_help_panel="Scale-out")]
PackOpt = Annotated[int, typer.Option(
    "--pack", help="Train up to K runs of the same shapes (seeds, toggle variants) as one stacked computation; "
    "same numbers as one by one. Configurations that measured slower packed on this device "
    "(the MLP at width > 512 on CPU) train one by one. In-process only.", rich_help_panel="Scale-out")]


SUITE_OPTIONS: dict[str, tuple[Any, Any]] = {  # option name -> (Annotated type, default): every suite command's
    "preset": (PresetOpt, None), "data": (DataOpt, None), "data_dir": (DataDirOpt, None),
    "keypoints": (KeypointsOpt, None), "seeds": (SeedsOpt, 1), "device": (DeviceOpt, "auto"),
    "out": (OutOpt, Path("results")), "set_": (SetOpt, None), "executor": (ExecOpt, "local"),
    "workers": (WorkersOpt, 1), "devices": (DevicesOpt, None), "ray_address": (RayAddressOpt, None),
    "gpus_per_trial": (GpusPerTrialOpt, None), "cpus_per_trial": (CpusPerTrialOpt, None), "pack": (PackOpt, 1),
    "tensorboard": (TensorBoardOpt, False),
}
_EXECUTION = ("executor", "workers", "devices", "ray_address", "gpus_per_trial", "cpus_per_trial", "pack",
              "tensorboard")


@dataclass(frozen=True)
class SuiteArgs:
    """The options every suite command shares (``SUITE_OPTIONS``), gathered once."""

    preset: str | None
    data: str | None
    data_dir: Path | None
    keypoints: str | None
    seeds: int
    device: str
    out: Path
    set_: list[str] | None
    execution: Any  # liftbench.runner.options.ExecutionOptions, validated when the command runs


def suite_command(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a suite command whose signature is its own options plus ``SUITE_OPTIONS``; the function
    receives the shared ones as ``args: SuiteArgs``. One list of options, not four pasted copies."""
    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "args"]
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
                  for n, (a, d) in SUITE_OPTIONS.items()]

        def command(**kwargs: Any) -> None:
            common = {n: kwargs.pop(n) for n in SUITE_OPTIONS}
            execution = {n: common.pop(n) for n in _EXECUTION}
            return fn(**kwargs, args=SuiteArgs(**common, execution=execution))

        command.__name__, command.__doc__, command.__module__ = fn.__name__, fn.__doc__, fn.__module__
        command.__signature__ = inspect.Signature(own + shared)  # what Typer reads
        command.__annotations__ = {p.name: p.annotation for p in own + shared}
        return app.command(name, rich_help_panel="Suites")(command)
    return decorate


def _execute(suite_name: str, args: SuiteArgs, *, test_noise=None, axis_values=None, train_noise=None) -> None:
    from rich.markup import escape

    from liftbench._files import check_output_dir
    from liftbench.cli.progress import make_progress, train_progress
    from liftbench.config import parse_assignments
    from liftbench.papers.match import suite_setting
    from liftbench.report.render import render_suite
    from liftbench.runner.options import ExecutionOptions
    from liftbench.runner.suite import run_suite, suite_dir
    from liftbench.suites import expand, load_suite

    execution = ExecutionOptions.from_flags(**args.execution)  # every executor rule, once, in the library
    if execution.tensorboard:
        from liftbench.tensorboard_log import require_tensorboard

        require_tensorboard()  # a missing extra is one line before any trial
    suite = load_suite(suite_name)
    overrides = parse_assignments(args.set_)
    if args.data:
        overrides["data.name"] = args.data
    if args.keypoints:
        overrides["data.keypoints"] = args.keypoints
    if train_noise is not None:
        overrides["data.train_noise"] = train_noise
    specs = expand(suite, args.preset, seeds=args.seeds, overrides=overrides, test_noise=test_noise,
                   axis_values=axis_values)
    preset = args.preset or suite.default_preset
    check_output_dir(args.out, "--out")  # an existing file or a read-only place: one line before any work
    directory = suite_dir(args.out, suite.name, preset, specs[0].config.data.name)
    console.print(f"[bold]{suite.name}[/] v{suite.version} preset={preset}: {len(specs)} run(s) x "
                  f"{len(specs[0].test_noise)} test condition(s) -> {directory}")
    # the library decides from the resolved configs against the preset's declared setting, the CLI renders
    banner = suite_setting(suite.name, preset, [(s.variant, s.axis_value, s.config) for s in specs]).banner
    if banner:
        console.print(f"[bold yellow]{banner}[/]", soft_wrap=True)
    progress = make_progress()
    overall = progress.add_task(f"suite {suite.name}", total=len(specs), info="")
    trial_bar = train_progress(progress)  # plain lines at a fixed interval when no terminal watches

    def on_start(i, spec):
        axis = f" {spec.axis_key.split('.')[-1]}={spec.axis_value}" if spec.axis_key else ""
        trial_bar.label = f"{spec.variant} s{spec.seed}{axis}"
        return trial_bar

    def on_counts(c):  # trials in other processes: one overall bar with done / running / failed / pending
        waiting = f" · waiting for {', '.join(c.waiting_for)}" if c.waiting_for else ""
        if execution.in_process:  # this process's own bars say the rest; only runs claimed elsewhere are news
            if waiting:
                progress.update(overall, info=waiting[3:])
            return
        progress.update(overall, completed=c.done + c.failed,
                        info=f"done {c.done} · running {c.running} · failed {c.failed} · pending {c.pending}{waiting}")

    exec_obj = execution.make_executor(on_progress=on_counts, on_trial_start=on_start)

    def on_end(i, result):
        state = ("error: " + escape(result.error) if result.error
                 else ("trained" if result.trained else "already trained"))
        if execution.in_process:
            trial_bar.finish()
            progress.update(overall, advance=1, info=f"last: {result.spec.variant} ({state})")
        if progress.disable or not execution.in_process:  # a log has no bar: one line per finished trial
            progress.console.print(f"  trial {i + 1}/{len(specs)} {result.spec.variant} s{result.spec.seed}: "
                                   f"{state}", soft_wrap=True)

    with progress:
        rows, summary, results = run_suite(specs, args.out, directory, data_dir=args.data_dir, device=args.device,
                                           info={"suite": suite.name, "version": suite.version, "preset": preset,
                                                 "executor": execution.executor},
                                           on_trial_end=on_end, executor=exec_obj, pack=execution.pack)
    if progress.disable and not execution.in_process:  # a log: the overall bar's last state, once
        last = next(t for t in progress.tasks if t.id == overall).fields.get("info", "")
        console.print(f"suite {suite.name}: {last}", soft_wrap=True)
    trained = sum(r.trained for r in results)
    failed = [r for r in results if r.error]
    render_suite(directory, console)
    console.print(f"{len(results)} run(s): {trained} trained now, {len(results) - trained - len(failed)} reused, "
                  f"{len(failed)} failed. Files: {directory}/results.csv, summary.csv, report.md, plots/")
    if failed:
        for r in failed:
            console.print(f"[red]failed[/] {r.spec.variant} seed {r.spec.seed}: {escape(r.error)}", soft_wrap=True)
        raise typer.Exit(1)


@suite_command("run")
def run(suite: Annotated[str | None, typer.Argument(help="Suite name (see --list) or a suite TOML path.")] = None,
        list_: Annotated[bool, typer.Option("--list", help="List the suites and exit.")] = False,
        *, args: SuiteArgs) -> None:
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
    _execute(suite, args)


@suite_command("noise")
def noise(sigma: Annotated[str, typer.Option(
              "--sigma", help="Test noise in px: a..b (with --step), 0,5,10 or one value.")] = "5..20",
          step: Annotated[float, typer.Option("--step", help="Step of an a..b range.")] = 5.0,
          train_noise: Annotated[float | None, typer.Option(
              "--train-noise", help="Also train on noisy 2D (sigma px).")] = None,
          *, args: SuiteArgs) -> None:
    """Paper Table 3: train once on clean 2D, test with Gaussian noise of each sigma (sigma 0 always included).

    The same suite as `liftbench run noise`, with --sigma and --train-noise on top."""
    from liftbench.suites import parse_range

    sigmas = sorted({0.0, *parse_range(sigma, step, "--sigma", minimum=0.0)})
    _execute("noise", args, test_noise=sigmas, train_noise=train_noise)


@suite_command("seqlen")
def seqlen(lengths: Annotated[str, typer.Option(
               "--lengths", help="Sequence lengths: a..b, or a list 2,5,10.")] = "2..10",
           *, args: SuiteArgs) -> None:
    """Paper Figure 3: the seq2seq model trained and scored for each sequence length.

    The same suite as `liftbench run seqlen`, with --lengths on top."""
    from liftbench.suites import parse_range

    values = parse_range(lengths, 1.0, "--lengths", minimum=1, integer=True)
    _execute("seqlen", args, axis_values=[int(v) for v in values])


@suite_command("jitter")
def jitter(*, args: SuiteArgs) -> None:
    """Temporal quality: MPJVE, acceleration error and jitter for the MLP and seq2seq with/without smoothness.

    The same as `liftbench run jitter`."""
    _execute("jitter", args)


@app.command("status", rich_help_panel="Suites")
def status(directory: Annotated[Path, typer.Argument(
               help="A suite directory, or the results root holding several.")] = Path("results")) -> None:
    ("done / running / failed / interrupted / pending for every run of a suite "
     "(works while it runs, on any executor).")
    from rich.markup import escape

    from liftbench.runner.status import suite_status

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
def report(directory: Annotated[Path, typer.Argument(
               help="A suite directory (results/<suite>-<preset>-<data>).")]) -> None:
    """Rich tables, report.md and PNG plots from a suite's results.csv / summary.csv."""
    from liftbench.report.render import render_suite

    paths = render_suite(directory, console)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")
