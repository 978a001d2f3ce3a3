"""The production fast paths against the plain reference: the fused seq2seq autograd function
(outputs, losses, every parameter gradient, for every toggle and several T), K stacked models
BITWISE equal to K separate calls, the per-model dropout generator, ``predict_frames`` against
the per-window path, and ``liftbench bench`` at a tiny size. No timing assertions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from fixtures.lifters import (
    SMALL_SIZES,
    one_torch_thread,  # noqa: F401  (the fixture, used by pytestmark)
)

from liftbench import fast as speed
from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM
from liftbench.fast import buffers
from liftbench.fast.seq2seq import fused_forward
from liftbench.fast.seq2seq_fused import module_params, param_names, seq2seq_forward, stack_params
from liftbench.models import NormStats, create_lifter
from liftbench.models.seq2seq import Seq2SeqLifter


class FusedSeq2Seq(Seq2SeqLifter):
    """The readable seq2seq with its forward replaced by the speed path's fused one (K = 1)."""

    def forward(self, x):
        return fused_forward(self, x)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mm_stats(dtype=torch.float32) -> NormStats:
    d = torch.arange(OUTPUT_DIM, dtype=dtype)
    return NormStats(torch.zeros(INPUT_DIM, dtype=dtype), torch.ones(INPUT_DIM, dtype=dtype),
                     10.0 * torch.sin(d), 20.0 + 3.0 * d)


def perturb_(model, scale):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def assert_close(a, b, tol, what=""):
    err = (a - b).abs().max().item()
    assert err <= tol * (1.0 + b.abs().max().item()), f"{what}: max |diff| {err:.3g}"


def pair(dtype, **cfg):
    """A fast (fused) and a plain seq2seq with the same perturbed weights."""
    torch.manual_seed(0)
    fast = FusedSeq2Seq(Seq2SeqLifter.Config(**cfg)).to(dtype).train()
    perturb_(fast, 0.2)
    plain = create_lifter("seq2seq", **cfg).to(dtype).train()
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def run(model, x, y, stats, seed=123):
    torch.manual_seed(seed)  # the same dropout masks for both paths (drawn in one call)
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = model.loss(out, y, stats)
    loss.backward()
    return out.detach(), loss.detach(), {n: p.grad for n, p in model.named_parameters()}


SEQ_TOGGLES = list(itertools.product([True, False], [True, False], [0.0, 0.5], [0.0, 5.0]))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("T", [1, 2, 5, 7])
@pytest.mark.parametrize("residual,layer_norm,dropout,smoothness", SEQ_TOGGLES)
def test_fused_equals_plain(residual, layer_norm, dropout, smoothness, T, dtype, tol):
    fast, plain = pair(dtype, hidden_size=16, seq_len=T, residual=residual, layer_norm=layer_norm,
                       dropout=dropout, smoothness=smoothness)
    x = torch.randn(4, T, INPUT_DIM, dtype=dtype)
    y = torch.randn(4, T, OUTPUT_DIM, dtype=dtype)
    (out_f, loss_f, g_f), (out_p, loss_p, g_p) = (run(m, x, y, mm_stats(dtype)) for m in (fast, plain))
    assert_close(out_f, out_p, tol, "output")
    assert_close(loss_f, loss_p, tol, "loss")
    assert g_f.keys() == g_p.keys() == set(param_names(layer_norm))
    for n in g_p:
        assert g_f[n] is not None and g_f[n].shape == g_p[n].shape, n
        assert_close(g_f[n], g_p[n], 10 * tol, n)


def test_fused_float32_at_a_wider_size():
    fast, plain = pair(torch.float32, hidden_size=128, dropout=0.5)
    x, y = torch.randn(8, 5, INPUT_DIM), torch.randn(8, 5, OUTPUT_DIM)
    (out_f, loss_f, g_f), (out_p, loss_p, g_p) = (run(m, x, y, mm_stats()) for m in (fast, plain))
    assert_close(out_f, out_p, 1e-5, "output")
    assert_close(loss_f, loss_p, 1e-5, "loss")
    for n in g_p:
        assert_close(g_f[n], g_p[n], 1e-4, n)


@pytest.mark.parametrize("layer_norm,dtype,B,H", [(True, torch.float32, 4, 16), (False, torch.float32, 4, 16),
                                                  (True, torch.float64, 4, 16), (False, torch.float64, 4, 16),
                                                  (True, torch.float32, 32, 256)])  # the last: oneDNN-sized products
def test_k_stacked_is_bitwise_k_separate_calls(layer_norm, dtype, B, H):
    """K = 3 models (different weights, inputs, masks and residual toggles) in one stacked call give
    exactly, bit for bit, what three K = 1 calls give: outputs and every parameter gradient."""
    K, T = 3, 5
    torch.manual_seed(0)
    models = [create_lifter("seq2seq", hidden_size=H, seq_len=T, layer_norm=layer_norm).to(dtype) for _ in range(K)]
    for m in models:
        perturb_(m, 0.2)
    x = torch.randn(K, B, T, INPUT_DIM, dtype=dtype)
    masks = torch.bernoulli(torch.full((K, 5, T, B, H), 0.5, dtype=dtype)) * 2.0
    residual = torch.tensor([1.0, 0.0, 1.0], dtype=dtype)
    d_out = torch.randn(K, B, T, OUTPUT_DIM, dtype=dtype)
    leaves = {n: v.detach().clone().requires_grad_() for n, v in stack_params(models).items()}  # (K, ...)
    out = seq2seq_forward(leaves, x, masks, residual, layer_norm, 1e-12)
    out.backward(d_out)
    for k in range(K):
        one = {n: v.detach()[k : k + 1].clone().requires_grad_() for n, v in leaves.items()}  # (1, ...)
        o = seq2seq_forward(one, x[k : k + 1], masks[k : k + 1], residual[k : k + 1], layer_norm, 1e-12)
        o.backward(d_out[k : k + 1])
        assert torch.equal(o, out[k : k + 1]), f"model {k}: output"
        for n in leaves:
            assert torch.equal(one[n].grad, leaves[n].grad[k : k + 1]), f"model {k}: {n}"


def test_all_ones_masks_equal_no_dropout_bitwise():
    """A packed model without dropout may be given all-ones masks: multiplying by 1 is exact."""
    torch.manual_seed(0)
    m = create_lifter("seq2seq", hidden_size=16, seq_len=3)
    perturb_(m, 0.2)
    x = torch.randn(1, 4, 3, INPUT_DIM)
    r = torch.ones(1)
    outs, grads = [], []
    for masks in (None, torch.ones(1, 5, 3, 4, 16)):
        m.zero_grad(set_to_none=True)
        out = seq2seq_forward(module_params(m), x, masks, r, True, 1e-12)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in m.parameters()])
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_recycled_gradient_buffers_never_alias_a_live_gradient(monkeypatch):
    """The pooled weight-gradient buffers: reused after zero_grad(set_to_none=True), never while a
    .grad (or any reference to an old one) still uses them; accumulation stays correct."""

    monkeypatch.setattr(buffers, "GRAD_BUFFERS", buffers.GradBufferPool(min_bytes=0))  # pool even tiny kernels
    torch.manual_seed(0)
    m = FusedSeq2Seq(Seq2SeqLifter.Config(hidden_size=8, seq_len=3, dropout=0.0)).double()
    perturb_(m, 0.2)
    x = torch.randn(2, 3, INPUT_DIM, dtype=torch.float64)

    def grads():
        m(x).square().sum().backward()
        return {n: p.grad for n, p in m.named_parameters()}

    first = {n: g.clone() for n, g in grads().items()}
    kept = m.decoder_cell.weight.grad  # a reference someone holds on to
    accumulated = grads()  # no zero_grad: the .grad buffers are live, so new ones must be used
    for n, g in accumulated.items():
        assert torch.allclose(g, 2 * first[n]), n
    m.zero_grad(set_to_none=True)
    again = grads()
    assert torch.equal(kept, 2 * first["decoder_cell.weight"])  # untouched by the third backward
    for n, g in again.items():
        assert torch.equal(g, first[n]), n
    del kept, accumulated, again
    m.zero_grad(set_to_none=True)
    grads()
    pooled = {b.data_ptr() for bufs in buffers.GRAD_BUFFERS.pool.values() for b in bufs}
    for cell in (m.encoder_cell, m.decoder_cell):  # recycled once nothing else used them
        assert cell.weight.grad.data_ptr() in pooled


def test_stack_params_gradients_reach_each_module():
    torch.manual_seed(0)
    models = [create_lifter("seq2seq", hidden_size=8, seq_len=2) for _ in range(2)]
    out = seq2seq_forward(stack_params(models), torch.randn(2, 3, 2, INPUT_DIM), None, torch.ones(2), True, 1e-12)
    out.sum().backward()
    for m in models:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_no_gradient_for_the_2d_input_and_missing_keys():
    m = create_lifter("seq2seq", hidden_size=8, seq_len=2)
    x = torch.randn(1, 3, 2, INPUT_DIM, requires_grad=True)
    out = seq2seq_forward(module_params(m), x, None, torch.ones(1), True, 1e-12)
    with pytest.raises(NotImplementedError, match="2D input"):
        out.sum().backward()
    params = module_params(m)
    params.pop("decoder_out.bias")
    with pytest.raises(KeyError, match="decoder_out.bias"):
        seq2seq_forward(params, x.detach(), None, torch.ones(1), True, 1e-12)


def test_dropout_generator_is_a_per_model_stream():
    """With ``dropout_generator`` set, the masks come from that stream and the global RNG is untouched."""
    m = create_lifter("seq2seq", hidden_size=8, seq_len=3, dropout=0.5).train()
    x = torch.randn(2, 3, INPUT_DIM)
    m.dropout_generator = torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with torch.no_grad():
        a = m(x)
    assert torch.equal(torch.get_rng_state(), state)
    m.dropout_generator = torch.Generator().manual_seed(5)
    torch.manual_seed(99)
    with torch.no_grad():
        b = m(x)
    assert torch.equal(a, b)
    m.dropout_generator = None  # default: the global RNG, as before
    torch.manual_seed(0)
    with torch.no_grad():
        c = m(x)
    assert not torch.equal(a, c) and not torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------------------------- causal evaluation
def causal_index(lengths, T):
    """(F, T) causal window rows of concatenated sequences (first frame repeated), written out here."""
    rows, start = [], 0
    for n in lengths:
        for f in range(n):
            rows.append([start + max(f - T + 1 + j, 0) for j in range(T)])
        start += n
    return torch.tensor(rows, dtype=torch.long)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("residual,layer_norm", [(True, True), (False, False)])
def test_predict_frames_equals_per_window_plain(dtype, tol, residual, layer_norm):
    """Sequences shorter than, equal to and longer than T; batch sizes that split sequences."""
    T = 5
    torch.manual_seed(0)
    fast = create_lifter("seq2seq", hidden_size=16, seq_len=T, residual=residual, layer_norm=layer_norm).to(dtype)
    perturb_(fast, 0.2)
    plain = create_lifter("seq2seq", hidden_size=16, seq_len=T, residual=residual, layer_norm=layer_norm).to(dtype)
    plain.load_state_dict(fast.state_dict())
    fast.eval(), plain.eval()
    lengths = [3, 5, 11, 1, 8]
    inputs = torch.randn(sum(lengths), INPUT_DIM, dtype=dtype)
    index = causal_index(lengths, T)
    with torch.no_grad():
        ref = plain(inputs[index])[:, -1]  # every window through the full plain forward
        for batch in (4, 7, 1000):
            got = speed.predict_frames(fast, inputs, index, batch)  # the speed path's folded evaluator
            assert got.shape == (sum(lengths), OUTPUT_DIM)
            assert_close(got, ref, tol, f"batch {batch}")
            with speed.disabled():  # the readable model's own (base class) predict_frames
                assert_close(speed.predict_frames(plain, inputs, index, batch), ref, tol, "base default")


def test_predict_frames_of_no_frames():
    m = create_lifter("seq2seq", hidden_size=8, seq_len=3).eval()
    for context in (speed.disabled, __import__("contextlib").nullcontext):
        with context():
            out = speed.predict_frames(m, torch.randn(0, INPUT_DIM), torch.zeros(0, 3, dtype=torch.long), 16)
            assert out.shape == (0, 48)


def test_predict_frames_chunks_inside_a_batch(monkeypatch):
    import liftbench.fast.seq2seq as s2s

    torch.manual_seed(0)
    m = create_lifter("seq2seq", hidden_size=16, seq_len=4).double().eval()
    perturb_(m, 0.2)
    inputs = torch.randn(13, INPUT_DIM, dtype=torch.float64)
    index = causal_index([6, 7], 4)
    whole = speed.predict_frames(m, inputs, index, 1000)
    monkeypatch.setattr(s2s, "EVAL_CHUNK_FLOATS", 3 * 4 * 16)  # chunks of 3 windows
    assert_close(speed.predict_frames(m, inputs, index, 1000), whole, 1e-12, "chunked")


@pytest.mark.parametrize("layer_norm", [True, False])
def test_inference_pointwise_is_bitwise_the_fast_pointwise(layer_norm):
    from liftbench.fast.seq2seq import gate_shift, inference_pointwise_, pointwise
    from liftbench.models.lnlstm import LNLSTMCell

    torch.manual_seed(0)
    cell = LNLSTMCell(8, 16, layer_norm=layer_norm)
    perturb_(cell, 0.3)
    gates, c_prev = torch.randn(5, 64), torch.randn(5, 16)
    with torch.no_grad():
        h_ref, (c_ref, _) = pointwise(cell, gates, c_prev, None, gate_shift(cell))
        h, c = inference_pointwise_(cell, gates.clone(), c_prev, gate_shift(cell))
        h0_ref, (c0_ref, _) = pointwise(cell, gates, None, None, gate_shift(cell))
        h0, c0 = inference_pointwise_(cell, gates.clone(), None, gate_shift(cell))
    assert torch.equal(h, h_ref) and torch.equal(c, c_ref) and torch.equal(h0, h0_ref) and torch.equal(c0, c0_ref)


def test_predict_frames_with_dropout_in_train_mode_falls_back():
    """Dropout masks are per window, so the shared-frame path must not be used in train mode."""
    m = create_lifter("seq2seq", hidden_size=8, seq_len=3, dropout=0.5).train()
    inputs = torch.randn(6, INPUT_DIM)
    index = causal_index([6], 3)
    torch.manual_seed(1)
    with torch.no_grad():
        a = speed.predict_frames(m, inputs, index, 4)
    torch.manual_seed(1)
    with torch.no_grad():
        b = torch.cat([m(inputs[index[:4]])[:, -1], m(inputs[index[4:]])[:, -1]])
    assert torch.equal(a, b)


def test_evaluator_uses_predict_frames(monkeypatch):
    """predict_sequences goes through the speed path's predict_frames (the model's own inside
    ``disabled()``) and checks the shape it returns."""
    from liftbench.data.dataset import Sequence
    from liftbench.errors import DataError
    from liftbench.evaluate import predict_sequences

    rng = np.random.default_rng(0)
    seqs = [Sequence("S9", "Walking 1", c, rng.normal(size=(n, 17, 2)).astype(np.float32) * 100,
                     rng.normal(size=(n, 17, 3)).astype(np.float32) * 100) for c, n in enumerate([2, 9])]
    stats = NormStats(torch.zeros(INPUT_DIM), torch.full((INPUT_DIM,), 100.0), torch.zeros(OUTPUT_DIM),
                      torch.full((OUTPUT_DIM,), 100.0))
    m = create_lifter("seq2seq", hidden_size=8, seq_len=4)
    a = predict_sequences(m, stats, seqs, torch.device("cpu"), batch_size=3)
    calls = []
    monkeypatch.setattr(m, "predict_frames", lambda *args: calls.append(1) or Seq2SeqLifter.predict_frames(m, *args))
    with speed.disabled():
        b = predict_sequences(m, stats, seqs, torch.device("cpu"), batch_size=5)
    assert calls and np.allclose(a.pred, b.pred, atol=1e-3) and len(a) == 11
    monkeypatch.setattr(m, "predict_frames",
                        lambda inputs, index, batch_size, segments=None: torch.zeros(3, OUTPUT_DIM))
    with speed.disabled(), pytest.raises(DataError, match="predict_frames returned shape"):
        predict_sequences(m, stats, seqs, torch.device("cpu"))


# ---------------------------------------------------------------------------------------- bench
def test_bench_runs_on_cpu_at_a_tiny_size_and_writes_csv(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    import liftbench.perf.bench
    from liftbench.cli import app

    monkeypatch.setattr(liftbench.perf.bench, "default_pack_bench", lambda: None)  # packing has its own tests

    out = tmp_path / "bench.csv"
    # each key to the lifters that have it; every registered lifter shrunk (the transformers' published sizes with
    # 32-clip batches of 243 frames need ~14 GB)
    sizes = {k: v for k, v in SMALL_SIZES.items() if k not in ("seq_len", "num_blocks")}
    tiny = [arg for k, v in sizes.items() for arg in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", *tiny, "--batch", "32", "--reps", "2",
                                      "--eval-batch", "256", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    from liftbench.models import LIFTERS

    df = pd.read_csv(out)
    assert set(df["model"]) == set(LIFTERS.names()) and set(df["path"]) == {"plain", "production"}  # every lifter
    for col in ("train_median_ms", "train_gflops", "train_gflops_nominal", "eval_frames_per_s", "eval_pct_of_matmul",
                "peak_train_mb", "speedup_train", "speedup_eval", "speedup_pack"):
        assert col in df.columns, col
    assert (df["train_median_ms"] > 0).all() and (df["eval_frames_per_s"] > 0).all()
    seq = df[df["model"] == "seq2seq"].set_index("path")
    assert seq.loc["production", "train_flops_executed"] < seq.loc["plain", "train_flops_executed"]
    assert json.loads(seq.loc["plain", "model_params"]) == {"hidden_size": 16}
    tcn = df[df["model"] == "tcn"].set_index("path")
    assert tcn.loc["plain", "seq_len"] == 9  # widths 3,3: a 9-frame receptive field
    # whole videos share every frame's work; the plain path runs one dilated window per frame
    assert tcn.loc["production", "eval_flops_per_frame_executed"] < tcn.loc["plain", "eval_flops_per_frame_executed"]
    # a clip model's training window is a whole clip (9 frames here): a step of 32 clips costs 32 x 9 frames' forward
    # and backward (3x), evaluation one forward per frame with flip TTA (2x); per-frame training counts were 9x low
    from liftbench.models import lifter_contract

    clip_models = [n for n in LIFTERS.names() if lifter_contract(n).window.alignment == "clip"]
    assert clip_models  # MotionBERT and MixSTE at least
    for name in clip_models:
        rows = df[df["model"] == name].set_index("path")
        assert (rows["seq_len"] == 9).all(), name  # SMALL_SIZES: 9-frame clips
        for path in ("plain", "production"):
            assert rows.loc[path, "train_flops_executed"] == pytest.approx(
                32 * 9 * 3 / 2 * rows.loc[path, "eval_flops_per_frame_executed"]), (name, path)
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", "--model", "seq2seq", "--set", "hidden_size=16",
                                      "--reps", "2", "--eval-batch", "256", "--json", "--cuda-graph", "--bf16",
                                      "--tf32"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (r,) = payload["results"]
    assert r["speedup_train"] > 0 and r["speedup_eval"] > 0 and r["speedup_pack"] is None
    assert r["cuda_options"] == []  # CUDA-only options are dropped on the CPU
    assert "only apply on CUDA" in result.stderr


def test_bench_pack_hook_fills_speedup_pack():
    from liftbench.perf.bench import bench_model

    calls = []

    def fake_pack(**kw):
        calls.append(kw)
        return {"speedup_pack": 1.5, "k": 2}

    r = bench_model("seq2seq", torch.device("cpu"), params={"hidden_size": 8}, reps=1, warmup=0, eval_batch=64,
                    frames=300, pack_bench=fake_pack)
    assert r["speedup_pack"] == 1.5 and r["pack"]["k"] == 2 and calls[0]["model_name"] == "seq2seq"
    assert calls[0]["params"] == {"hidden_size": 8}


def test_bench_rejects_bad_sizes_and_names_before_measuring(monkeypatch):
    from typer.testing import CliRunner

    import liftbench.perf.bench
    from liftbench.cli import app
    from liftbench.errors import ConfigError
    from liftbench.perf.bench import bench_model

    with pytest.raises(ConfigError, match="'batch' must be an integer >= 1, got 0"):
        bench_model("seq2seq", torch.device("cpu"), batch=0)  # not silently the paper's batch
    with pytest.raises(ConfigError, match="'seq_len' must be >= 1"):
        bench_model("seq2seq", torch.device("cpu"), params={"seq_len": 0})  # the Config's own check
    with pytest.raises(ConfigError, match="unknown key"):
        bench_model("mlp", torch.device("cpu"), params={"seq_len": 3})
    measured = []
    monkeypatch.setattr(liftbench.perf.bench, "matmul_gflops", lambda *a, **k: measured.append(1) or 1.0)
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", "--model", "mlp", "--model", "nosuch"])
    assert result.exit_code != 0 and "Unknown lifter 'nosuch'" in str(result.exception) and not measured
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", "--batch", "0"])
    assert result.exit_code == 2 and "--batch" in result.output and not measured
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", "--model", "mlp", "--set", "nosuch_key=3"])
    assert result.exit_code != 0 and "nosuch_key" in str(result.exception) and not measured
    result = CliRunner().invoke(app, ["bench", "--device", "cpu", "--model", "mlp", "--set", "seq2seq.hidden_size=8"])
    assert result.exit_code != 0 and "no benched lifter" in str(result.exception) and not measured


def test_bench_params_route_each_key_to_the_lifters_that_have_it():
    from liftbench.perf.bench import bench_params

    got = bench_params(["mlp", "seq2seq", "tcn"], {"hidden_size": 8, "tcn.channels": 4, "hossain.seq_len": 3})
    assert got == {"mlp": {"hidden_size": 8}, "seq2seq": {"hidden_size": 8, "seq_len": 3}, "tcn": {"channels": 4}}
