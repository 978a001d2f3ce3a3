"""Trained tiny runs shared by the command-line tests (trained once per session)."""

from __future__ import annotations

import pytest

from liftbench.config import resolve_config
from liftbench.pipeline import train_run

TINY = {"data.name": "tiny", "hidden_size": 8, "epochs": 1, "batch_size": 16, "lr": 1e-3}


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """A finished and an interrupted tiny MLP run, both in OUT/runs/<run_id> (copied by each test)."""
    out = tmp_path_factory.mktemp("hardening")
    cfg = resolve_config("mlp", options=TINY)
    done = train_run(cfg, out_dir=out / "done" / "runs", device="cpu")
    cfg2 = resolve_config("mlp", options={**TINY, "epochs": 2})
    part = train_run(cfg2, out_dir=out / "part" / "runs", device="cpu", stop_after_steps=2)
    assert done.state.finished and not part.state.finished
    return {"done": done.run_dir, "part": part.run_dir}
