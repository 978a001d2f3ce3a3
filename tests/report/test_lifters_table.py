"""The lifters comparison (``liftbench run lifters`` and any multi-lifter suite): values equal the suite's
own rows and run files, causal and centred rankings are labelled, and the report/plot are written."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from liftbench.report.lifters import lifter_table, ranking_note


@pytest.fixture(scope="module")
def lifters_suite(tmp_path_factory):
    import fixtures.tiny  # noqa: F401  (registers the 'tiny' dataset in this process)

    from liftbench.runner.suite import run_suite, suite_dir
    from liftbench.suites import expand, load_suite

    tmp = tmp_path_factory.mktemp("lifters")
    path = tmp / "mini_lifters.toml"
    path.write_text(textwrap.dedent('''
        name = "minilifters"
        version = 1
        description = "tiny lifters comparison"
        default_preset = "tiny"
        test_noise = [0.0]
        [[variants]]
        name = "mlp"
        model = "mlp"
        [[variants]]
        name = "tcn-centred"
        model = "tcn"
        params = { filter_widths = "3", channels = 8 }
        [[variants]]
        name = "tcn-causal"
        model = "tcn"
        params = { filter_widths = "3", channels = 8, causal = true }
        [presets.tiny.all.train]
        epochs = 1
        [presets.tiny.all.data]
        name = "tiny"
        [presets.tiny.mlp.model]
        hidden_size = 16
    '''))
    specs = expand(load_suite(path), "tiny", seeds=2)
    directory = suite_dir(tmp, "minilifters", "tiny", "tiny")
    rows, _, _ = run_suite(specs, tmp, directory, device="cpu")
    return tmp, directory, rows


def test_table_matches_rows_and_run_files(lifters_suite):
    tmp, directory, rows = lifters_suite
    table = lifter_table(rows, tmp / "runs").set_index("variant")
    assert list(table.index) == ["mlp", "tcn-centred", "tcn-causal"]
    assert table.loc["tcn-causal", "alignment"] == "causal" and table.loc["tcn-centred", "alignment"] == "centred"
    assert table.loc["tcn-centred", "receptive_field"] == 3 and table.loc["mlp", "seeds"] == 2
    # P1 = mean over the two seeds of each run's own action_mean row (independent re-computation)
    sel = rows[(rows["variant"] == "tcn-causal") & (rows["metric"] == "mpjpe") & (rows["slice"] == "action_mean")]
    assert table.loc["tcn-causal", "mpjpe"] == pytest.approx(float(sel["value"].astype(float).mean()))
    run_id = sel["run_id"].iloc[0]
    run_json = json.loads((tmp / "runs" / run_id / "run.json").read_text())
    assert table.loc["tcn-causal", "parameters"] == run_json["trainable_parameters"]
    assert table.loc["mlp", "inference_frames_per_s"] > 0 and table.loc["mlp", "train_s_per_epoch"] > 0
    note = ranking_note(lifter_table(rows, tmp / "runs"))
    assert "ranked together" in note and "centred" in note and "2.5D" not in note  # all scored in camera mm


def test_single_alignment_needs_no_note():
    table = pd.DataFrame({"alignment": ["frame", "causal"], "scored_in": ["camera mm", "camera mm"]})
    assert ranking_note(table) == ""


def test_mixed_scoring_spaces_are_noted():
    table = pd.DataFrame({"alignment": ["clip", "clip"], "scored_in": ["camera mm", "2.5D mm"]})
    note = ranking_note(table)
    assert "2.5D" in note and "ranked together" not in note


def test_report_shows_the_comparison_and_plot(lifters_suite, run_cli):
    _, directory, _ = lifters_suite
    code, out, err = run_cli("report", directory)
    assert code == 0, err
    md = (directory / "report.md").read_text()
    assert "Lifters side by side" in md and "lifters are ranked together" in md
    assert (directory / "plots" / "lifters_p1_vs_speed.png").stat().st_size > 1000
    assert np.isfinite(lifter_table(pd.read_csv(directory / "results.csv"), directory.parent / "runs")["p_mpjpe"]).all()


def test_report_without_run_files_has_no_speeds_and_does_not_crash(lifters_suite, run_cli, tmp_path):
    """Only the results file (e.g. copied from another machine or from imported runs): no training logs and no
    measured speeds, so the speed plot is skipped (a log axis of NaN cannot be drawn) and the report still
    writes; the P1 column still equals the rows."""
    import shutil

    _, directory, _ = lifters_suite
    copy = tmp_path / "elsewhere" / directory.name
    copy.mkdir(parents=True)
    for name in ("results.csv", "summary.csv", "manifest.json"):
        if (directory / name).exists():
            shutil.copy(directory / name, copy / name)
    code, out, err = run_cli("report", copy)
    assert code == 0, err
    md = (copy / "report.md").read_text()
    assert "Lifters side by side" in md
    assert not (copy / "plots" / "lifters_p1_vs_speed.png").exists()
    rows = pd.read_csv(copy / "results.csv")
    table = lifter_table(rows, copy.parent / "runs")
    assert table["inference_frames_per_s"].isna().all()
    sel = rows[(rows["variant"] == "mlp") & (rows["metric"] == "mpjpe") & (rows["slice"] == "action_mean")]
    assert table.loc[table["variant"] == "mlp", "mpjpe"].iloc[0] == pytest.approx(sel["value"].mean())
