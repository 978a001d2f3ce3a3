"""`liftbench data ...`: list, prepare, info and verify datasets."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from liftbench.cli._common import DataDirOpt, KeypointsOpt, console, err_console
from liftbench.cli.app import app
from liftbench.errors import LiftbenchError

data_app = typer.Typer(help="List, prepare, inspect and verify datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data", rich_help_panel="Data")

NameArg = Annotated[str, typer.Argument(help="Dataset name: mocap-mini (embedded default) or h36m.")]


@data_app.command("list")
def data_list(data_dir: DataDirOpt = None) -> None:
    """List the dataset sources liftbench knows."""
    from liftbench.data import DATASETS, cache_home

    table = Table(title="Datasets")
    for col in ("name", "description", "default keypoints", "location"):
        table.add_column(col)
    for entry in DATASETS.entries():
        source = entry.target()
        location = (source.location(data_dir) if entry.name != "h36m" or data_dir
                    else "--data-dir DIR (VideoPose3D .npz files)")
        table.add_row(entry.name, source.description, source.default_keypoints, str(location))
    console.print(table)
    console.print(f"mocap-mini cache root: {cache_home(data_dir)} (override with --data-dir or LIFTBENCH_DATA; "
                  "h36m reads only --data-dir)", soft_wrap=True)


@data_app.command("prepare")
def data_prepare(name: NameArg, data_dir: DataDirOpt = None,
                 force: Annotated[bool, typer.Option("--force", help="Rebuild even if a valid cache exists.")] = False,
                 from_official: Annotated[str | None, typer.Option(
                     "--from-official", metavar="DIR", help="h36m: convert the official release in DIR "
                     "(S*/MyPoseFeatures/D3_Positions/*.cdf) into --data-dir (needs the extra: "
                     "pip install liftbench\\[h36m]).")] = None,
                 subjects: Annotated[str | None, typer.Option(
                     "--subjects", help="With --from-official: convert only these subjects, e.g. S9,S11 "
                     "(a partial release, stated in the manifest).")] = None) -> None:
    ("Build (mocap-mini) or check (h36m) what a dataset needs; "
     "h36m --from-official DIR converts the official release.")
    from liftbench.data import prepare_dataset

    if from_official is not None or subjects is not None:
        from liftbench.data.h36m_official import prepare_from_official

        console.print(prepare_from_official(name, from_official, data_dir, subjects, force), soft_wrap=True)
        return
    console.print(prepare_dataset(name, data_dir, force=force))


@data_app.command("info")
def data_info(name: NameArg, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None) -> None:
    """Subjects x action groups x frames per split, cameras, trims and quirks."""
    from liftbench.data import load_dataset
    from liftbench.data.skeleton import action_group

    ds = load_dataset(name, data_dir, keypoints)
    console.print(f"[bold]{ds.name}[/] keypoints={ds.keypoints} fps={ds.fps:g} fingerprint={ds.fingerprint()}")
    for split, subjects in (("train", ds.train_subjects), ("test", ds.test_subjects)):
        seqs = ds.split(split)
        subj = [s for s in ds.subjects if s in subjects]
        groups = sorted({action_group(s.action) for s in seqs})
        table = Table(title=f"{split} split: frames per action group and subject (all cameras)", show_footer=True)
        table.add_column("action group", footer="total")
        totals = {}
        for s in subj:
            totals[s] = sum(q.n_frames for q in seqs if q.subject == s)
            table.add_column(s, justify="right", footer=f"{totals[s]:,}")
        table.add_column("all", justify="right", footer=f"{sum(totals.values()):,}")
        for g in groups:
            cells = [sum(q.n_frames for q in seqs if q.subject == s and action_group(q.action) == g) for s in subj]
            table.add_row(g, *[f"{c:,}" if c else "—" for c in cells], f"{sum(cells):,}")
        console.print(table)
        cams = sorted({q.camera for q in seqs})
        console.print(f"{split}: {len(seqs)} sequences, {len({(q.subject, q.action) for q in seqs})} takes, "
                      f"cameras {cams}")
    if ds.notes:
        console.print(f"[bold]Trims and quirks ({len(ds.notes)}):[/]")
        for note in ds.notes[:40]:
            console.print(f"  • {note}", soft_wrap=True)
        if len(ds.notes) > 40:
            console.print(f"  … and {len(ds.notes) - 40} more")
    else:
        console.print("No trims or quirks.")


SubjectsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated subjects, e.g. S1,S5 (as train_subjects / test_subjects in a config); "
    "default: the dataset's split.", rich_help_panel="Data")]


@data_app.command("verify")
def data_verify(name: NameArg, data_dir: DataDirOpt = None, keypoints: KeypointsOpt = None,
                train_subjects: SubjectsOpt = None, test_subjects: SubjectsOpt = None) -> None:
    """Check exactly what training checks (files, keys, shapes, NaN/inf, implausible 2D/3D, lengths, cameras,
    non-empty train and test splits); exit 2 with one line per problem."""
    from liftbench.data import get_source, verify_dataset

    source = get_source(name)
    split = {"train_subjects": _subjects(train_subjects), "test_subjects": _subjects(test_subjects)}
    problems = verify_dataset(name, data_dir, keypoints, **split)
    try:
        where = source.location(data_dir)
    except LiftbenchError:  # e.g. LIFTBENCH_DATA is a file: already one of the problems
        where = str(data_dir or "?")
    if problems:
        for p in problems:
            err_console.print(f"[red]problem:[/] {escape(p)}", soft_wrap=True)
        err_console.print(f"{len(problems)} problem(s) found in {name} ({escape(where)}).", soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"[green]ok[/] {name} ({escape(where)}): no problems found.", soft_wrap=True)


def _subjects(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())
