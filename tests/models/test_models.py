"""Lifters: parameter counts, every toggle forward/backward, the LN-LSTM maths against a hand-written
reference, fast == plain, encoder reversal / START token / output feedback, max-norm, init statistics,
the Hossain loss by hand, overfitting a tiny batch, and config / name errors.

Everything runs on CPU at tiny widths; references are written out here with explicit numpy / torch
ops, independently of the model code, so a wrong gate order, a missing forget bias, a dropped state
or an un-reversed encoder makes a test fail."""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures.lifters import small_params
from torch import nn

from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM
from liftbench.errors import ConfigError, UnknownNameError
from liftbench.models import LIFTERS, NormStats, create_lifter, list_lifters, trainable_parameters
from liftbench.models.lnlstm import LNLSTMCell
from liftbench.models.mlp import MaxNormLinear
from liftbench.models.seq2seq import Seq2SeqLifter


class FusedSeq2Seq(Seq2SeqLifter):
    """The readable seq2seq with its forward replaced by the speed path's fused one (K = 1)."""

    def forward(self, x):
        from liftbench.fast.seq2seq import fused_forward

        return fused_forward(self, x)


def seq2seq(implementation: str, **cfg) -> Seq2SeqLifter:
    """``"plain"``: the readable model file; ``"fast"``: the same weights' layout through the speed path."""
    return FusedSeq2Seq(Seq2SeqLifter.Config(**cfg)) if implementation == "fast" else create_lifter("seq2seq", **cfg)

ALL_LIFTERS = list_lifters()
# Hossain's smoothness weights per output joint, written out again here (reference temporal_model.py:165-170):
# RHip RKnee RFoot LHip LKnee LFoot Spine Thorax Neck Head LShoulder LElbow LWrist RShoulder RElbow RWrist
HAND_JOINT_WEIGHTS = [1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1, 1, 4, 4, 1, 4, 4]
TRUNC_STD = 0.8796256610342398  # std of N(0, 1) truncated to [-2, 2]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and 2 OpenMP threads next to another busy process on this
    2-core machine slow every op down 5-20x (cpu_performance_notes.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def unit_stats(dtype=torch.float32, in_dim: int = INPUT_DIM, out_dim: int = OUTPUT_DIM) -> NormStats:
    return NormStats(torch.zeros(in_dim, dtype=dtype), torch.ones(in_dim, dtype=dtype),
                     torch.zeros(out_dim, dtype=dtype), torch.ones(out_dim, dtype=dtype))


def mm_stats(dtype=torch.float32) -> NormStats:
    """Non-trivial output statistics, so a loss computed in normalised instead of mm space is caught."""
    d = torch.arange(OUTPUT_DIM, dtype=dtype)
    return NormStats(torch.zeros(INPUT_DIM, dtype=dtype), torch.ones(INPUT_DIM, dtype=dtype),
                     10.0 * torch.sin(d), 20.0 + 3.0 * d)


def fields(name: str) -> dict[str, type]:
    cls = LIFTERS.get(name).Config
    return typing.get_type_hints(cls)


def small(name: str, **extra) -> dict:
    """Small, dropout-free settings for any registered lifter (keys it lacks are skipped)."""
    return small_params(name, dropout=0.0, drop_path=0.0, test_flip=False, **extra)


def perturb_(model: nn.Module, scale: float = 0.3) -> None:
    """Move every parameter off its init (gains 1 / shifts 0 / zero biases hide mix-ups)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str = "") -> None:
    err = (a - b).abs().max().item()
    assert err <= tol * (1.0 + b.abs().max().item()), f"{what}: max |diff| {err:.3g}"


# ---------------------------------------------------------------------------------------- registry, counts
@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_lifter_metadata(name):
    cls = LIFTERS.get(name)
    cfg = cls.Config()
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cfg)[0].name, None)
    assert set(cls.toggles) <= set(fields(name)), "toggles must be Config fields"
    assert {"lr", "batch_size", "epochs"} <= set(cls.train_defaults)
    assert cls.input_kind in ("frame", "sequence") and cls.paper
    assert isinstance(cls.reference_params, int)


@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_parameter_count_equals_reference(name):
    model = create_lifter(name)
    assert trainable_parameters(model) == LIFTERS.get(name).reference_params


def test_reference_counts_and_aliases():
    assert LIFTERS.get("mlp").reference_params == 4_291_632  # Martinez, computed from the TF graph
    assert LIFTERS.get("seq2seq").reference_params == 16_930_864  # Hossain, trained checkpoint variables
    assert LIFTERS.get("martinez") is LIFTERS.get("mlp")
    assert LIFTERS.get("hossain") is LIFTERS.get("seq2seq")
    m = create_lifter("seq2seq", hidden_size=8)
    assert not hasattr(m, "encoder_out"), "the encoder output projection gets no gradient: not created"
    assert m.window == 5 and create_lifter("mlp", hidden_size=8).window == 1
    assert create_lifter("seq2seq", hidden_size=8, seq_len=3).window == 3


@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_forward_backward_every_parameter_gets_gradient(name):
    torch.manual_seed(0)
    model = create_lifter(name, **small(name)).train()
    T, window, rep = model.window, model.contract.window, model.contract.representation
    x = torch.randn(3, T, rep.input_dim)
    out = model(x)
    T_out = T if window.targets == "window" else 1  # the whole window, or the aligned frame
    assert out.shape == (3, T_out, rep.output_dim) and torch.isfinite(out).all()
    loss = model.loss(out, torch.randn_like(out), mm_stats())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} gets no gradient"
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.predict_aligned(x), model(x)[:, window.aligned_position if T_out > 1 else 0])


OVERFIT = {"seq2seq": {"hidden_size": 64, "smoothness": 0.0, "seq_len": 4}, "mlp": {"hidden_size": 64},
           # width 16 is too narrow for MotionBERT's N-MPJPE term (its 1/|pred| gradient at tiny outputs stalls
           # Adam); 64 learns
           "motionbert": {"dim_feat": 64, "dim_rep": 64}, "mixste": {"embed_dim": 64}}


@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_overfits_a_tiny_batch(name):
    """300 Adam steps on 4 windows bring the loss below 1 % of its start. Clip models' losses carry temporal
    terms (velocity error; MixSTE's smoothness of the prediction alone) that random per-frame targets cannot
    satisfy, so their windows hold one random pose per clip (constant in time); 500 steps, 10 % asked."""
    torch.manual_seed(0)
    model = create_lifter(name, **small(name, **OVERFIT.get(name, {}))).train()
    rep, window = model.contract.representation, model.contract.window
    T_out = model.window if window.targets == "window" else 1
    if window.is_clip:
        x = torch.randn(4, 1, rep.input_dim).expand(4, model.window, rep.input_dim).contiguous()
        y = torch.randn(4, 1, rep.output_dim).expand(4, T_out, rep.output_dim).contiguous()
    else:
        x, y = torch.randn(4, model.window, rep.input_dim), torch.randn(4, T_out, rep.output_dim)
    stats = unit_stats(in_dim=rep.input_dim, out_dim=rep.output_dim)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(500 if window.is_clip else 300):
        loss = model.loss(model(x), y, stats)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = model.loss(model(x), y, stats).item()
    assert first > 0.5 and final < (0.1 if window.is_clip else 0.01) * first, (first, final)


# ---------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_unknown_key_is_named_with_valid_keys(name):
    with pytest.raises(ConfigError) as err:
        create_lifter(name, no_such_key=1)
    msg = str(err.value)
    assert "no_such_key" in msg and all(k in msg for k in fields(name))


@pytest.mark.parametrize("name", ALL_LIFTERS)
def test_wrong_type_is_named(name):
    key = next(k for k, t in fields(name).items() if t in (int, float, bool, str))
    with pytest.raises(ConfigError, match=key):
        create_lifter(name, **{key: [1, 2]})


@pytest.mark.parametrize("name,key,value", [
    ("seq2seq", "seq_len", 0), ("seq2seq", "dropout", 1.0), ("seq2seq", "dropout", -0.1),
    ("seq2seq", "hidden_size", 0), ("seq2seq", "smoothness", -1.0),
    ("seq2seq", "layer_norm_eps", 0.0), ("seq2seq", "seq_len", "5"),
    ("mlp", "dropout", 1.0), ("mlp", "hidden_size", 0), ("mlp", "num_blocks", -1), ("mlp", "residual", 1),
])
def test_bad_values_are_named(name, key, value):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        create_lifter(name, **{"hidden_size": 4, key: value})


def test_unknown_lifter_name_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean: seq2seq") as err:
        create_lifter("seq2sq")
    assert "mlp" in str(err.value)  # lists what is available
    with pytest.raises(UnknownNameError, match="Did you mean: mlp"):
        create_lifter("mpl")


# ---------------------------------------------------------------------------------------- LN-LSTM cell
def np_ln(v, gain, shift, eps):
    mu = v.mean(-1, keepdims=True)
    var = ((v - mu) ** 2).mean(-1, keepdims=True)
    return (v - mu) / np.sqrt(var + eps) * gain + shift


def np_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_cell_step(cell: LNLSTMCell, x, c, h, mask=None):
    """TF LayerNormBasicLSTMCell.call, by hand: gates [i, j, f, o], 4 LNs, forget bias +1, LN on c."""
    W = cell.weight.detach().numpy()
    H, eps = cell.hidden_size, cell.eps
    z = np.concatenate([x, h], axis=1) @ W
    if not cell.layer_norm:
        z = z + cell.bias.detach().numpy()
    i, j, f, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
    if cell.layer_norm:
        gg, gb = cell.gate_ln_weight.detach().numpy(), cell.gate_ln_bias.detach().numpy()
        i, j, f, o = (np_ln(v, gg[k], gb[k], eps) for k, v in enumerate((i, j, f, o)))
    g = np.tanh(j) * (1.0 if mask is None else mask)
    c_new = c * np_sigmoid(f + 1.0) + np_sigmoid(i) * g
    if cell.layer_norm:
        c_new = np_ln(c_new, cell.state_ln_weight.detach().numpy(), cell.state_ln_bias.detach().numpy(), eps)
    return np.tanh(c_new) * np_sigmoid(o), c_new


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("use_mask", [False, True])
def test_lnlstm_step_matches_hand_reference(layer_norm, use_mask):
    from liftbench.fast.seq2seq import gate_shift, pointwise

    torch.manual_seed(0)
    cell = LNLSTMCell(2, 3, layer_norm=layer_norm, eps=1e-5).double()
    perturb_(cell, 0.5)
    rng = np.random.default_rng(0)
    x, c, h = rng.normal(size=(2, 2)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    mask = rng.integers(0, 2, size=(2, 3)) * 2.0 if use_mask else None
    h_ref, c_ref = np_cell_step(cell, x, c, h, mask)
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    m = None if mask is None else t(mask)
    gates = torch.cat([t(x), t(h)], 1) @ cell.weight  # (B, in + H) @ (in + H, 4H), bias folded into the shift
    for label, (h_out, (c_out, h_state)) in {
        "reference": cell.reference_step(t(x), (t(c), t(h)), m),
        "grouped pointwise": pointwise(cell, gates, t(c), m, gate_shift(cell)),
    }.items():
        np.testing.assert_allclose(h_out.detach().numpy(), h_ref, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(c_out.detach().numpy(), c_ref, atol=1e-12, err_msg=label)
        assert torch.equal(h_state, h_out)  # the state's h is the undropped output
    # Zero initial state: the grouped point-wise code skips the forget term (c_prev None), same function.
    z = np.zeros((2, 3))
    h0, c0 = np_cell_step(cell, x, z, z, mask)
    h_f, (c_f, _) = pointwise(cell, t(x) @ cell.weight[:2], None, m, gate_shift(cell))
    np.testing.assert_allclose(h_f.detach().numpy(), h0, atol=1e-12)
    np.testing.assert_allclose(c_f.detach().numpy(), c0, atol=1e-12)


def test_lnlstm_defaults_and_forget_bias_matters():
    cell = LNLSTMCell(4, 3)
    assert cell.eps == 1e-12 and cell.bias is None and cell.weight.shape == (7, 12)
    assert trainable_parameters(cell) == 7 * 12 + 5 * 2 * 3
    assert trainable_parameters(LNLSTMCell(4, 3, layer_norm=False)) == 7 * 12 + 12
    bound = math.sqrt(6 / (7 + 12))  # Glorot over the whole (in + H, 4H) kernel
    assert cell.weight.abs().max() <= bound
    # The +1 is a constant: a cell built with forget_bias=0 computes something else from the same weights.
    other = LNLSTMCell(4, 3, forget_bias=0.0)
    other.load_state_dict(cell.state_dict())
    x, c, h = torch.randn(2, 4), torch.randn(2, 3), torch.randn(2, 3)
    assert not torch.allclose(cell.reference_step(x, (c, h))[0], other.reference_step(x, (c, h))[0])
    assert not any("offset" in k for k in cell.state_dict())


# ---------------------------------------------------------------------------------------- seq2seq
SEQ_TOGGLES = list(itertools.product([True, False], [True, False], [0.0, 0.5], [0.0, 5.0]))


@pytest.mark.parametrize("T", [1, 2, 5, 7])
@pytest.mark.parametrize("residual,layer_norm,dropout,smoothness", SEQ_TOGGLES)
def test_seq2seq_every_toggle_fast_equals_plain(residual, layer_norm, dropout, smoothness, T):
    """Every toggle x T: shape, finiteness, gradients, and fast == plain (outputs, loss, all parameter
    gradients). Dropout masks are drawn in one call before either path runs, so with dropout > 0 the
    same seed gives the same masks and the two paths must still agree exactly (float64)."""
    cfg = dict(hidden_size=12, seq_len=T, residual=residual, layer_norm=layer_norm, dropout=dropout,
               smoothness=smoothness)
    torch.manual_seed(0)
    fast = seq2seq("fast", **cfg).double().train()
    perturb_(fast, 0.2)
    plain = seq2seq("plain", **cfg).double().train()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(3, T, INPUT_DIM, dtype=torch.float64)
    y = torch.randn(3, T, OUTPUT_DIM, dtype=torch.float64)
    stats = mm_stats(torch.float64)
    results = {}
    for label, model in (("fast", fast), ("plain", plain)):
        torch.manual_seed(123)
        out = model(x)
        loss = model.loss(out, y, stats)
        loss.backward()
        assert out.shape == (3, T, OUTPUT_DIM) and torch.isfinite(out).all() and torch.isfinite(loss)
        results[label] = (out, loss, {n: p.grad for n, p in model.named_parameters()})
    (out_f, loss_f, g_f), (out_p, loss_p, g_p) = results["fast"], results["plain"]
    assert_close(out_f, out_p, 1e-10, "output")
    assert_close(loss_f, loss_p, 1e-10, "loss")
    assert g_f.keys() == g_p.keys()
    for n in g_p:
        assert g_f[n] is not None and torch.isfinite(g_f[n]).all(), n
        assert_close(g_f[n], g_p[n], 1e-9, n)
        if dropout == 0.0:
            assert g_p[n].abs().sum() > 0, f"{n} gets no gradient"
    if dropout > 0.0:  # dropout is live in train mode and off in eval mode
        torch.manual_seed(7)
        assert not torch.allclose(fast(x), out_f)
        fast.eval()
        with torch.no_grad():
            assert torch.equal(fast(x), fast(x))


def test_seq2seq_fast_equals_plain_float32():
    torch.manual_seed(0)
    fast = seq2seq("fast", hidden_size=64, dropout=0.0)
    perturb_(fast, 0.05)
    plain = seq2seq("plain", hidden_size=64, dropout=0.0)
    plain.load_state_dict(fast.state_dict())
    x, y = torch.randn(4, 5, INPUT_DIM), torch.randn(4, 5, OUTPUT_DIM)
    for m in (fast, plain):
        m.loss(m(x), y, mm_stats()).backward()
    assert_close(fast(x), plain(x), 1e-5, "output")
    for (n, p), q in zip(plain.named_parameters(), fast.parameters()):
        assert_close(q.grad, p.grad, 1e-4, n)


def torch_cell(cell: LNLSTMCell, x, state, mask=None):
    """Explicit-ops LN-LSTM step for the unrolled reference (independent of LNLSTMCell's methods)."""
    c, h = state
    H = cell.hidden_size
    z = torch.cat([x, h], 1) @ cell.weight
    if not cell.layer_norm:
        z = z + cell.bias

    def ln(v, gain, shift):
        mu = v.mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(((v - mu) ** 2).mean(-1, keepdim=True) + cell.eps) * gain + shift

    gates = [z[:, k * H : (k + 1) * H] for k in range(4)]  # i, j, f, o
    if cell.layer_norm:
        gates = [ln(v, cell.gate_ln_weight[k], cell.gate_ln_bias[k]) for k, v in enumerate(gates)]
    i, j, f, o = gates
    g = torch.tanh(j) * (1.0 if mask is None else mask)
    c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * g
    if cell.layer_norm:
        c = ln(c, cell.state_ln_weight, cell.state_ln_bias)
    return torch.tanh(c) * torch.sigmoid(o), c


def unrolled_seq2seq(m, x, start, reverse=True, detach_feedback=False, masks=None, drop_state=False):
    """Hossain's graph unrolled by hand. masks: (5, T, B, H) for enc-in, enc-g, dec-in, dec-g, dec-h."""
    B, T, _ = x.shape
    H = m.config.hidden_size
    mk = (lambda s, t: None) if masks is None else (lambda s, t: masks[s, t])  # noqa: E731
    c = h = x.new_zeros(B, H)
    for step, t in enumerate(range(T - 1, -1, -1) if reverse else range(T)):
        xp = m.encoder_in(x[:, t]) * (1.0 if masks is None else mk(0, step))
        h, c = torch_cell(m.encoder_cell, xp, (c, h), mk(1, step))
    y, outs = start, []
    for k in range(T):
        inp = y.detach() if detach_feedback else y
        xp = m.decoder_in(inp) * (1.0 if masks is None else mk(2, k))
        h, c = torch_cell(m.decoder_cell, xp, (c, h), mk(3, k))
        h_out = h if masks is None else h * mk(4, k)
        if drop_state:  # the WRONG variant: the dropped h is carried
            h = h_out
        y = m.decoder_out(h_out) + (inp if m.config.residual else 0.0)
        outs.append(y)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("implementation", ["fast", "plain"])
def test_seq2seq_reversed_encoder_start_ones_and_feedback(residual, implementation):
    torch.manual_seed(0)
    m = seq2seq(implementation, hidden_size=6, seq_len=4, residual=residual)
    m = m.double().eval()
    perturb_(m, 0.3)
    x = torch.randn(2, 4, INPUT_DIM, dtype=torch.float64)
    ones = torch.ones(2, OUTPUT_DIM, dtype=torch.float64)
    out = m(x)
    ref = unrolled_seq2seq(m, x, ones)
    assert_close(out, ref, 1e-12, "unrolled")
    # Negative controls: the test would notice a forward-order encoder or a zero START token.
    assert not torch.allclose(out, unrolled_seq2seq(m, x, ones, reverse=False), atol=1e-6)
    assert not torch.allclose(out, unrolled_seq2seq(m, x, torch.zeros_like(ones)), atol=1e-6)
    # Gradients flow through the output feedback (no teacher forcing, no stop-gradient).
    grads = {}
    for label, fn in (("model", lambda: m(x)), ("ref", lambda: unrolled_seq2seq(m, x, ones)),
                      ("detached", lambda: unrolled_seq2seq(m, x, ones, detach_feedback=True))):
        m.zero_grad()
        (fn() ** 2).sum().backward()
        grads[label] = torch.cat([p.grad.flatten() for p in m.parameters()])
    assert_close(grads["model"], grads["ref"], 1e-10, "feedback gradients")
    assert not torch.allclose(grads["model"], grads["detached"])


def test_seq2seq_dropout_sites_and_undropped_state(monkeypatch):
    """With fixed masks: dropout on projected input, on g and on the decoder OUTPUT h only."""
    torch.manual_seed(0)
    T, B, H = 3, 2, 5
    for implementation in ("fast", "plain"):
        m = seq2seq(implementation, hidden_size=H, seq_len=T, dropout=0.5)
        m = m.double().train()
        perturb_(m, 0.3)
        masks = torch.bernoulli(torch.full((5, T, B, H), 0.5, dtype=torch.float64)) * 2.0
        monkeypatch.setattr(m, "_dropout_masks", lambda T_, B_, like, masks=masks: masks)
        x = torch.randn(B, T, INPUT_DIM, dtype=torch.float64)
        ones = torch.ones(B, OUTPUT_DIM, dtype=torch.float64)
        out = m(x)
        assert_close(out, unrolled_seq2seq(m, x, ones, masks=masks), 1e-12, implementation)
        assert not torch.allclose(out, unrolled_seq2seq(m, x, ones, masks=masks, drop_state=True), atol=1e-6)
        assert not torch.allclose(out, unrolled_seq2seq(m, x, ones), atol=1e-6)


def test_seq2seq_loss_by_hand():
    m = create_lifter("seq2seq", hidden_size=4, seq_len=3)
    rng = np.random.default_rng(0)
    pred, gt = rng.normal(size=(2, 3, 48)), rng.normal(size=(2, 3, 48))
    mean, std = rng.normal(size=48) * 50, rng.uniform(10, 100, size=48)
    stats = NormStats(torch.zeros(32), torch.ones(32), torch.tensor(mean), torch.tensor(std))
    pred_mm, gt_mm = pred * std + mean, gt * std + mean
    w = np.repeat(HAND_JOINT_WEIGHTS, 3)  # joint weight over x, y, z
    mse = np.mean((gt_mm - pred_mm) ** 2)
    smooth = np.mean(w * (pred_mm[:, 1:] - pred_mm[:, :-1]) ** 2)  # over B x (T-1) x 48
    got = m.loss(torch.tensor(pred), torch.tensor(gt), stats).item()
    assert got == pytest.approx(mse + 5.0 * smooth, rel=1e-9)
    off = create_lifter("seq2seq", hidden_size=4, smoothness=0.0)
    assert off.loss(torch.tensor(pred), torch.tensor(gt), stats).item() == pytest.approx(mse, rel=1e-9)
    one = m.loss(torch.tensor(pred[:, :1]), torch.tensor(gt[:, :1]), stats).item()  # T = 1: no difference term
    assert one == pytest.approx(np.mean((gt_mm[:, :1] - pred_mm[:, :1]) ** 2), rel=1e-9)


def test_seq2seq_init_is_tf_default():
    m = create_lifter("seq2seq", hidden_size=64)
    for lin in (m.encoder_in, m.decoder_in, m.decoder_out):
        bound = math.sqrt(6 / sum(lin.weight.shape))
        assert lin.weight.abs().max() <= bound and lin.weight.std() > 0.5 * bound / math.sqrt(3)
        assert torch.count_nonzero(lin.bias) == 0
    for cell in (m.encoder_cell, m.decoder_cell):
        bound = math.sqrt(6 / (128 + 256))
        assert cell.weight.abs().max() <= bound
        assert cell.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)
        assert torch.all(cell.gate_ln_weight == 1) and torch.all(cell.state_ln_bias == 0)
        assert cell.eps == 1e-12
    assert create_lifter("seq2seq", hidden_size=4, layer_norm_eps=1e-5).decoder_cell.eps == 1e-5


# ---------------------------------------------------------------------------------------- MLP
def test_max_norm_clip():
    torch.manual_seed(0)
    layer = MaxNormLinear(4, 3).double()
    with torch.no_grad():
        layer.weight.mul_(5.0 / layer.weight.norm())  # ||W||_F = 5 > 1: scaled to norm 1
    w_eff = layer.effective_weight()
    assert w_eff.norm().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(w_eff, layer.weight / 5.0)  # whole matrix, one factor (not per unit)
    assert layer.weight.norm().item() == pytest.approx(5.0)  # the stored weight is not projected
    x, G = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    (layer(x) * G).sum().backward()
    A, W, n = G.T @ x, layer.weight.detach(), 5.0  # dL/dW_eff = A; W_eff = W / ||W||
    expected = A / n - (A * W).sum() / n**3 * W
    assert torch.allclose(layer.weight.grad, expected, atol=1e-12)
    assert torch.allclose(layer.bias.grad, G.sum(0))  # biases are not clipped
    with torch.no_grad():
        layer.weight.mul_(0.1)  # ||W||_F = 0.5 < 1: unchanged
    assert torch.equal(layer.effective_weight(), layer.weight)
    assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias))
    layer.max_norm = False
    layer.weight.data.mul_(10.0)
    assert torch.equal(layer.effective_weight(), layer.weight)


def test_mlp_init_statistics():
    torch.manual_seed(0)
    m = create_lifter("mlp")
    linears = [mod for mod in m.modules() if isinstance(mod, MaxNormLinear)]
    assert len(linears) == 2 + 2 * m.config.num_blocks and all(lin.max_norm for lin in linears)
    for lin in linears:
        s_w = math.sqrt(2 / lin.in_features)
        assert lin.weight.std().item() == pytest.approx(TRUNC_STD * s_w, rel=0.03)
        assert lin.weight.abs().max().item() <= 2 * s_w * (1 + 1e-6)
        s_b = math.sqrt(2 / lin.out_features)  # biases: kaiming with their own length, like TF's shape[0]
        assert 0 < lin.bias.abs().max().item() <= 2 * s_b * (1 + 1e-6)
        if lin.out_features >= 1024:
            assert lin.bias.std().item() == pytest.approx(TRUNC_STD * s_b, rel=0.1)
    big = linears[1].weight
    assert big.norm().item() == pytest.approx(TRUNC_STD * math.sqrt(2 * 1024), rel=0.02)  # ~40
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm1d)]
    assert len(bns) == 1 + 2 * m.config.num_blocks
    assert all(bn.eps == 1e-3 and bn.momentum == 0.01 for bn in bns)
    assert [mod.p for mod in m.modules() if isinstance(mod, nn.Dropout)] == [0.5] * 5


def manual_mlp(m, x):
    """Martinez's graph by hand (eval mode): clip, BN with running stats, ReLU, residual add."""
    cfg = m.config

    def dense(seq, v):
        lin = seq[0]
        w = lin.weight / torch.clamp(lin.weight.norm(), min=1.0) if cfg.max_norm else lin.weight
        v = v @ w.T + lin.bias
        if cfg.batch_norm:
            bn = seq[1]
            v = (v - bn.running_mean) / torch.sqrt(bn.running_var + 1e-3) * bn.weight + bn.bias
        return torch.relu(v)

    v = dense(m.stem, x.reshape(-1, INPUT_DIM))
    for block in m.blocks:
        u = dense(block.layers[1], dense(block.layers[0], v))
        v = v + u if cfg.residual else u
    w = m.head.weight / torch.clamp(m.head.weight.norm(), min=1.0) if cfg.max_norm else m.head.weight
    return (v @ w.T + m.head.bias).reshape(x.shape[0], x.shape[1], OUTPUT_DIM)


@pytest.mark.parametrize("residual,batch_norm,max_norm,dropout",
                         list(itertools.product([True, False], [True, False], [True, False], [0.0, 0.5])))
def test_mlp_every_toggle(residual, batch_norm, max_norm, dropout):
    torch.manual_seed(0)
    m = create_lifter("mlp", hidden_size=8, residual=residual, batch_norm=batch_norm, max_norm=max_norm,
                      dropout=dropout).double()
    perturb_(m, 0.3)
    for bn in (mod for mod in m.modules() if isinstance(mod, nn.BatchNorm1d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 2, INPUT_DIM, dtype=torch.float64)
    m.train()
    out = m(x)
    assert out.shape == (3, 2, OUTPUT_DIM) and torch.isfinite(out).all()
    m.loss(out, torch.randn_like(out), unit_stats(torch.float64)).backward()
    if dropout == 0.0:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    m.eval()
    with torch.no_grad():
        assert_close(m(x), manual_mlp(m, x), 1e-12, "manual")
        assert torch.allclose(m(x)[:, 1], m(x[:, 1:2])[:, 0])  # frame by frame
        if residual and m.config.num_blocks:  # the toggle really changes the function
            m.blocks[0].residual = False
            assert not torch.allclose(m(x), manual_mlp(m, x))
