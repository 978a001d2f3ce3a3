"""Training you can watch without a terminal: plain progress lines at a fixed interval (hand-computed rate
and ETA on a fake clock), one line per epoch, a real non-TTY run whose log shows them, and tables rendered
at a readable width when stdout is a file ($COLUMNS honoured)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from liftbench.cli.progress import LogTrainProgress, duration, progress_interval, train_progress
from liftbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_at_the_interval_with_hand_computed_rate_and_eta():
    clock, lines = Clock(), []
    log = LogTrainProgress("run", interval_s=30.0, clock=clock, emit=lines.append)
    log.on_train_start(epochs=2, steps_per_epoch=100, epoch=0, step=0)
    assert lines == ["run: training 2 epoch(s) of 100 steps from the start; a progress line every 30 s"]
    for step in range(1, 21):  # one step every 4 s: 20 steps = 80 s
        clock.now += 4.0
        log.on_step(0, step, loss=0.5, lr=1e-3)
    progress = lines[1:]
    assert len(progress) == 2  # at 32 s (step 8) and at 64 s (step 16)
    # step 8: 8 steps in 32 s = 0.25 steps/s; 192 steps left at 0.25/s = 768 s = 12m48s
    assert progress[0] == "run epoch 1/2 step 8/100 (4.0 %) loss 0.5 lr 1.00e-03 0.25 steps/s ETA 12m48s"
    assert progress[1].startswith("run epoch 1/2 step 16/100 (8.0 %)") and progress[1].endswith("ETA 12m16s")
    log.on_epoch_end(1, {"train_loss": 0.25, "test_mpjpe": 81.25, "seconds": 400.0})
    assert lines[-1] == "run epoch 1: train loss 0.25, test MPJPE 81.2 mm (6m40s)"


def test_a_resumed_run_counts_its_eta_from_where_it_resumed():
    clock, lines = Clock(), []
    log = LogTrainProgress("r", interval_s=10.0, clock=clock, emit=lines.append)
    log.on_train_start(epochs=10, steps_per_epoch=10, epoch=9, step=5)  # 5 steps left
    assert "from epoch 10 step 5" in lines[0]
    clock.now += 10.0
    log.on_step(9, 6, loss=1.0, lr=1e-4)  # 1 step in 10 s: 4 steps left = 40 s
    assert lines[-1].endswith("0.10 steps/s ETA 40 s")


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv("LIFTBENCH_PROGRESS_SECONDS", raising=False)
    assert progress_interval() == 30.0
    monkeypatch.setenv("LIFTBENCH_PROGRESS_SECONDS", "5")
    assert progress_interval() == 5.0
    for bad in ("0", "nan", "soon"):
        monkeypatch.setenv("LIFTBENCH_PROGRESS_SECONDS", bad)
        with pytest.raises(ConfigError, match="LIFTBENCH_PROGRESS_SECONDS"):
            progress_interval()
    assert duration(59.4) == "59 s" and duration(3600 * 2 + 180) == "2h03m" and duration(float("inf")) == "?"


def test_without_a_terminal_the_train_progress_is_plain_lines():
    from liftbench.cli.progress import RichTrainProgress, make_progress

    progress = make_progress()  # under pytest stdout is captured: no terminal
    assert progress.disable and isinstance(train_progress(progress, "x"), LogTrainProgress)
    progress.disable = False
    assert isinstance(train_progress(progress, "x"), RichTrainProgress)


def _run(args: list[str], tmp_path: Path, **env: str) -> str:
    """``liftbench <args>`` in a fresh process with stdout (and stderr) going to a file, as ``> log.txt``."""
    code = "import sys, fixtures.tiny; from liftbench.cli import main; sys.exit(main(sys.argv[1:]))"
    log = tmp_path / "log.txt"
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERM")}
    environ |= {"PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}", **env}
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-c", code, *args], stdout=fh, stderr=subprocess.STDOUT, env=environ,
                              cwd=tmp_path, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text
    return text


def test_a_logged_training_run_shows_progress_lines(tmp_path):
    text = _run(["train", "mlp", "--data", "tiny", "--epochs", "1", "--device", "cpu", "--out", "out",
                 "--set", "hidden_size=16", "--set", "batch_size=32"], tmp_path, LIFTBENCH_PROGRESS_SECONDS="0.01")
    lines = text.splitlines()
    assert "\x1b[" not in text  # no terminal escapes in a log
    steps = [ln for ln in lines if " steps/s ETA " in ln]
    assert steps and all(" step " in ln and " loss " in ln and " lr " in ln for ln in steps)
    assert sum(" epoch 1: train loss " in ln for ln in lines) == 1
    assert "a progress line every 0.01 s" in text


def test_tables_in_a_log_are_rendered_wide(tmp_path):
    wide = _run(["models"], tmp_path)
    assert 80 < max(len(ln) for ln in wide.splitlines()) <= 160
    narrow = _run(["models"], tmp_path, COLUMNS="100")
    assert max(len(ln) for ln in narrow.splitlines()) <= 100
