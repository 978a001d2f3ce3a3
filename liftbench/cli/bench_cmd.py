"""`liftbench bench`: plain vs production path, interleaved in one process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from liftbench.cli import app
from liftbench.cli._common import DeviceOpt, console


@app.command("bench", rich_help_panel="Performance")
def bench(
    model: Annotated[list[str] | None, typer.Option("--model", help="Model(s) to measure (default: all built-ins).")] = None,
    device: DeviceOpt = "auto",
    batch: Annotated[int | None, typer.Option("--batch", help="Training batch (default: the paper's).")] = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", help="seq2seq window (default 5).")] = None,
    hidden: Annotated[int, typer.Option("--hidden", help="Width (default 1024, the paper's).")] = 1024,
    reps: Annotated[int, typer.Option("--reps", help="Timed training steps per variant.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (speedup_train / speedup_eval / speedup_pack).")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write a CSV here.")] = None,
) -> None:
    """ms per training step, eval frames/s, GFLOP/s and % of this run's matmul throughput: plain vs production."""
    import pandas as pd

    from liftbench.bench import bench_model, matmul_gflops
    from liftbench.pipeline import resolve_device
    from liftbench.results import write_text_atomic

    dev = resolve_device(device)
    peak = matmul_gflops(dev)
    results = [bench_model(m, dev, batch=batch, seq_len=seq_len, hidden=hidden, reps=reps, peak_gflops=peak)
               for m in (model or ["mlp", "seq2seq"])]
    if out:
        flat = [{"model": r["model"], "variant": v, "device": r["device"], "batch": r["batch"], "seq_len": r["seq_len"],
                 "hidden": r["hidden"], **{f"train_{k}": x for k, x in r[v]["train_step"].items()},
                 "train_gflops": r[v]["train_gflops"], "train_pct_of_matmul": r[v]["train_pct_of_matmul"],
                 "eval_frames_per_s": r[v]["eval_frames_per_s"], "eval_pct_of_matmul": r[v]["eval_pct_of_matmul"],
                 "matmul_gflops": r["matmul_gflops"], "other_cpu_pct": r["other_cpu_pct"], "peak_rss_mb": r["peak_rss_mb"],
                 "speedup_train": r["speedup_train"], "speedup_eval": r["speedup_eval"]} for r in results for v in ("plain", "fast")]
        write_text_atomic(out, pd.DataFrame(flat).to_csv(index=False, float_format="%.6g"))
    if as_json:
        console.print_json(json.dumps(results, default=float))
        return
    table = Table(title=f"liftbench bench on {dev} (matmul {peak:.0f} GFLOP/s measured in this run)")
    for col in ("model", "path", "train ms (median [min-max], n)", "train GFLOP/s", "% matmul", "eval frames/s", "eval % matmul"):
        table.add_column(col, justify="right")
    for r in results:
        for v in ("plain", "fast"):
            t = r[v]["train_step"]
            table.add_row(r["model"], "plain" if v == "plain" else "production",
                          f"{t['median_ms']:.1f} [{t['min_ms']:.1f}-{t['max_ms']:.1f}], {t['n']}", f"{r[v]['train_gflops']:.1f}",
                          f"{r[v]['train_pct_of_matmul']:.0f}", f"{r[v]['eval_frames_per_s']:,.0f}", f"{r[v]['eval_pct_of_matmul']:.0f}")
        table.add_row("", "speed-up", f"train x{r['speedup_train']:.2f}", "", "", f"eval x{r['speedup_eval']:.2f}", "")
    console.print(table)
    busy = max(r["other_cpu_pct"] for r in results)
    if busy == busy and busy > 5:
        console.print(f"[yellow]warning:[/] other processes used {busy:.0f}% of the CPU during the run; timings are unreliable.")
    else:
        console.print(f"other processes' CPU share during the run: {busy:.1f}%")
