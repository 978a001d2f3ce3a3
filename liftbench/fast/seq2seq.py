"""The Hossain seq2seq's speed path: fused stacked training and folded causal evaluation.

Why: the readable model (``models/seq2seq.py``) runs one step at a time with per-step autograd, so
every weight-gradient matmul has only B rows (slow on CPUs), and evaluation recomputes each frame's
input projection in each of the T windows that contain it. Here:

* training: ``Seq2SeqStack``, K same-shaped models through ``seq2seq_fused.seq2seq_forward`` (the whole
  window as one autograd function whose backward batches every weight gradient over all T steps);
  each member is scored by the model's own ``loss``;
* evaluation: ``Seq2SeqSpeed.predict_frames``, the input projections folded into the gate weights
  and each frame's encoder input work done once and shared by its T windows;
* ``fused_forward``: the K = 1 fused forward of one module (the equality tests and bench use it).

All are tested equal to the readable model (``tests/test_fastpath.py``, ``tests/test_models.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from liftbench.data.normalize import NormStats
from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM
from liftbench.fast.base import SpeedPath
from liftbench.fast.seq2seq_fused import module_params, seq2seq_forward
from liftbench.fast.stack import ModuleStack
from liftbench.models.lnlstm import _F, _I, _J, _O, LNLSTMCell, State
from liftbench.models.seq2seq import Seq2SeqLifter, keep_mask_

# predict_frames works on chunks whose (b, 4H) temporaries hold at most this many floats (16 MB):
# larger fresh buffers are mmap-ed by glibc and page-faulted anew on every allocation.
EVAL_CHUNK_FLOATS = 1 << 22


# ------------------------------------------------------------------ point-wise LSTM step, grouped
def gate_shift(cell: LNLSTMCell) -> Tensor:
    """(4, H) additive term after the gate norms: LN shift (or linear bias) + constant forget bias."""
    offset = cell.weight.new_zeros(4, 1)  # (4, 1): the forget bias on row f only
    offset[_F] = cell.forget_bias
    if cell.layer_norm:
        return cell.gate_ln_bias + offset  # (4, H) + (4, 1) -> (4, H)
    return cell.bias.view(4, cell.hidden_size) + offset  # (4H,) -> (4, H)


def pointwise(cell: LNLSTMCell, gates: Tensor, c_prev: Tensor | None, g_mask: Tensor | None,
              shift: Tensor) -> tuple[Tensor, State]:
    """``LNLSTMCell.reference_step`` after the matmul, with ONE grouped layer norm for the four gates.

    gates (B, 4H) WITHOUT bias; c_prev None means zero. The reference of ``inference_pointwise_``."""
    B, H = gates.shape[0], cell.hidden_size
    pre = gates.view(B, 4, H)  # (B, 4H) -> (B, 4, H): one row per gate
    if cell.layer_norm:
        # One normalisation call for all four gates: each (b, k) row is normalised over its H units,
        # exactly what four separate calls do; the per-gate gains/shifts are applied afterwards.
        pre = F.layer_norm(pre, (H,), None, None, cell.eps)  # (B, 4, H)
        pre = torch.addcmul(shift, pre, cell.gate_ln_weight)  # (4, H) + (B, 4, H) * (4, H)
    else:
        pre = pre + shift  # bias (+1 on f) folded in here: (B, 4, H) + (4, H)
    sig = torch.sigmoid(pre)  # (B, 4, H); the j row is unused (j goes through tanh)
    g = torch.tanh(pre[:, _J])  # (B, H)
    if g_mask is not None:
        g = g * g_mask
    c = sig[:, _I] * g
    if c_prev is not None:  # zero initial state: the forget term vanishes exactly
        c = torch.addcmul(c, c_prev, sig[:, _F])
    if cell.layer_norm:
        c = F.layer_norm(c, (H,), cell.state_ln_weight, cell.state_ln_bias, cell.eps)
    h = torch.tanh(c) * sig[:, _O]
    return h, (c, h)


@torch.no_grad()
def inference_pointwise_(cell: LNLSTMCell, gates: Tensor, c_prev: Tensor | None, shift: Tensor) -> State:
    """``pointwise`` without dropout for inference, overwriting ``gates`` (B, 4H) in place.

    Same arithmetic in the same order (bitwise the same result), but about four allocations per
    step instead of a dozen: at evaluation batches each (B, 4H) temporary is tens of MB, and on
    this CPU fresh large buffers cost page faults as well as bandwidth. Returns (h, c)."""
    B, H = gates.shape[0], cell.hidden_size
    pre = gates.view(B, 4, H)  # (B, 4H) -> (B, 4, H)
    if cell.layer_norm:
        pre = F.layer_norm(pre, (H,), None, None, cell.eps)  # (B, 4, H), the one new buffer
        torch.addcmul(shift, pre, cell.gate_ln_weight, out=pre)  # in place: shift + n * gain
    else:
        pre.add_(shift)  # (B, 4, H) + (4, H)
    # The same element-wise calls on the same layouts as ``pointwise`` (a sigmoid over the whole
    # (B, 4, H) block, tanh of the strided j view): an in-place sigmoid on a strided (B, H) view
    # takes another SIMD path and differs in the last bit on AVX-512 CPUs (measured).
    sig = torch.sigmoid(pre)  # (B, 4, H)
    c = sig[:, _I] * torch.tanh(pre[:, _J])  # (B, H)
    if c_prev is not None:
        c.addcmul_(c_prev, sig[:, _F])
    if cell.layer_norm:
        c = F.layer_norm(c, (H,), cell.state_ln_weight, cell.state_ln_bias, cell.eps)
    h = torch.tanh(c).mul_(sig[:, _O])
    return h, c


# ------------------------------------------------------------------ training
def fused_forward(model: Seq2SeqLifter, x: Tensor) -> Tensor:
    """The readable forward's function through the fused autograd function (K = 1): (B, T, 32) -> (B, T, 48).

    Draws its dropout masks exactly as the readable forward does (``_dropout_masks``, one call), so
    with the same RNG state both give the same function (``tests/test_fastpath.py``). No d/dx."""
    B, T, _ = x.shape
    masks = model._dropout_masks(T, B, x)  # (5, T, B, H) or None
    residual = x.new_full((1,), 1.0 if model.config.residual else 0.0)  # (1,) per-model multiplier
    out = seq2seq_forward(module_params(model), x.unsqueeze(0), None if masks is None else masks.unsqueeze(0),
                          residual, model.config.layer_norm, model.config.layer_norm_eps)  # (1, B, T, 48)
    return out[0]  # (B, T, 48)


class Seq2SeqStack(ModuleStack):
    """K seq2seq models through ``seq2seq_fused.seq2seq_forward``, each scored by its own ``loss``."""

    packable = ("residual", "dropout", "smoothness")

    def __init__(self, models: list[Seq2SeqLifter], device: torch.device):
        super().__init__(models, device)
        c0 = self.configs[0]
        self.layer_norm, self.eps, self.H = c0.layer_norm, c0.layer_norm_eps, c0.hidden_size
        self.residual = torch.tensor([1.0 if c.residual else 0.0 for c in self.configs], device=self.device)  # (K,)

    def _masks(self, T: int, B: int, generators: list[torch.Generator]) -> Tensor | None:
        """(K, 5, T, B, H): member k's masks drawn in ONE call from its generator, exactly as
        ``Seq2SeqLifter._dropout_masks`` draws them; all ones for a member without dropout."""
        if all(c.dropout == 0.0 for c in self.configs):
            return None
        masks = torch.empty(self.K, 5, T, B, self.H, device=self.device)
        for k, c in enumerate(self.configs):
            if c.dropout == 0.0:
                masks[k].fill_(1.0)
            else:
                keep_mask_(masks[k], 1.0 - c.dropout, generators[k])
        return masks

    def losses(self, x: Tensor, y: Tensor, stats: list[NormStats], generators: list[torch.Generator]) -> Tensor:
        """Each member's ``Seq2SeqLifter.loss`` (mm, smoothness) of its slice of the stacked prediction, (K,)."""
        K, B, T, _ = x.shape
        pred = seq2seq_forward(self.params, x, self._masks(T, B, generators), self.residual, self.layer_norm,
                               self.eps)  # (K, B, T, 48)
        return torch.stack([model.loss(p, t, s)  # per member: (B, T, 48) each
                            for model, p, t, s in zip(self.models, pred.unbind(0), y.unbind(0), stats)])  # (K,)


# ------------------------------------------------------------------ evaluation
@torch.no_grad()
def folded_predict_frames(model: Seq2SeqLifter, inputs: Tensor, index: Tensor, batch_size: int) -> Tensor:
    """(F, 32) frames, (F, T) causal window rows -> (F, 48) last output of each window (inference).

    Without dropout the input projections are linear maps feeding linear maps, so they fold:
    ``encoder_in(x) @ W_x = x @ (W_in^T W_x) + b_in W_x`` is a per-frame (32 -> 4H) function,
    computed ONCE per frame of a batch and gathered for the T windows containing it; the
    decoder's ``decoder_in(y) @ W_x`` likewise becomes ``y @ (48 x 4H)``. What remains per step
    is the recurrent ``h @ W_h`` on the whole batch. Same function up to float rounding
    (re-association). Used only without dropout masks (eval mode or dropout 0)."""
    T, H = index.shape[1], model.config.hidden_size
    if index.shape[0] == 0:
        return inputs.new_empty(0, OUTPUT_DIM)
    enc, dec = model.encoder_cell, model.decoder_cell
    enc_shift, dec_shift = gate_shift(enc), gate_shift(dec)  # (4, H) each
    # Folded input halves: (32, 4H) / (48, 4H) weights and (4H,) biases.
    enc_w = model.encoder_in.weight.t() @ enc.weight[:H]  # (32, H) @ (H, 4H) -> (32, 4H)
    enc_b = model.encoder_in.bias @ enc.weight[:H]  # (H,) @ (H, 4H) -> (4H,)
    dec_w = model.decoder_in.weight.t() @ dec.weight[:H]  # (48, H) @ (H, 4H) -> (48, 4H)
    dec_b = model.decoder_in.bias @ dec.weight[:H]  # (4H,)
    step = max(1, min(batch_size, EVAL_CHUNK_FLOATS // (4 * H)))  # windows per chunk
    chunks = []
    for a in range(0, index.shape[0], step):
        rows, inv = torch.unique(index[a : a + step], return_inverse=True)  # (R,) frames, (b, T) into them
        gx = torch.addmm(enc_b, inputs[rows], enc_w)  # (R, 32) @ (32, 4H) -> (R, 4H), once per frame
        c = h = None
        for t in range(T):  # newest frame first (reversed encoder), from the zero state
            gates = gx[inv[:, T - 1 - t]]  # (b, 4H) gathered per window
            if h is not None:
                gates.addmm_(h, enc.weight[H:])  # += (b, H) @ (H, 4H)
            h, c = inference_pointwise_(enc, gates, c, enc_shift)
        y = inputs.new_ones(len(inv), OUTPUT_DIM)  # START token (b, 48)
        for _ in range(T):  # decoder with output feedback
            gates = torch.addmm(dec_b, y, dec_w).addmm_(h, dec.weight[H:])  # (b, 48) @ (48, 4H) + (b, H) @ (H, 4H)
            h, c = inference_pointwise_(dec, gates, c, dec_shift)
            out = model.decoder_out(h)  # (b, H) -> (b, 48)
            y = out + y if model.config.residual else out
        chunks.append(y)  # (b, 48): the last frame of each window
    return torch.cat(chunks)  # (F, 48)


class Seq2SeqSpeed(SpeedPath):
    """``Seq2SeqLifter.speed_path``: fused stacked training, folded causal evaluation."""

    stack = Seq2SeqStack

    @classmethod
    def predict_frames(cls, model, inputs, index, batch_size, segments):
        if model.training and model.config.dropout > 0.0:  # dropout masks: the readable model's windows
            return None
        return folded_predict_frames(model, inputs, index, batch_size)

    @classmethod
    def executed_flops(cls, model: Seq2SeqLifter) -> dict[str, float]:
        """Per training window / evaluated frame (``cpu_performance_notes.md`` section 2). Plain autograd
        skips the data gradient into the START token; the fused step also skips the encoder's t = 0
        h-half (h = 0: forward, data and weight gradient of (B, H) x (H, 4H)). The folded evaluator
        does the encoder input half (32 -> 4H) once per frame, the recurrent h @ W_h per window and
        step, the folded decoder input half (48 -> 4H); the once-per-call fold (< 1 GFLOP) is not counted."""
        h, T = model.config.hidden_size, model.window
        gate_half = 2 * h * 4 * h  # one (1, H) @ (H, 4H) product
        nominal = model.flops_per_frame()
        train_plain = nominal["train"] - 2 * OUTPUT_DIM * h
        fold_enc, fold_dec, dec_out = 2 * INPUT_DIM * 4 * h, 2 * OUTPUT_DIM * 4 * h, 2 * h * OUTPUT_DIM
        eval_production = fold_enc + (T - 1) * gate_half + T * (fold_dec + gate_half + dec_out)
        return {"train_plain": train_plain, "train_production": train_plain - 3 * gate_half,
                "eval_production": float(eval_production)}
