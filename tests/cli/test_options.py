"""Options that do not apply, choices checked at parse time, help texts."""

from __future__ import annotations

import typing

import pytest
from fixtures.cli import assert_one_line_error

from liftbench.train import CHECKPOINT

# Whatever a test gives on top, a regression (the value accepted) trains for seconds, not hours.
QUICK = ["--data", "tiny", "--set", "epochs=1", "--set", "hidden_size=8", "--set", "batch_size=16", "--device", "cpu"]
TRAIN_ARGS = ["--data", "tiny", "--epochs", "1", "--set", "hidden_size=8", "--set", "batch_size=16", "--set", "lr=1e-3",
              "--device", "cpu"]


# ------------------------------------------------------------------ item 11: options


def test_ray_only_options_with_the_local_executor_are_errors(run_cli, tmp_path):
    for args in (["--cpus-per-trial", "2"], ["--gpus-per-trial", "0"], ["--ray-address", "auto"]):
        code, out, err = run_cli("run", "ablation", "--out", tmp_path, *QUICK, *args)
        assert_one_line_error(code, err, args[0], "--executor ray only")
        assert out == "" and not any(tmp_path.iterdir())  # refused before any work
    code, _, err = run_cli("run", "ablation", "--executor", "ray", "--cpus-per-trial", "nan", "--out", tmp_path)
    assert_one_line_error(code, err, "--cpus-per-trial must be a finite number > 0")


@pytest.mark.parametrize("args,needle", [
    (["run", "ablation", "--executor", "slurm"], "--executor"),
    (["train", "mlp", "--device", "gpu"], "--device 'gpu' is not a device"),
    (["train", "mlp", "--device", "cuda:x"], "--device 'cuda:x' is not a device"),
    (["compare", "nonexistent.csv", "--metric", "jitter"], "Unknown metric"),
    (["compare", "nonexistent.csv", "--metric", "mpjp"], "Did you mean: mpjpe"),
    (["compare", "nonexistent.csv", "--paper", "hossain2019"], "Did you mean: hossain2018"),
])
def test_choices_are_checked_when_parsing(run_cli, args, needle):
    code, out, err = run_cli(*args)
    assert code == 2 and "Traceback" not in err and out == "", (code, out, err)
    assert needle in " ".join(err.replace("│", " ").split()), err


def test_executor_choices_are_the_registered_executors():
    from liftbench.cli.suite_cmd import ExecOpt
    from liftbench.runner.executors import EXECUTORS

    assert typing.get_args(typing.get_args(ExecOpt)[0]) == tuple(EXECUTORS)


def test_metric_aliases_accepted():
    from liftbench.cli.model_cmd import _check_metric

    assert _check_metric("p2") == "p_mpjpe" and _check_metric("mpjpe") == "mpjpe"


def test_help_texts(run_cli):
    def helptext(*cmd):
        code, out, _ = run_cli(*cmd, "--help")
        assert code == 0
        return " ".join(out.replace("│", " ").split())

    assert "--install-completion" in helptext()  # shell completion is on
    noise = helptext("noise")
    assert "same suite as `liftbench run noise`" in noise
    assert "default_preset: smoke" in noise  # --preset shows its default
    assert "same as the `noise`, `seqlen` and `jitter` commands" in helptext("run")
    assert "Results root" in helptext("train") and "OUT/runs/" in helptext("train")
    assert "--results-dir" in helptext("evaluate") and "--out" not in helptext("evaluate")
    bench = helptext("bench")
    assert "--csv" in bench and "--out" not in bench


def test_bench_csv_checked_before_measuring(run_cli, tmp_path):
    code, out, err = run_cli("bench", "--csv", tmp_path)
    assert_one_line_error(code, err, f"--csv {tmp_path} is a directory")
    code, out, err = run_cli("bench", "--out", tmp_path / "x.csv")
    assert code == 2 and "--out" in err


def test_train_out_is_the_results_root_shared_with_suites(run_cli, tmp_path):
    """train --out means what a suite's --out means: the run directory is OUT/runs/<run_id>."""
    code, out, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("mlp-") and (run_dir / CHECKPOINT).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
