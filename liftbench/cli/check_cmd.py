"""`liftbench check`: regression gate on results against a committed reference."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from liftbench.cli._common import console
from liftbench.cli.app import app

SHIPPED_REFERENCE = "baselines/reference/results.csv"  # liftbench.resources.shipped_path


class Show(StrEnum):
    """Which verdict rows the table prints; Typer turns the Enum into a choice, so anything else is a usage
    error (exit 2) instead of silently printing everything."""

    all = "all"
    changed = "changed"


_COLOURS = {"same": "green", "better": "cyan", "worse": "red", "missing": "red", "extra": "yellow",
            "not-comparable": "yellow", "new-failure": "red", "fixed": "cyan"}


@app.command("check", rich_help_panel="Evaluation")
def check(
    results: Annotated[Path, typer.Argument(help="results.csv to check (a run's or a suite's).")],
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="Reference CSV (tolerances in a .toml sidecar); default: the CI reference shipped with "
        "liftbench, baselines/reference/results.csv.", show_default=False)] = None,
    tol_mm: Annotated[float | None, typer.Option("--tol-mm", help="Absolute tolerance for every metric.")] = None,
    tol_rel: Annotated[float | None, typer.Option("--tol-rel",
                                                  help="Relative tolerance in percent for every metric.")] = None,
    tol: Annotated[list[str] | None, typer.Option(
        "--tol", help="Per-metric tolerance, e.g. mpjpe:0.5mm or auc:2% (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable verdicts.")] = False,
    update: Annotated[bool, typer.Option(
        "--update", help="Rewrite the reference from RESULTS on purpose and print what changed.")] = False,
    show: Annotated[Show, typer.Option(
        "--show", help="Which verdict rows to print: all, or changed (everything but 'same').")] = Show.all,
) -> None:
    """Compare every value with the reference; exit 0 within tolerance, 1 regression, 2 missing/extra/malformed."""
    from rich.markup import escape  # keys come from files: '[red]PASS[/]' in a key is text, not markup

    from liftbench.check import compare, exit_code, load_tolerances, update_reference
    from liftbench.errors import ConfigError
    from liftbench.resources import from_source_tree, shipped_path

    if reference is None:
        if update and not from_source_tree():
            raise ConfigError("--update would rewrite the reference inside the installed package; pass "
                              "--reference FILE (e.g. baselines/reference/results.csv of a checkout).")
        reference = shipped_path(SHIPPED_REFERENCE)
    load_tolerances(reference, tol_mm, tol_rel, tol)  # bad tolerances are errors even with --update
    if update:
        changed = update_reference(results, reference)
        console.print(f"reference {reference} rewritten from {results}; {len(changed)} value(s) changed")
        for v in changed[:50]:
            console.print(f"  {v.verdict:>8} {escape(v.label())}: {v.reference} -> {v.current}", soft_wrap=True)
        return
    verdicts = compare(results, reference, load_tolerances(reference, tol_mm, tol_rel, tol))
    code = exit_code(verdicts)
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    if as_json:
        console.print_json(json.dumps({"exit_code": code, "counts": counts, "verdicts": [
            {**v.key, "reference": v.reference, "current": v.current, "delta": v.delta, "tolerance": v.tolerance,
             "verdict": v.verdict} for v in verdicts]}))
    else:
        table = Table(title=f"liftbench check: {results} vs {reference}")
        columns = ("model", "variant", "seed", "noise", "T", "metric", "slice", "reference", "current", "delta",
                   "tol", "verdict")
        for col in columns:
            table.add_column(col, justify="right" if col in ("reference", "current", "delta") else "left")
        fmt = lambda x: "—" if x is None or x != x else f"{x:.3f}"  # noqa: E731
        for v in verdicts:
            if show is Show.changed and v.verdict == "same":
                continue
            k = v.key
            keys = ("model", "variant", "seed", "test_noise", "seq_len", "metric", "slice")
            table.add_row(*(escape(k[c]) for c in keys),
                          fmt(v.reference), fmt(v.current), fmt(v.delta), v.tolerance,
                          f"[{_COLOURS[v.verdict]}]{v.verdict}[/]")
        console.print(table)
        console.print(", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
        for v in verdicts:
            if v.verdict not in ("same",):
                console.print(f"[{_COLOURS[v.verdict]}]{v.verdict}[/]: {escape(v.label())} "
                              f"reference={fmt(v.reference)} current={fmt(v.current)} tolerance={v.tolerance}",
                              soft_wrap=True)
        console.print({0: "[green]PASS[/]: every value within tolerance",
                       1: "[red]FAIL[/]: values moved beyond tolerance (liftbench check --update to accept on "
                          "purpose)",
                       2: "[red]FAIL[/]: rows missing, extra or not comparable"}[code])
    raise typer.Exit(code)
