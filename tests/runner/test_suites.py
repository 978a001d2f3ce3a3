"""Suite expansion, range parsing, summary statistics and an end-to-end tiny suite."""

import math

import numpy as np
import pandas as pd
import pytest
from fixtures.cli import assert_one_line_error

from liftbench.errors import ConfigError, DataError, UnknownNameError
from liftbench.results import rows_frame
from liftbench.runner.suite import run_suite, suite_dir, summarize
from liftbench.runner.trial import trial_status
from liftbench.suites import expand, load_suite, parse_range, suite_files


def test_parse_range():
    assert parse_range("5..20", 5) == [5, 10, 15, 20]
    assert parse_range("5..20", 2.5) == [5, 7.5, 10, 12.5, 15, 17.5, 20]
    assert parse_range("0,5,10") == [0, 5, 10]
    assert parse_range("10,0,10") == [0, 10]
    assert parse_range("7") == [7]
    for bad, step in (("20..5", 5), ("a..b", 5), ("5..20", 0), ("5..20", None), ("", None), ("x", None)):
        with pytest.raises(ConfigError):
            parse_range(bad, step)


def test_all_shipped_suites_expand():
    names = suite_files()
    assert {"ablation", "noise", "seqlen", "jitter"} <= set(names)
    for name in names:
        suite = load_suite(name)
        for preset in suite.presets:
            assert expand(suite, preset)


def test_ablation_expansion_counts_and_stable_hashes():
    suite = load_suite("ablation")
    specs = expand(suite, "smoke", seeds=3)
    assert len(specs) == 7 * 3
    assert len({s.run_id for s in specs}) == 21
    again = expand(load_suite("ablation"), "smoke", seeds=3)
    assert [s.run_id for s in specs] == [s.run_id for s in again]
    by = {(s.variant, s.seed): s.config for s in specs}
    assert by[("no_dropout", 0)].model_params["dropout"] == 0.0
    assert by[("no_layer_norm_no_dropout", 2)].model_params["layer_norm"] is False
    assert by[("full", 0)].model_params["hidden_size"] == 128  # smoke preset
    assert by[("mlp", 0)].model == "mlp" and by[("mlp", 0)].model_params["hidden_size"] == 256
    paper = {s.variant: s.config for s in expand(suite, "paper")}
    assert paper["full"].model_params["hidden_size"] == 1024 and paper["full"].resolved_train().lr == 1e-5
    over = expand(suite, "smoke", overrides={"train.epochs": 1})
    assert all(s.config.resolved_train().epochs == 1 for s in over)
    assert over[0].run_id != specs[0].run_id


def test_seqlen_axis_and_bad_inputs():
    specs = expand(load_suite("seqlen"), "smoke", axis_values=[2, 3])
    assert [s.config.model_params["seq_len"] for s in specs] == [2, 3]
    with pytest.raises(ConfigError, match="preset"):
        expand(load_suite("noise"), "huge")
    with pytest.raises(UnknownNameError, match="Did you mean: noise"):
        load_suite("noize")


def test_summary_statistics_against_hand_computation():
    rows = rows_frame([{"suite": "s", "model": "mlp", "variant": "v", "seed": seed, "dataset": "d", "keypoints": "gt",
                        "train_noise": 0, "test_noise": 0, "seq_len": 1, "metric": "mpjpe", "slice_type": "all",
                        "slice": "action_mean", "value": v, "unit": "mm", "status": "ok"}
                       for seed, v in enumerate([10.0, 12.0, 14.0])])
    s = summarize(rows)
    assert len(s) == 1
    r = s.iloc[0]
    assert r["mean"] == pytest.approx(12.0) and r["sd"] == pytest.approx(2.0) and r["n"] == 3
    half = 4.302652729911275 * 2.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert r["ci95_low"] == pytest.approx(12 - half) and r["ci95_high"] == pytest.approx(12 + half)


@pytest.mark.slow
def test_end_to_end_tiny_suite_is_resumable(tmp_path):
    suite = load_suite("noise")
    over = {"data.name": "tiny", "train.epochs": 2, "model.hidden_size": 8, "train.batch_size": 16}
    specs = expand(suite, "smoke", seeds=2, overrides=over, test_noise=[0.0, 5.0])
    directory = suite_dir(tmp_path, "noise", "smoke", "tiny")
    rows, summary, results = run_suite(specs, tmp_path, directory, device="cpu")
    assert all(r.trained and not r.error for r in results)
    for name in ("results.csv", "summary.csv", "manifest.json"):
        assert (directory / name).exists()
    assert set(pd.to_numeric(rows["test_noise"]).unique()) == {0.0, 5.0}
    assert set(rows["seed"].astype(int)) == {0, 1}
    assert (summary["n"] == 2).all()
    assert all(trial_status(s, tmp_path) == "done" for s in specs)
    # running again trains and evaluates nothing and gives the same rows
    rows2, _, results2 = run_suite(specs, tmp_path, directory, device="cpu")
    assert not any(r.trained or r.evaluated for r in results2)
    key = ["run_id", "metric", "slice_type", "slice", "test_noise"]
    a = rows.sort_values(key)["value"].to_numpy()
    b = rows2.sort_values(key)["value"].to_numpy()
    assert np.allclose(a, b)
    from rich.console import Console

    from liftbench.report.render import render_suite
    paths = render_suite(directory, Console(file=open(tmp_path / "out.txt", "w")))
    assert (directory / "report.md").exists() and any(p.suffix == ".png" for p in paths)


@pytest.mark.slow
def test_failed_trial_gives_error_rows_and_others_finish(tmp_path):
    suite = load_suite("ablation")
    over = {"data.name": "tiny", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}
    specs = expand(suite, "smoke", overrides=over, variants=["full", "mlp"])
    # make the seq2seq trial fail: a window longer than every training sequence
    import dataclasses
    bad_cfg = dataclasses.replace(specs[0].config, model_params={**specs[0].config.model_params, "seq_len": 500})
    specs[0] = dataclasses.replace(specs[0], config=bad_cfg)
    rows, summary, results = run_suite(specs, tmp_path, tmp_path / "suite", device="cpu")
    assert results[0].error and "window" in results[0].error
    assert not results[1].error
    err = rows[rows["status"] == "error"]
    assert len(err) == 1 and err.iloc[0]["variant"] == "full"
    assert (rows[rows["status"] == "ok"]["variant"] == "mlp").all()


def test_shipped_suites_come_from_the_packaged_copy_when_installed(tmp_path, monkeypatch):
    from pathlib import Path

    from liftbench import resources
    from liftbench.suites import shipped_suite_dir

    repo_suites = Path(resources.__file__).resolve().parent.parent / "configs" / "suites"
    assert resources.from_source_tree() and shipped_suite_dir() == repo_suites  # this checkout (editable)
    packaged = tmp_path / "_shipped"
    (packaged / "configs" / "suites").mkdir(parents=True)
    text = (repo_suites / "noise.toml").read_text().replace('name = "noise"', 'name = "packaged_noise"')
    (packaged / "configs" / "suites" / "noise.toml").write_text(text)
    monkeypatch.setattr(resources, "_packaged_root", lambda: packaged)
    assert not resources.from_source_tree()
    assert set(suite_files()) == {"noise"} and load_suite("noise").name == "packaged_noise"
    with pytest.raises(DataError, match="baselines"):  # a broken install is one line, not a crash
        resources.shipped_path("baselines")


# --------------------------------------------------------------------------------------------
# Malformed suite files and ranges: one line naming the file/option and key, exit 2, before any work
# --------------------------------------------------------------------------------------------

SUITE_HEAD = """name = "mini"
version = 1
description = "test suite"
default_preset = "smoke"
test_noise = [0.0, 5.0]
"""
SUITE_VARIANTS = """
[[variants]]
name = "full"
model = "seq2seq"
params = { dropout = 0.1 }

[[variants]]
name = "mlp"
model = "mlp"
"""
SUITE_PRESETS = """
[presets.smoke.all.train]
epochs = 2

[presets.smoke.seq2seq.model]
hidden_size = 16
"""
VALID_SUITE = SUITE_HEAD + SUITE_VARIANTS + SUITE_PRESETS




def test_valid_suite_file_loads_and_expands(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(VALID_SUITE)
    suite = load_suite(path)
    assert (suite.name, suite.version, suite.test_noise, suite.presets) == ("mini", 1, (0.0, 5.0), ("smoke",))
    by = {s.variant: s.config for s in expand(suite)}
    assert by["full"].model_params["hidden_size"] == 16 and by["full"].model_params["dropout"] == 0.1
    assert by["mlp"].resolved_train().epochs == 2


def test_preset_under_a_model_alias_applies(tmp_path):
    from liftbench.models import LIFTERS

    aliases = [a for a in LIFTERS.names(include_aliases=True) if a not in LIFTERS.names()
               and LIFTERS.canonical(a) == LIFTERS.canonical("seq2seq")]
    if not aliases:
        pytest.skip("the seq2seq lifter has no alias")
    path = tmp_path / "alias.toml"
    path.write_text(VALID_SUITE.replace("[presets.smoke.seq2seq.model]", f'[presets.smoke."{aliases[0]}".model]'))
    assert {s.variant: s.config for s in expand(load_suite(path))}["full"].model_params["hidden_size"] == 16


@pytest.mark.parametrize("old, new, needles", [
    ("version = 1", 'version = "abc"', ["version", "whole number"]),
    ("version = 1", "version = true", ["version"]),
    ("version = 1", "version = 0", ["version"]),
    ("version = 1", "version = 1.5", ["version"]),
    ('name = "mini"', "name = 5", ["'name'"]),
    ('name = "mini"', 'name = "../../escape"', ["name"]),
    ('description = "test suite"', "description = [1]", ["'description'"]),
    ("test_noise = [0.0, 5.0]", 'test_noise = ["a"]', ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = [0.0, nan]", ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = [inf]", ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = [-1.0]", ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = 5", ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = []", ["test_noise"]),
    ("test_noise = [0.0, 5.0]", "test_noise = [true]", ["test_noise"]),
    (SUITE_VARIANTS, "variants = 5\n", ["variants"]),
    (SUITE_VARIANTS, 'variants = ["full"]\n', ["variants"]),
    (VALID_SUITE, SUITE_HEAD + "presets = [1, 2]\n" + SUITE_VARIANTS, ["presets"]),
    (VALID_SUITE, SUITE_HEAD + 'presets = { smoke = 3 }\n' + SUITE_VARIANTS, ["presets.smoke"]),
    ("test_noise = [0.0, 5.0]", "metrics = [1]", ["metrics"]),
    ("test_noise = [0.0, 5.0]", 'axis = { key = "model.seq_len", values = [2, nan] }', ["axis.values"]),
    ("test_noise = [0.0, 5.0]", 'axis = { key = "model.seq_len", values = 3 }', ["axis.values"]),
    ("test_noise = [0.0, 5.0]", "axis = { values = [2] }", ["[axis]"]),
    ('default_preset = "smoke"', 'default_preset = "huge"', ["default_preset", "huge"]),
    ("epochs = 2", "epochs = nan", ["presets.smoke.all.train.epochs", "finite"]),
    ("hidden_size = 16", "hidden_size = inf", ["presets.smoke.seq2seq.model.hidden_size", "finite"]),
    ("hidden_size = 16", "hidden_size = { a = 1 }", ["presets.smoke.seq2seq.model.hidden_size"]),
    ("hidden_size = 16", "hidden_size = 1979-05-27", ["hidden_size", "date"]),
    ("hidden_size = 16", "hidden_size = [1.0, nan]", ["hidden_size", "finite"]),
    ("[presets.smoke.all.train]", "[presets.smoke.all.optimizer]", ["optimizer", "model, train, data"]),
    ("[presets.smoke.seq2seq.model]", "[presets.smoke.seq2sq.model]", ["seq2sq"]),
    ("params = { dropout = 0.1 }", "params = { dropout = nan }", ["variant 'full'", "dropout", "finite"]),
    ("params = { dropout = 0.1 }", "params = 5", ["variant 'full'", "table"]),
    ("params = { dropout = 0.1 }", "extra = 1", ["[[variants]]"]),
    ('model = "mlp"', "model = 5", ["[[variants]]"]),
    ('model = "mlp"', 'model = "mlpp"', ["mlpp"]),
    ('name = "mlp"', 'name = "full"', ["unique"]),
])
def test_bad_suite_values_are_one_line_errors(tmp_path, run_cli, old, new, needles):
    assert VALID_SUITE.count(old) >= 1
    path = tmp_path / "bad_suite.toml"
    path.write_text(VALID_SUITE.replace(old, new, 1))
    with pytest.raises((ConfigError, UnknownNameError)):
        load_suite(path)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out", "--device", "cpu")
    assert_one_line_error(code, err, *needles)
    if "mlpp" not in needles and "seq2sq" not in needles:  # unknown model names list the registry instead
        assert "bad_suite.toml" in err
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", b"\x00\x01\x02\x03" * 64,
                                     b"name = \"ok\"\x00version = 1", b"[[variants]\n"])
def test_binary_or_broken_suite_file_is_one_line(tmp_path, run_cli, content):
    path = tmp_path / "binary.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="binary.toml"):
        load_suite(path)
    code, _, err = run_cli("run", path, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "binary.toml")


def test_suite_built_in_code_is_validated_on_expand(tmp_path):
    import dataclasses

    path = tmp_path / "mini.toml"
    path.write_text(VALID_SUITE)
    suite = load_suite(path)
    raw = {**suite.raw, "presets": {"smoke": {"all": {"train": {"lr": float("nan")}}}}}
    with pytest.raises(ConfigError, match="presets.smoke.all.train.lr"):
        expand(dataclasses.replace(suite, raw=raw))
    for kwargs, match in (({"test_noise": [float("nan")]}, "test noise"), ({"test_noise": [-5.0]}, "test noise"),
                          ({"seeds": 0}, "--seeds"), ({"seed_offset": -1}, "seed_offset")):
        with pytest.raises(ConfigError, match=match):
            expand(suite, **kwargs)
    seqlen = load_suite("seqlen")
    with pytest.raises(ConfigError, match="finite"):
        expand(seqlen, axis_values=[2, float("inf")])


@pytest.mark.parametrize("text, step, kwargs, match", [
    ("0..inf", 5.0, {}, "finite"),
    ("inf", None, {}, "finite"),
    ("nan", None, {}, "finite"),
    ("0,nan,5", None, {}, "finite"),
    ("-inf..0", 5.0, {}, "finite"),
    ("1e999", None, {}, "finite"),
    ("5..20", float("nan"), {}, "--step"),
    ("5..20", float("inf"), {}, "--step"),
    ("5..20", -5.0, {}, "--step"),
    ("0..1e9", 1.0, {}, "at most"),
    ("-5..5", 5.0, {"minimum": 0.0}, ">= 0"),
    ("-1", None, {"minimum": 0.0}, ">= 0"),
    ("2.5", 1.0, {"minimum": 1, "integer": True}, "whole"),
    ("0", 1.0, {"minimum": 1, "integer": True}, ">= 1"),
])
def test_parse_range_rejects_non_finite_and_out_of_range(text, step, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        parse_range(text, step, **kwargs)


def test_parse_range_in_range_values():
    assert parse_range("2..5", 1.0, "--lengths", minimum=1, integer=True) == [2, 3, 4, 5]
    assert parse_range("0,2.5", None, minimum=0.0) == [0.0, 2.5]
    assert len(parse_range("1..1000", 1.0)) == 1000  # the cap is inclusive


@pytest.mark.parametrize("args, needles", [
    (["noise", "--sigma", "0..inf"], ["--sigma", "finite"]),
    (["noise", "--sigma", "nan"], ["--sigma", "finite"]),
    (["noise", "--sigma", "5..20", "--step", "nan"], ["--step"]),
    (["noise", "--sigma", "-5"], ["--sigma", ">= 0"]),
    (["seqlen", "--lengths", "2..inf"], ["--lengths", "finite"]),
    (["seqlen", "--lengths", "-3"], ["--lengths"]),
    (["seqlen", "--lengths", "2.5"], ["--lengths", "whole"]),
    (["seqlen", "--lengths", "2..10000000"], ["--lengths", "at most"]),
])
def test_suite_command_ranges_fail_before_any_work(tmp_path, run_cli, args, needles):
    code, _, err = run_cli(*args, "--out", tmp_path / "out", "--device", "cpu")
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()
