"""report and compare on results files that are not liftbench's: one line naming the file and the column."""

from __future__ import annotations

import json

import pytest
from fixtures.cli import assert_one_line_error

from liftbench.results import rows_frame, write_rows

# ------------------------------------------------------------------ results files for report / compare


def _rows() -> list[dict]:
    return [{"run_id": "r", "model": "m", "variant": "full", "seed": 0, "dataset": "tiny", "keypoints": "gt",
             "test_noise": 0.0, "seq_len": 1, "metric": "mpjpe", "slice_type": "all", "slice": "action_mean",
             "value": 50.0, "status": "ok"}]


@pytest.mark.parametrize("drop", ["status", "variant", "slice"])
def test_compare_on_csv_without_a_required_column(tmp_path, run_cli, drop):
    path = tmp_path / "results.csv"
    rows_frame(_rows()).drop(columns=[drop]).to_csv(path, index=False)
    code, _, err = run_cli("compare", path)
    assert_one_line_error(code, err, str(path), f"missing column(s) {drop}")


def test_report_on_csv_without_status_and_on_bad_manifest(tmp_path, run_cli):
    suite = tmp_path / "abl"
    suite.mkdir()
    rows_frame(_rows()).drop(columns=["status"]).to_csv(suite / "results.csv", index=False)
    (suite / "summary.csv").write_text("variant,seq_len,test_noise,metric,slice_type,slice,mean,sd,n\n")
    (suite / "manifest.json").write_text(json.dumps({"suite": "ablation", "runs": []}))
    code, _, err = run_cli("report", suite)
    assert_one_line_error(code, err, str(suite / "results.csv"), "status")
    write_rows(suite / "results.csv", _rows())
    (suite / "manifest.json").write_text("{}")
    code, _, err = run_cli("report", suite)
    assert_one_line_error(code, err, str(suite / "manifest.json"), "'runs'")
    (suite / "manifest.json").write_text(json.dumps({"suite": "ablation", "runs": []}))
    (suite / "summary.csv").write_text("a,b\n1,2\n")
    code, _, err = run_cli("report", suite)
    assert_one_line_error(code, err, str(suite / "summary.csv"), "missing column(s)")
