"""Suite expansion, range parsing, summary statistics and an end-to-end tiny suite."""

import math

import numpy as np
import pandas as pd
import pytest

from liftbench.errors import ConfigError, UnknownNameError
from liftbench.results import rows_frame
from liftbench.runner import run_suite, summarize, suite_dir, trial_status
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
    from liftbench.report import render_suite
    from rich.console import Console
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


def test_shipped_suites_found_beside_the_package_or_under_the_install_prefix(tmp_path):
    from liftbench.suites import SUITE_DIR, shipped_suite_dir

    assert (SUITE_DIR / "ablation.toml").is_file()  # this checkout (editable install)
    # A wheel install: no configs/ beside the package, the data-files copy under <prefix>/share.
    share = tmp_path / "prefix" / "share" / "liftbench" / "configs" / "suites"
    share.mkdir(parents=True)
    (share / "ablation.toml").write_text((SUITE_DIR / "ablation.toml").read_text())
    found = shipped_suite_dir(package_root=tmp_path / "site-packages", prefix=str(tmp_path / "prefix"))
    assert found == share and load_suite("ablation", suite_dir=found).name == "ablation"


def test_pyproject_ships_every_config_as_data_files():
    """pyproject's data-files globs cover every configs/ TOML (a non-editable wheel then carries them to
    <prefix>/share/liftbench, where ``shipped_suite_dir`` looks)."""
    import glob
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {}
    for target, patterns in data_files.items():
        for pattern in patterns:
            for f in glob.glob(str(root / pattern)):
                shipped[Path(f).relative_to(root).as_posix()] = target
    configs = sorted(p.relative_to(root).as_posix() for p in (root / "configs").rglob("*.toml"))
    assert len(configs) >= 7 and sorted(shipped) == configs
    for rel, target in shipped.items():
        assert f"share/liftbench/{rel}" == f"{target}/{Path(rel).name}", rel  # same relative layout
