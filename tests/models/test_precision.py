"""train.precision: bf16 autocast trains (exercised on CPU at a tiny size), tf32 is refused off CUDA."""

from __future__ import annotations

import pytest
import torch

from liftbench.config import resolve_config
from liftbench.errors import ConfigError
from liftbench.pipeline import train_run

TINY = {"data.name": "tiny", "train.epochs": 1, "train.batch_size": 16}


@pytest.mark.parametrize("model,width", [("mlp", {"hidden_size": 16}), ("seq2seq", {"hidden_size": 16, "seq_len": 3})])
def test_bf16_autocast_trains_and_changes_the_numbers(tmp_path, model, width):
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = resolve_config(model, options=TINY, overrides={**width, "precision": precision})
        out = train_run(cfg, out_dir=tmp_path, device="cpu")
        assert out.state.finished
        loss = out.state.history[-1]["train_loss"]
        assert loss == loss and loss < float("inf")
        runs[precision] = torch.load(out.run_dir / "checkpoint.pt", weights_only=True)["model"]
    # weights stay float32 (autocast changes the compute, not the parameters) and differ from the fp32 run
    for name, w in runs["bf16"].items():
        assert w.dtype == runs["fp32"][name].dtype
    assert any(not torch.equal(runs["bf16"][n], runs["fp32"][n])
               for n in runs["fp32"] if runs["fp32"][n].is_floating_point())


def test_tf32_needs_cuda(tmp_path):
    cfg = resolve_config("mlp", options=TINY, overrides={"hidden_size": 8, "precision": "tf32"})
    with pytest.raises(ConfigError, match="precision=tf32 needs a CUDA device"):
        train_run(cfg, out_dir=tmp_path, device="cpu")
