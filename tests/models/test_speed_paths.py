"""Every registered lifter that declares a speed path (``Lifter.speed_path``, ``liftbench.fast``) computes
its readable model's function through it: the stacked K = 1 training step gives the module's loss and
gradients, and the fast evaluator gives the module's per-frame predictions. Parametrised over the registry,
so a plug-in's speed path gets these tests for free. (Bitwise packing and per-toggle checks of the built-in
stacks are in ``tests/runner/test_packing.py`` and ``test_fastpath.py``.)"""

from __future__ import annotations

import pytest
import torch
from fixtures.lifters import (
    one_torch_thread,  # noqa: F401  (the fixture, used by pytestmark)
    small_params,
)

from liftbench import fast
from liftbench.data.windows import WindowSpec, clip_plan
from liftbench.fast.stack import FunctionalStack, stack_lifters
from liftbench.models import LIFTERS, NormStats, create_lifter

WITH_SPEED_PATH = [n for n in LIFTERS.names() if LIFTERS.get(n).speed_path]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(name: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_lifter(name, **small_params(name, dropout=0.0, drop_path=0.0)).to(dtype)
    with torch.no_grad():  # off the init, so zero biases or unit gains cannot hide a mix-up
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _stats(rep, dtype=torch.float64) -> NormStats:
    d = torch.arange(rep.output_dim, dtype=dtype)
    return NormStats(torch.zeros(rep.input_dim, dtype=dtype), torch.ones(rep.input_dim, dtype=dtype),
                     torch.sin(d), 2.0 + 0.1 * d)


def test_the_built_in_speed_paths_are_covered():
    assert {"mlp", "seq2seq", "tcn"} <= set(WITH_SPEED_PATH)


@pytest.mark.parametrize("name", WITH_SPEED_PATH)
def test_stacked_training_step_equals_the_module(name):
    """float32: the stacks keep float32 leaves; tolerances as the built-in stacks' own tests."""
    model = _model(name, torch.float32).train()
    stack = stack_lifters([model], torch.device("cpu"))
    if isinstance(stack, FunctionalStack):
        pytest.skip(f"{name}'s speed path has no stacked training (it trains through the module itself)")
    rep, window = model.contract.representation, model.contract.window
    t_out = model.window if window.targets == "window" else 1
    x = torch.randn(1, 6, model.window, rep.input_dim)
    y = torch.randn(1, 6, t_out, rep.output_dim)
    stats = _stats(rep, torch.float32)
    fast_loss = stack.losses(x, y, [stats], [torch.Generator().manual_seed(1)])  # (1,)
    fast_loss.sum().backward()
    plain_loss = model.loss(model(x[0]), y[0], stats)
    plain_loss.backward()
    assert torch.allclose(fast_loss[0], plain_loss, rtol=1e-5, atol=1e-6)
    for pname, p in model.named_parameters():
        if p.requires_grad:
            grad = stack.flat[pname].grad[0, : p.numel()].view_as(p)
            assert torch.allclose(grad, p.grad, rtol=1e-4, atol=1e-6), pname


@pytest.mark.parametrize("name", WITH_SPEED_PATH)
def test_fast_evaluation_equals_the_module(name):
    model = _model(name).eval()
    rep, spec = model.contract.representation, model.contract.window
    segments = [(0, 1), (1, 7), (8, 30), (38, 13)]  # (first row, length): shorter and longer than the window
    frames = sum(n for _, n in segments)
    inputs = torch.randn(frames, rep.input_dim, dtype=torch.float64)
    rows = torch.arange(frames)
    first = torch.cat([torch.full((n,), a) for a, n in segments])
    last = first + torch.cat([torch.full((n,), n - 1) for _, n in segments])
    offsets = torch.as_tensor(WindowSpec.offsets.fget(spec) if not spec.is_clip else [0])
    index = torch.maximum(torch.minimum(rows[:, None] + offsets, last[:, None]), first[:, None])  # edges replicated
    with torch.no_grad():
        production = fast.predict_frames(model, inputs, index, 8, segments)
        with fast.disabled():
            plain = fast.predict_frames(model, inputs, index, 8, segments)
    assert production.shape == plain.shape == (frames, rep.output_dim)
    assert torch.allclose(production, plain, rtol=1e-9, atol=1e-10)
    if spec.is_clip:  # every frame of every segment written by exactly one clip
        assert sum(b - a for n in (n for _, n in segments) for _, _, a, b in clip_plan(n, spec)) == frames
