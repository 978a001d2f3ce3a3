"""`liftbench check`: verdicts, exit codes and tolerance parsing."""

import pytest

from liftbench.check import Tolerance, compare, exit_code, load_tolerances, parse_tolerance
from liftbench.errors import ConfigError, DataError
from liftbench.results import rows_frame, write_rows


def _rows(values=(50.0, 40.0, 90.0)):
    metrics = ("mpjpe", "p_mpjpe", "pck150")
    return rows_frame([{"model": "mlp", "variant": "default", "seed": 0, "dataset": "mocap-mini", "keypoints": "gt",
                        "train_noise": 0.0, "test_noise": 0.0, "seq_len": 1, "metric": m, "slice_type": "all",
                        "slice": "action_mean", "value": v, "unit": "mm", "higher_is_better": m == "pck150",
                        "status": "ok", "protocol_version": "1"} for m, v in zip(metrics, values)])


@pytest.fixture
def files(tmp_path):
    ref = write_rows(tmp_path / "ref.csv", _rows())
    return tmp_path, ref


def test_identical_results_pass(files, run_cli):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows())
    assert exit_code(compare(cur, ref, load_tolerances(ref))) == 0
    code, out, _ = run_cli("check", cur, "--reference", ref)
    assert code == 0 and "PASS" in out


def test_moved_value_fails_and_names_row(files, run_cli):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows((51.0, 40.0, 90.0)))
    verdicts = compare(cur, ref, load_tolerances(ref))
    assert [v.verdict for v in verdicts if v.key["metric"] == "mpjpe"] == ["worse"]
    code, out, _ = run_cli("check", cur, "--reference", ref)
    assert code == 1 and "worse" in out and "mlp/default/seed0/mocap-mini" in out and "mpjpe/action_mean" in out
    assert run_cli("check", cur, "--reference", ref, "--tol-mm", "2")[0] == 0
    assert run_cli("check", cur, "--reference", ref, "--tol", "mpjpe:2.5%")[0] == 0
    assert run_cli("check", cur, "--reference", ref, "--tol-rel", "1")[0] == 1


def test_higher_is_better_direction(files):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows((50.0, 40.0, 80.0)))
    assert {v.key["metric"]: v.verdict for v in compare(cur, ref, load_tolerances(ref))}["pck150"] == "worse"


def test_missing_extra_and_malformed_exit_2(files, run_cli):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows().iloc[:2])
    code, out, _ = run_cli("check", cur, "--reference", ref)
    assert code == 2 and "missing" in out and "pck150" in out
    bad = tmp / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    code, _, err = run_cli("check", bad, "--reference", ref)
    assert code == 2 and "bad.csv" in err
    code, _, err = run_cli("check", tmp / "nope.csv", "--reference", ref)
    assert code == 2 and "nope.csv" in err


def test_sidecar_and_parse_tolerances(files):
    tmp, ref = files
    ref.with_suffix(".toml").write_text('[tolerances]\ndefault = "0.1mm"\nmpjpe = "3%"\n')
    tols = load_tolerances(ref)
    assert tols.for_metric("mpjpe") == Tolerance(3.0, True)
    assert tols.for_metric("p_mpjpe") == Tolerance(0.1, False)
    assert parse_tolerance("p1:+0.5mm".replace("+", "")) == ("p1", Tolerance(0.5, False))
    assert parse_tolerance("2%") == (None, Tolerance(2.0, True))
    with pytest.raises(ConfigError, match="Could not parse tolerance"):
        parse_tolerance("mpjpe:lots")
    ref.with_suffix(".toml").write_text("[tolerances\n")
    with pytest.raises(DataError):
        load_tolerances(ref)
