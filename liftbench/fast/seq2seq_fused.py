"""The whole Hossain seq2seq forward as ONE autograd function with a hand-scheduled backward.

Why: with plain autograd every time step of the backward does its own weight-gradient matmul with
only B = 32 rows, which runs at 40-55 GFLOP/s on the project CPU; the same work done once over all
T steps (rows = B*T) runs at 110-125 (``cpu_performance_notes.md`` section 1). So here:

* per step, only what the recurrence forces: forward ``h @ W_h`` (skipped at encoder t=0, where
  h = 0), and backward the data gradients ``dgates @ W^T`` that the previous step needs;
* once over all steps (rows = B*T): every weight-gradient matmul (both LSTM kernels, the three
  linear layers; their biases as row sums) and the encoder's input-half data gradient
  ``dgates_e @ W_x^T`` (nothing in the recurrence depends on it); the layer-norm gains/shifts
  are batch sums per step (cheap reductions, no full-size per-step tensors kept);
* nothing for exact zeros: no ``dy`` for the START token (a constant), no gradient for the 2D input.

The point-wise part of a step (gate layer norms, sigmoid/tanh, dropout, cell update) keeps its
intermediates and has a hand-derived backward (``_cell_backward``; the layer norms through
``aten::native_layer_norm_backward``, the kernel autograd itself uses); the tests compare every
gradient with autograd through the plain cell in float64 to 1e-10.

Matmuls go through ``matmul.matmul`` (oneDNN on float32 CPU, ``bmm`` elsewhere), except the big
weight gradients: MKL's ``bmm`` reads their transposed activations in place (oneDNN would copy them)
and writes the big ones into recycled buffers (``buffers.GradBufferPool``).

Everything carries a leading MODEL dimension K (K >= 1 models of the same shapes, e.g. seeds or
ablation variants for packing): parameters are (K, ...) tensors keyed like
``Seq2SeqLifter.named_parameters()`` (so ``torch.func.stack_module_state`` output fits), and every
matmul is per model (``bmm``, or one oneDNN call per model). Nothing reduces across models and every
reduction runs over the same dimensions in the same order for any K, so K stacked models give
BITWISE the results of K separate K=1 calls (``tests/test_fastpath.py``; element-wise kernels treat
the tail of a buffer that is not a multiple of the SIMD width with scalar code, so this holds when
B*H is a multiple of 16, as for every real width).

API: ``seq2seq_forward(params, x, masks, residual, layer_norm, eps) -> (K, B, T, 48)``, with
``stack_params(models)`` (K stacked copies whose gradients flow back to each module) and
``module_params(model)`` (K = 1 views of one module's own parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from liftbench.fast import buffers
from liftbench.fast.autocast import autocast_backward, autocast_forward
from liftbench.fast.matmul import matmul
from liftbench.models.lnlstm import _F, _I, _J, _O  # gate rows, TF order i, j, f, o (j = candidate)

# Dropout sites: index into dim 1 of the (K, 5, T, B, H) mask tensor (same as seq2seq.py).
_ENC_IN, _ENC_G, _DEC_IN, _DEC_G, _DEC_OUT = range(5)
_LN_NAMES = ("gate_ln_weight", "gate_ln_bias", "state_ln_weight", "state_ln_bias")


def param_names(layer_norm: bool) -> tuple[str, ...]:
    """Keys of the parameter dict, i.e. ``Seq2SeqLifter.named_parameters()`` names, in a fixed order."""
    cell = _LN_NAMES if layer_norm else ("bias",)
    return ("encoder_in.weight", "encoder_in.bias", "encoder_cell.weight",
            *(f"encoder_cell.{n}" for n in cell),
            "decoder_in.weight", "decoder_in.bias", "decoder_cell.weight",
            *(f"decoder_cell.{n}" for n in cell),
            "decoder_out.weight", "decoder_out.bias")


def module_params(model: nn.Module) -> dict[str, Tensor]:
    """K = 1 views (``unsqueeze(0)``) of one module's parameters; their gradients land in ``p.grad``."""
    return {name: p.unsqueeze(0) for name, p in model.named_parameters()}  # (1, ...) each


def stack_params(models: Sequence[nn.Module]) -> dict[str, Tensor]:
    """(K, ...) stacks of K modules' parameters (``torch.stack``: gradients flow back to each module)."""
    per_model = [dict(m.named_parameters()) for m in models]
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}  # (K, ...) each


class _Cell:
    """One LSTM's point-wise constants for a step, broadcast over the batch: (K, 1, 4, H) / (K, 1, H)."""

    def __init__(self, params: dict[str, Tensor], prefix: str, layer_norm: bool, forget_bias: float = 1.0):
        w = params[f"{prefix}.weight"]  # (K, in + H, 4H)
        K, _, G = w.shape
        self.H = H = G // 4
        offset = w.new_zeros(4, 1)
        offset[2] = forget_bias  # TF gate order i, j, f, o: +1 inside the forget sigmoid, a constant
        self.layer_norm = layer_norm
        if layer_norm:
            self.gain = params[f"{prefix}.gate_ln_weight"].unsqueeze(1)  # (K, 4, H) -> (K, 1, 4, H)
            self.shift = (params[f"{prefix}.gate_ln_bias"] + offset).unsqueeze(1)  # (K, 1, 4, H)
            self.state_gain = params[f"{prefix}.state_ln_weight"].unsqueeze(1)  # (K, H) -> (K, 1, H)
            self.state_shift = params[f"{prefix}.state_ln_bias"].unsqueeze(1)  # (K, 1, H)
        else:
            self.shift = (params[f"{prefix}.bias"].view(K, 4, H) + offset).unsqueeze(1)  # (K, 4H) -> (K, 1, 4, H)


class _StepCache:
    """What one point-wise step keeps for its hand-written backward (all (K, B, ...) float32)."""

    __slots__ = ("z", "mean", "rstd", "n", "act", "g", "c_prev", "c_raw", "mean_c", "rstd_c", "nc", "tc", "g_mask")


def _cell(gates: Tensor, c_prev: Tensor | None, g_mask: Tensor | None, p: _Cell, eps: float):
    """Point-wise step after the matmul: gates (K, B, 4H) -> h (K, B, H), c (K, B, H), cache.

    The arithmetic of ``LNLSTMCell.reference_step``, with the four gate layer norms as one
    normalisation over a (K, B, 4, H) view, and the intermediates the backward needs kept."""
    K, B, _ = gates.shape
    S = _StepCache()
    S.c_prev, S.g_mask = c_prev, g_mask
    z = gates.view(K, B, 4, p.H)  # (K, B, 4H) -> (K, B, 4, H): one row per gate
    if z.dtype in (torch.bfloat16, torch.float16):  # autocast matmul output: point-wise maths in float32
        z = z.float()
    S.z = z
    if p.layer_norm:
        S.n, S.mean, S.rstd = torch.native_layer_norm(z, (p.H,), None, None, eps)  # all four gates at once
        pre = torch.addcmul(p.shift, S.n, p.gain)  # (K, 1, 4, H) + (K, B, 4, H) * (K, 1, 4, H)
    else:
        pre = z + p.shift  # bias (+1 on f): (K, B, 4, H) + (K, 1, 4, H)
    # One sigmoid over all four rows, then row j (the candidate) replaced by its tanh: act holds
    # sigmoid(i), tanh(j), sigmoid(f), sigmoid(o), TF order.
    S.act = act = torch.sigmoid(pre)  # (K, B, 4, H)
    torch.tanh(pre[:, :, _J], out=act[:, :, _J])
    s_i, t_j, s_f, s_o = act.unbind(2)  # 4 x (K, B, H) views
    S.g = g = t_j if g_mask is None else t_j * g_mask  # recurrent dropout on the candidate
    c = s_i * g
    if c_prev is not None:  # zero initial state: the forget term is exactly zero
        c = torch.addcmul(c, c_prev, s_f)
    S.c_raw = c
    if p.layer_norm:
        S.nc, S.mean_c, S.rstd_c = torch.native_layer_norm(c, (p.H,), None, None, eps)  # (K, B, H)
        c = torch.addcmul(p.state_shift, S.nc, p.state_gain)  # (K, 1, H) + (K, B, H) * (K, 1, H)
    S.tc = torch.tanh(c)
    return S.tc * s_o, c, S


_INPUT_GRAD_ONLY = [True, False, False]  # native_layer_norm_backward: d input only (no affine in the op)


def _cell_backward(S: _StepCache, p: _Cell, dh: Tensor, dc: Tensor | None):
    """Gradients of one point-wise step, derived by hand (``tests/test_fastpath.py`` checks them
    against autograd through the plain cell). dh: d h, dc: d c from the next step (None at the end).

    Returns d gates (K, B, 4H), d c_prev (or None), and this step's batch sums of the layer-norm
    gain/shift gradients (or of the bias gradient without layer norm). The sums are reduced over the
    batch here (small (K, 4, H) / (K, H) results) and over steps by the caller, in a fixed order that
    is the same for any K."""
    H = p.H
    act = S.act
    s_i, t_j, s_f, s_o = act.unbind(2)  # (K, B, H) each
    d_c = torch.ops.aten.tanh_backward(dh * s_o, S.tc)  # through h = tanh(c) * s_o: (dh s_o)(1 - tanh^2)
    if dc is not None:
        d_c = d_c + dc
    parts_state = ()
    d_raw = d_c
    if p.layer_norm:  # c = LN(c_raw) * gain + shift
        parts_state = ((d_c * S.nc).sum(1), d_c.sum(1))
        d_raw = torch.ops.aten.native_layer_norm_backward(d_c * p.state_gain, S.c_raw, (H,), S.mean_c, S.rstd_c,
                                                           None, None, _INPUT_GRAD_ONLY)[0]
    d_act = torch.empty_like(act)  # (K, B, 4, H): d of sigmoid(i), tanh(j), sigmoid(f), sigmoid(o)
    torch.mul(d_raw, S.g, out=d_act[:, :, _I])
    torch.mul(d_raw, s_i if S.g_mask is None else s_i * S.g_mask, out=d_act[:, :, _J])
    if S.c_prev is not None:
        torch.mul(d_raw, S.c_prev, out=d_act[:, :, _F])
    else:
        d_act[:, :, _F].zero_()
    torch.mul(dh, S.tc, out=d_act[:, :, _O])
    # sigmoid' = s (1 - s) on all four rows at once, then row j redone as tanh' = 1 - t^2 (one kernel each)
    d_pre = torch.ops.aten.sigmoid_backward(d_act, act)  # (K, B, 4, H)
    torch.ops.aten.tanh_backward.grad_input(d_act[:, :, _J], t_j, grad_input=d_pre[:, :, _J])
    d_cprev = None if S.c_prev is None else d_raw * s_f
    K, B = d_pre.shape[:2]
    if not p.layer_norm:  # pre = gates + bias: the bias gradient is the batch sum at pre
        return d_pre.view(K, B, 4 * H), d_cprev, (d_pre.sum(1),)  # (K, 4, H)
    d_z = torch.ops.aten.native_layer_norm_backward(d_pre * p.gain, S.z, (H,), S.mean, S.rstd, None, None,
                                                    _INPUT_GRAD_ONLY)[0]
    parts = ((d_pre * S.n).sum(1), d_pre.sum(1), *parts_state)
    return d_z.view(K, B, 4 * H), d_cprev, parts


def _mask(masks: Tensor | None, site: int, t: int) -> Tensor | None:
    return None if masks is None else masks[:, site, t]  # (K, 5, T, B, H) -> (K, B, H)


def _t(w: Tensor) -> Tensor:
    return w.transpose(1, 2)  # (K, m, n) -> (K, n, m), a view: bmm reads it transposed


def _forward(P: dict[str, Tensor], x: Tensor, masks: Tensor | None, residual: Tensor, layer_norm: bool,
             eps: float) -> tuple[Tensor, dict]:
    """The forward with no autograd graph; returns y (K, B, T, 48) and what the backward needs."""
    K, B, T, D = x.shape
    enc, dec = _Cell(P, "encoder_cell", layer_norm), _Cell(P, "decoder_cell", layer_norm)
    H = enc.H
    w_e, w_d = P["encoder_cell.weight"], P["decoder_cell.weight"]  # (K, 2H, 4H) each
    # Encoder: time-reversed input, projection and input half of the gates hoisted over all T steps.
    xr = x.flip(2).transpose(1, 2).reshape(K, T * B, D)  # (K, B, T, 32) -> reversed, time-major (K, T*B, 32)
    u_e = matmul(xr, _t(P["encoder_in.weight"]), P["encoder_in.bias"].unsqueeze(1))  # (K, T*B, H)
    if masks is not None:
        u_e = u_e * masks[:, _ENC_IN].reshape(K, T * B, H)  # (K, T, B, H) -> (K, T*B, H)
    gx = matmul(u_e, w_e[:, :H]).view(K, T, B, 4 * H)  # (K, T*B, H) @ (K, H, 4H) -> (K, T, B, 4H)
    enc_steps, enc_h = [], []
    c = h = None
    for t in range(T):
        gates = gx[:, t] if h is None else matmul(h, w_e[:, H:], gx[:, t])  # (K, B, 4H)
        h, c, step = _cell(gates, c, _mask(masks, _ENC_G, t), enc, eps)
        enc_steps.append(step)
        enc_h.append(h)
    # Decoder: START = ones, then its own previous output (no teacher forcing); residual per model.
    r = residual.to(x.dtype).view(K, 1, 1)  # (K,) -> (K, 1, 1), 1.0 = residual on, 0.0 = off
    y = x.new_ones(K, B, P["decoder_out.weight"].shape[1])  # (K, B, 48)
    cat = x.new_empty(K, T, B, 2 * H)  # [u_k, h_{k-1}] of every step, the rows of the dW_d matmul
    y_prev, dec_steps, h_out, ys = [], [], [], []
    for k in range(T):
        y_prev.append(y)
        u = matmul(y, _t(P["decoder_in.weight"]), P["decoder_in.bias"].unsqueeze(1))  # (K, B, H)
        if masks is not None:
            u = u * masks[:, _DEC_IN, k]
        cat[:, k, :, :H] = u
        cat[:, k, :, H:] = h
        gates = matmul(cat[:, k], w_d)  # (K, B, 2H) @ (K, 2H, 4H) -> (K, B, 4H), one GEMM
        h, c, step = _cell(gates, c, _mask(masks, _DEC_G, k), dec, eps)
        dec_steps.append(step)
        ho = h if masks is None else h * masks[:, _DEC_OUT, k]  # output dropout; the state keeps h
        h_out.append(ho)
        y = matmul(ho, _t(P["decoder_out.weight"]), P["decoder_out.bias"].unsqueeze(1)) + r * y
        ys.append(y)
    out = torch.stack(ys, dim=2)  # T x (K, B, 48) -> (K, B, T, 48)
    saved = dict(xr=xr, u_e=u_e, enc_steps=enc_steps, enc_h=enc_h, cat=cat, dec_steps=dec_steps, h_out=h_out,
                 y_prev=y_prev, enc=enc, dec=dec, r=r)
    return out, saved


def _rowsum(v: Tensor) -> Tensor:
    """Sum over the row dimension 1 of (K, N, ...) -> (K, ...); per model, same order for any K."""
    return v.sum(dim=1)


def _cell_param_grads(p: _Cell, prefix: str, parts: list) -> dict[str, Tensor]:
    """Layer-norm gains/shifts (or the bias) of one LSTM: the per-step batch sums, summed over steps."""
    total = [sum(q[i] for q in parts) for i in range(len(parts[0]))]  # steps in a fixed order
    if not p.layer_norm:
        return {f"{prefix}.bias": total[0].reshape(total[0].shape[0], 4 * p.H)}  # (K, 4, H) -> (K, 4H)
    names = ("gate_ln_weight", "gate_ln_bias", "state_ln_weight", "state_ln_bias")
    return {f"{prefix}.{n}": v for n, v in zip(names, total)}  # (K, 4, H), (K, 4, H), (K, H), (K, H)


def _backward(P: dict[str, Tensor], S: dict, masks: Tensor | None, d_out: Tensor) -> dict[str, Tensor]:
    """All parameter gradients from d_out (K, B, T, 48): per-step data gradients, then batched weights."""
    K, B, T, _ = d_out.shape
    enc, dec, r = S["enc"], S["dec"], S["r"]
    H = enc.H
    w_e, w_d = P["encoder_cell.weight"], P["decoder_cell.weight"]  # (K, 2H, 4H)
    w_in_d, w_out = P["decoder_in.weight"], P["decoder_out.weight"]  # (K, H, 48), (K, 48, H)
    dY = d_out.transpose(1, 2)  # (K, B, T, 48) -> (K, T, B, 48) view
    # Decoder, newest step first. dy_k = dY_k + r dy_{k+1} + du_{k+1} W_in  (feedback of y_k).
    d_gd, d_u, d_y, parts_d = [None] * T, [None] * T, [None] * T, []
    dh = dc = dy_next = du_next = None
    for k in range(T - 1, -1, -1):
        dy = dY[:, k]  # (K, B, 48)
        if dy_next is not None:
            dy = matmul(du_next, w_in_d, dy + r * dy_next)  # (K, B, H) @ (K, H, 48)
        d_y[k] = dy
        dho = matmul(dy, w_out)  # (K, B, 48) @ (K, 48, H) -> (K, B, H)
        m = _mask(masks, _DEC_OUT, k)
        dh_k = dho if m is None else dho * m
        if dh is not None:
            dh_k = dh_k + dh
        d_g, dc, part = _cell_backward(S["dec_steps"][k], dec, dh_k, dc)
        parts_d.append(part)
        d_gd[k] = d_g
        d_cat = matmul(d_g, _t(w_d))  # (K, B, 4H) @ (K, 4H, 2H) -> (K, B, 2H) = [du, dh_prev]
        m = _mask(masks, _DEC_IN, k)
        d_u[k] = d_cat[..., :H] if m is None else d_cat[..., :H] * m  # (K, B, H) at u before dropout
        dh = d_cat[..., H:]  # (K, B, H) into the previous step (or the encoder's final h)
        dy_next, du_next = dy, d_u[k]
    parts_d.reverse()
    # Encoder, last step first (its h outputs are unused: dh comes only through the recurrence).
    d_ge, parts_e = [None] * T, []
    for t in range(T - 1, -1, -1):
        d_g, dc, part = _cell_backward(S["enc_steps"][t], enc, dh, dc)
        parts_e.append(part)
        d_ge[t] = d_g
        if t > 0:
            dh = matmul(d_g, _t(w_e[:, H:]))  # (K, B, 4H) @ (K, 4H, H) -> (K, B, H); h_{-1} = 0 needs none
    parts_e.reverse()
    # ---- batched over all time steps: rows = T*B, time-major, the same order as in the forward.
    grads: dict[str, Tensor] = {}
    dg_e = torch.stack(d_ge, dim=1).view(K, T * B, 4 * H)  # T x (K, B, 4H) -> (K, T*B, 4H)
    dw_e = buffers.GRAD_BUFFERS.empty_like(w_e)  # (K, 2H, 4H)
    _bmm_into(_t(S["u_e"]), dg_e, dw_e[:, :H])  # (K, H, T*B) @ (K, T*B, 4H) -> (K, H, 4H)
    if T > 1:  # h_prev rows for t >= 1 only (h_{-1} = 0)
        h_prev = torch.stack(S["enc_h"][:-1], dim=1).view(K, (T - 1) * B, H)  # (K, (T-1)*B, H)
        _bmm_into(_t(h_prev), dg_e[:, B:], dw_e[:, H:])  # (K, H, 4H)
    else:
        dw_e[:, H:].zero_()
    grads["encoder_cell.weight"] = dw_e
    du_e = matmul(dg_e, _t(w_e[:, :H]))  # input-half data gradient, all steps: (K, T*B, 4H) @ (K, 4H, H)
    if masks is not None:
        du_e = du_e * masks[:, _ENC_IN].reshape(K, T * B, H)  # (K, T, B, H) -> (K, T*B, H)
    grads["encoder_in.weight"] = torch.bmm(_t(du_e), S["xr"])  # (K, H, T*B) @ (K, T*B, 32) -> (K, H, 32)
    grads["encoder_in.bias"] = _rowsum(du_e)  # (K, H)
    dg_d = torch.stack(d_gd, dim=1).view(K, T * B, 4 * H)  # (K, T*B, 4H)
    grads["decoder_cell.weight"] = _bmm_into(_t(S["cat"].view(K, T * B, 2 * H)), dg_d,
                                             buffers.GRAD_BUFFERS.empty_like(w_d))  # (K, 2H, 4H)
    du_d = torch.stack(d_u, dim=1).view(K, T * B, H)  # (K, T*B, H)
    y_prev = torch.stack(S["y_prev"], dim=1).view(K, T * B, -1)  # (K, T*B, 48)
    grads["decoder_in.weight"] = torch.bmm(_t(du_d), y_prev)  # (K, H, T*B) @ (K, T*B, 48) -> (K, H, 48)
    grads["decoder_in.bias"] = _rowsum(du_d)  # (K, H)
    dy_all = torch.stack(d_y, dim=1).view(K, T * B, -1)  # (K, T*B, 48)
    h_out = torch.stack(S["h_out"], dim=1).view(K, T * B, H)  # (K, T*B, H)
    grads["decoder_out.weight"] = torch.bmm(_t(dy_all), h_out)  # (K, 48, T*B) @ (K, T*B, H) -> (K, 48, H)
    grads["decoder_out.bias"] = _rowsum(dy_all)  # (K, 48)
    grads.update(_cell_param_grads(enc, "encoder_cell", parts_e))
    grads.update(_cell_param_grads(dec, "decoder_cell", parts_d))
    return grads


def _bmm_into(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """``bmm`` into a recycled float32 gradient buffer; under bf16 autocast the product comes out in
    bf16 (``out=`` would refuse it), so it is copied into the buffer instead."""
    if torch.is_autocast_enabled(a.device.type):
        return out.copy_(torch.bmm(a, b))
    return torch.bmm(a, b, out=out)


class _Seq2SeqFunction(torch.autograd.Function):
    """autograd wrapper: inputs (x, masks, residual, layer_norm, eps, *params in ``param_names`` order)."""

    # Under autocast (train.precision=bf16) the backward runs in the forward's autocast state.
    @staticmethod
    @autocast_forward
    def forward(ctx, x, masks, residual, layer_norm, eps, *tensors):
        names = param_names(layer_norm)
        P = dict(zip(names, tensors))
        out, saved = _forward(P, x, masks, residual, layer_norm, eps)
        ctx.names, ctx.P, ctx.S, ctx.masks = names, P, saved, masks
        return out

    @staticmethod
    @autocast_backward
    def backward(ctx, d_out):
        if ctx.needs_input_grad[0]:
            raise NotImplementedError("seq2seq_forward gives no gradient with respect to the 2D input x.")
        grads = _backward(ctx.P, ctx.S, ctx.masks, d_out.contiguous())
        ctx.S = ctx.P = None  # free the saved activations as soon as possible
        return (None, None, None, None, None, *(grads[n] for n in ctx.names))


def seq2seq_forward(params: dict[str, Tensor], x: Tensor, masks: Tensor | None, residual: Tensor,
                    layer_norm: bool, eps: float) -> Tensor:
    """K stacked seq2seq models: x (K, B, T, 32) -> (K, B, T, 48), differentiable in ``params``.

    ``params``: (K, ...) tensors keyed by ``param_names(layer_norm)``; ``masks``: (K, 5, T, B, H)
    inverted-dropout masks (0 or 1/keep; all ones for a model without dropout is exact) or None;
    ``residual``: (K,) 1.0/0.0 per model. No gradient flows to ``x`` (it is data)."""
    names = param_names(layer_norm)
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"seq2seq_forward: missing parameter(s) {missing} for layer_norm={layer_norm}.")
    return _Seq2SeqFunction.apply(x, masks, residual, layer_norm, eps, *(params[n] for n in names))
