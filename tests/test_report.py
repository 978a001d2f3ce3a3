"""Suite reports: the right plots for each suite shape, per-action tables, paper values labelled."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from liftbench.report import render_suite, suite_tables
from liftbench.runner import run_suite
from liftbench.suites import expand, load_suite

TINY = {"data.name": "tiny", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}


@pytest.fixture(scope="module")
def ablation_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("abl")
    specs = expand(load_suite("ablation"), "smoke", overrides=TINY)
    run_suite(specs, out, out / "suite", device="cpu")
    return out / "suite"


def test_ablation_report_has_bars_not_a_fake_seq_len_sweep(ablation_dir):
    written = render_suite(ablation_dir, Console(width=200, record=True))
    names = {p.name for p in written}
    # The MLP (T=1) beside seq2seq (T=5) is not a sequence-length sweep: no error-vs-T plot.
    assert "variants_p1.png" in names and "error_vs_seq_len.png" not in names
    assert "training_curves.png" in names and "report.md" in names
    for p in written:
        assert p.stat().st_size > 0


def test_ablation_tables_per_action_with_paper_deltas(ablation_dir):
    tables, md = suite_tables(ablation_dir)
    console = Console(width=250, record=True)
    for t in tables:
        console.print(t)
    text = console.export_text()
    assert "Protocol #1 (MPJPE, mm) per action group" in text and "Protocol #2 (P-MPJPE, mm) per action group" in text
    # Table 4 of the paper beside ours, with its delta, and the evaluation-bug caveat.
    assert "52.7 P1 (+0.8)" in text and "102.4 P1 (+50.5)" in text
    assert "58.25" in text and "58.25" in md
    for variant in ("full", "no_smoothness", "no_dropout", "no_layer_norm", "no_layer_norm_no_dropout", "no_residual", "mlp"):
        assert f"| {variant} |" in md


def test_noise_report_plots_error_vs_sigma(tmp_path):
    specs = expand(load_suite("noise"), "smoke", overrides=TINY, test_noise=[0.0, 10.0])
    run_suite(specs, tmp_path, tmp_path / "suite", device="cpu")
    names = {p.name for p in render_suite(tmp_path / "suite", Console(width=200, record=True))}
    assert "error_vs_test_noise.png" in names
    assert "variants_p1.png" in names  # two models at the clean condition


def test_compare_with_paper_deltas_match_the_gt_row(ablation_dir, run_cli):
    import pandas as pd

    from liftbench.errors import ConfigError
    from liftbench.report import compare_with_paper

    table, notes = compare_with_paper(ablation_dir / "results.csv", "hossain2018", "mpjpe", variant="full")
    assert any("datasets differ" in n for n in notes)
    headers = [str(c.header) for c in table.columns]
    cells = {h: list(map(str, c.cells)) for h, c in zip(headers, table.columns)}
    avg = cells[headers[0]].index("Avg")
    rows = pd.read_csv(ablation_dir / "results.csv")
    ours = rows[(rows.variant == "full") & (rows.metric == "mpjpe") & (rows.slice == "action_mean")].value.mean()
    delta_col = [h for h in headers if h.startswith("Δ full")][0]
    assert "hossain2018 (gt)" in delta_col  # liftbench trains on GT 2D: compared with the paper's GT row (39.2)
    assert cells[delta_col][avg] == f"{ours - 39.2:.1f}"
    with pytest.raises(ConfigError, match="no 'mpjpe' rows for variant nosuch"):
        compare_with_paper(ablation_dir / "results.csv", "hossain2018", "mpjpe", variant="nosuch")
    code, out, err = run_cli("compare", ablation_dir / "results.csv", "--paper", "nosuch")
    assert code == 2 and "Unknown" in err and "Traceback" not in err
