"""`liftbench bench`: plain vs production path, interleaved in one process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from liftbench.cli._common import DeviceOpt, console, err_console
from liftbench.cli.app import app


@app.command("bench", rich_help_panel="Performance")
def bench(
    model: Annotated[list[str] | None, typer.Option(
        "--model", help="Lifter(s) to measure (default: every registered lifter).")] = None,
    device: DeviceOpt = "auto",
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Training batch (default: the paper's).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Model parameter (default: the paper's), e.g. --set hidden_size=256; "
        "'key=value' applies to every measured lifter that has the key, '<lifter>.key=value' to one.")] = None,
    reps: Annotated[int, typer.Option(
        "--reps", min=1, help="Timed training steps per path.")] = 10,
    eval_batch: Annotated[int, typer.Option(
        "--eval-batch", min=1, help="Production evaluator batch (windows).")] = 2048,
    tf32: Annotated[bool, typer.Option(
        "--tf32", help="CUDA only: TF32 matmuls in the production path.", rich_help_panel="CUDA")] = False,
    bf16: Annotated[bool, typer.Option(
        "--bf16", help="CUDA only: bf16 autocast in the production path.", rich_help_panel="CUDA")] = False,
    cuda_graph: Annotated[bool, typer.Option(
        "--cuda-graph", help="CUDA only: capture the training step as a CUDA graph.", rich_help_panel="CUDA")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON (speedup_train / speedup_eval / speedup_pack).")] = False,
    csv: Annotated[Path | None, typer.Option(
        "--csv", metavar="FILE", help="Also write the measurements to this CSV file (one row per model and path; "
        "replaced if it exists).")] = None,
) -> None:
    """ms per training step, eval frames/s, GFLOP/s and % of this run's matmul throughput: plain vs production."""
    import pandas as pd

    from liftbench._files import check_output_dir, write_text_atomic
    from liftbench.config import parse_assignments
    from liftbench.device import resolve_device
    from liftbench.errors import ConfigError
    from liftbench.models import LIFTERS
    from liftbench.perf.bench import (
        CudaOptions,
        bench_model,
        bench_params,
        check_bench_args,
        default_pack_bench,
        flat_rows,
        matmul_gflops,
    )

    if csv is not None:  # checked before minutes of measuring, not after
        if csv.is_dir():
            raise ConfigError(f"--csv {csv} is a directory; pass a file name, e.g. {csv / 'bench.csv'}.")
        check_output_dir(csv.parent, "--csv")
    dev = resolve_device(device)
    cuda = CudaOptions(tf32=tf32, bf16=bf16, cuda_graph=cuda_graph)
    if cuda.names() and dev.type != "cuda":
        err_console.print(f"note: {', '.join('--' + n.replace('_', '-') for n in cuda.names())} only apply on CUDA; "
                      f"ignored on {dev}.")
    models = model or LIFTERS.names()  # every registered lifter: built-ins and plug-ins
    for m in models:  # names checked before the first (minutes-long) measurement; Typer checks the sizes
        LIFTERS.get(m)
    params = bench_params(models, parse_assignments(set_))
    for m in models:  # and every model parameter
        check_bench_args(m, params[m])
    peak_before = matmul_gflops(dev)
    results = [bench_model(m, dev, params=params[m], batch=batch, reps=reps, eval_batch=eval_batch,
                           peak_gflops=peak_before, pack_bench=default_pack_bench(), cuda=cuda)
               for m in models]
    peak_after = matmul_gflops(dev)
    if csv:
        write_text_atomic(csv, pd.DataFrame(flat_rows(results)).to_csv(index=False, float_format="%.6g"))
    busy = max(r["other_cpu_pct"] for r in results)
    if as_json:
        console.print_json(json.dumps({"matmul_gflops_before": peak_before, "matmul_gflops_after": peak_after,
                                       "other_cpu_pct": busy, "results": results}, default=float))
        return
    table = Table(title=f"liftbench bench on {dev}, {results[0]['threads']} thread(s); "
                        f"matmul {peak_before:.0f} GFLOP/s "
                        f"before / {peak_after:.0f} after (measured in this run)"
                        + (f"; CUDA options {', '.join(cuda.names())}" if cuda.for_device(dev).names() else ""))
    table.caption = ("train ms: median \\[min-max], n. GF/s: matmul GFLOP/s counting the FLOPs each path executes "
                     "(nominal paper-graph count in brackets); %mm: of the 'before' matmul throughput; "
                     "eval: frames/s (batch); MiB: peak memory of one train step / one eval pass.")
    for col in ("model", "path", "train ms", "GF/s", "%mm", "eval fps", "GF/s", "%mm", "MiB"):
        table.add_column(col, justify="right")
    for r in results:
        for v in ("plain", "production"):
            p, t = r[v], r[v]["train_step"]
            table.add_row(r["model"], v, f"{t['median_ms']:.1f} [{t['min_ms']:.1f}-{t['max_ms']:.1f}], {t['n']}",
                          f"{p['train_gflops']:.1f} ({p['train_gflops_nominal']:.1f})",
                          f"{p['train_pct_of_matmul']:.0f}",
                          f"{p['eval_frames_per_s']:,.0f} ({r['eval_batch'] if v == 'production' else r['batch']})",
                          f"{p['eval_gflops']:.1f} ({p['eval_gflops_nominal']:.1f})", f"{p['eval_pct_of_matmul']:.0f}",
                          f"{p['peak_train_mb']:.0f}/{p['peak_eval_mb']:.0f}")
        pack = "not measured" if r["speedup_pack"] is None else f"x{r['speedup_pack']:.2f}"
        if r.get("pack_used") is False:  # measured, but --pack trains this lifter one run at a time here
            pack += f" (unused on {dev.type})"
        table.add_row("", "speed-up", f"x{r['speedup_train']:.2f}", "", "", f"x{r['speedup_eval']:.2f}", "", "",
                      f"pack {pack}")
    console.print(table)
    if busy == busy and busy > 5:
        console.print(f"[yellow]warning:[/] other processes used {busy:.0f}% of the CPU during the run; "
                      "timings are unreliable.")
    else:
        console.print(f"other processes' CPU share during the run: {busy:.1f}%")
