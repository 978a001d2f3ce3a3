"""`liftbench check`: verdicts, exit codes and tolerance parsing."""

from pathlib import Path

import pytest
from fixtures.cli import assert_one_line_error

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


# --------------------------------------------------------------------------------------------
# Malformed values, error rows, tolerance options, sidecar and --show / --reference (issue 15)
# --------------------------------------------------------------------------------------------



@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "", "abc"])
@pytest.mark.parametrize("which", ["current", "reference"])
def test_non_finite_or_text_value_is_malformed_and_names_the_row(files, run_cli, cell, which):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows())
    target = cur if which == "current" else ref
    lines = target.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")  # the mpjpe row (no quoted fields in these rows)
    cells[header.index("value")] = cell
    target.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"mlp/default/0/mocap-mini/0/1/mpjpe/action_mean \(line 2\)"):
        compare(cur, ref, load_tolerances(ref))
    code, out, err = run_cli("check", cur, "--reference", ref)
    assert_one_line_error(code, err, target.name, "mpjpe/action_mean", "finite")
    assert "better" not in out


def test_identical_error_rows_are_same(files, run_cli):
    tmp, _ = files

    def with_error_row():
        df = _rows()
        df.loc[0, ["status", "error", "value"]] = ["error", "window longer than every sequence", float("nan")]
        return df

    ref = write_rows(tmp / "ref_err.csv", with_error_row())
    cur = write_rows(tmp / "cur_err.csv", with_error_row())
    verdicts = {v.key["metric"]: v.verdict for v in compare(cur, ref, load_tolerances(ref))}
    assert verdicts == {"mpjpe": "same", "p_mpjpe": "same", "pck150": "same"}
    assert run_cli("check", cur, "--reference", ref)[0] == 0
    # an error row in the current file only is a new failure, in the reference only a fix
    fixed = {v.key["metric"]: v.verdict for v in compare(tmp / "ref.csv", ref, load_tolerances(ref))}
    assert fixed["mpjpe"] == "fixed"
    verdicts = {v.key["metric"]: v.verdict for v in compare(cur, tmp / "ref.csv", load_tolerances(ref))}
    assert verdicts["mpjpe"] == "new-failure"


def test_unknown_status_is_malformed(files, run_cli):
    tmp, ref = files
    df = _rows()
    df.loc[1, "status"] = "maybe"
    cur = write_rows(tmp / "cur.csv", df)
    code, _, err = run_cli("check", cur, "--reference", ref)
    assert_one_line_error(code, err, "cur.csv", "p_mpjpe/action_mean", "status", "maybe")


@pytest.mark.parametrize("option, value", [("--tol-mm", "-1"), ("--tol-mm", "nan"), ("--tol-mm", "inf"),
                                           ("--tol-rel", "nan"), ("--tol-rel", "-0.5"), ("--tol-rel", "inf")])
def test_tolerance_options_must_be_finite_and_non_negative(files, run_cli, option, value):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows((51.0, 40.0, 90.0)))  # would be 'worse' at the default tolerance
    code, out, err = run_cli("check", cur, "--reference", ref, option, value)
    assert_one_line_error(code, err, option)
    assert "PASS" not in out
    with pytest.raises(ConfigError, match=option):
        load_tolerances(ref, **{option[2:].replace("-", "_"): float(value)})


@pytest.mark.parametrize("spec", ["mpjpe:1e999mm", "mpjpe:-1mm", "mpjpe:nan", "inf%"])
def test_tol_specs_must_be_finite_and_non_negative(files, run_cli, spec):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows())
    code, _, err = run_cli("check", cur, "--reference", ref, "--tol", spec)
    assert_one_line_error(code, err, "Could not parse tolerance")
    with pytest.raises(ConfigError):
        parse_tolerance(spec)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x81binary\x00", b"[tolerances]\nmpjpe = nan\n",
                                     b"[tolerances]\nmpjpe = -1\n", b"tolerances = 5\n", b"[tolerances\n"])
def test_bad_sidecar_is_one_line_naming_it(files, run_cli, content):
    tmp, ref = files
    ref.with_suffix(".toml").write_bytes(content)
    cur = write_rows(tmp / "cur.csv", _rows())
    code, _, err = run_cli("check", cur, "--reference", ref)
    assert_one_line_error(code, err, "ref.toml")
    with pytest.raises(DataError, match="ref.toml"):
        load_tolerances(ref)


def test_show_accepts_only_its_choices(files, run_cli):
    tmp, ref = files
    cur = write_rows(tmp / "cur.csv", _rows((51.0, 40.0, 90.0)))
    code, _, err = run_cli("check", cur, "--reference", ref, "--show", "everything")
    assert code == 2 and "everything" in err
    def table_rows(out):  # body rows of the rich table (columns may be elided on a narrow terminal)
        return [line for line in out.splitlines() if line.startswith("│ mlp")]

    code, out, _ = run_cli("check", cur, "--reference", ref, "--show", "changed")
    assert code == 1 and len(table_rows(out)) == 1  # only the value that moved
    code, out, _ = run_cli("check", cur, "--reference", ref, "--show", "all")
    assert code == 1 and len(table_rows(out)) == 3


def test_reference_help_names_no_machine_path(run_cli):
    import liftbench

    package_parent = str(Path(liftbench.__file__).resolve().parent.parent)
    code, out, _ = run_cli("check", "--help")
    flat = "".join(out.replace("│", "").split())  # undo rich's wrapping and boxes
    assert code == 0 and "".join(package_parent.split()) not in flat
    assert "baselines/reference/results.csv" in flat and "<all|changed>" in flat


def test_default_reference_is_the_shipped_one(run_cli, monkeypatch, tmp_path):
    from liftbench import resources

    shipped = Path(resources.__file__).resolve().parent.parent / "baselines" / "reference" / "results.csv"
    code, out, _ = run_cli("check", shipped, "--show", "changed")
    assert code == 0 and "PASS" in out
    # an installed wheel: the packaged copy is the default, and --update refuses to rewrite it
    packaged = tmp_path / "_shipped"
    (packaged / "baselines" / "reference").mkdir(parents=True)
    rows = _rows()
    write_rows(packaged / "baselines" / "reference" / "results.csv", rows)
    monkeypatch.setattr(resources, "_packaged_root", lambda: packaged)
    cur = write_rows(tmp_path / "cur.csv", _rows((60.0, 40.0, 90.0)))
    code, out, _ = run_cli("check", cur)
    assert code == 1 and "worse" in out and str(packaged) in out.replace("\n", "")
    code, _, err = run_cli("check", cur, "--update")
    assert_one_line_error(code, err, "--reference")
    rewritten = write_rows(tmp_path / "again.csv", rows).read_text()
    assert (packaged / "baselines" / "reference" / "results.csv").read_text() == rewritten


def test_update_refuses_a_malformed_results_file(files, run_cli):
    tmp, ref = files
    before = ref.read_text()
    cur = write_rows(tmp / "cur.csv", _rows((float("nan"), 40.0, 90.0)))
    code, _, err = run_cli("check", cur, "--reference", ref, "--update")
    assert_one_line_error(code, err, "cur.csv")
    assert ref.read_text() == before
    code, _, err = run_cli("check", cur, "--reference", tmp / "new_ref.csv", "--update")
    assert_one_line_error(code, err, "cur.csv")
    assert not (tmp / "new_ref.csv").exists()
