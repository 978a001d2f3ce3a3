"""Hossain & Little, "Exploiting temporal information for 3D human pose estimation", ECCV 2018.

A faithful port of the released TF code (rayat137/Pose_3D ``temporal_3d_release/temporal_model.py``;
facts in ``reference_implementations.md`` §1 and pitfalls §7). Encoder and decoder are ONE
layer-normalised LSTM layer each (``lnlstm.LNLSTMCell``), with separate weights, wrapped like TF's
``OutputProjection(InputProjection(DropoutWrapper(LayerNormBasicLSTMCell)))``. Per step:

1. input projection Linear(in -> H, bias), Glorot weights, zero bias;
2. dropout on the projected input;
3. the LN-LSTM cell, with recurrent dropout on the candidate g;
4. dropout on h for the OUTPUT only: the carried state (c, h) is not dropped (TF DropoutWrapper);
5. (decoder) output projection Linear(H -> 48);
6. (decoder, ``residual``) + this step's decoder input, i.e. the previous output.

All three dropouts use the same probability with a fresh mask every step. The encoder reads the
window time-reversed (t, t-1, ..., t-T+1) from the zero state; its per-step outputs are unused, so its
output projection (which gets no gradient in the reference) is not created. The decoder starts from
the encoder's final (c, h) with a START vector of ONES and then feeds back its own previous output
(no teacher forcing, in training and test; gradients flow through the feedback). Output k is frame
t-T+1+k (forward time order).

Loss (§1.6), in millimetres: mean((gt - pred)^2) + smoothness * mean(w_d * (pred[t+1] - pred[t])^2).

Implementations (``Config.implementation``), tested equal in ``tests/test_models.py`` and
``tests/test_fastpath.py``:

* ``"plain"``: the obvious per-step reference (one layer-norm call per gate, per-step autograd); the
  numerical reference and the ``liftbench bench`` baseline.
* ``"fast"`` (default): the whole window as one autograd function (``seq2seq_fused``) whose backward
  does every weight-gradient matmul once over all T steps; and for evaluation ``predict_causal``,
  which folds the input projections into the gate weights and shares each frame's encoder input
  work between the T causal windows that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM, SMOOTHNESS_JOINT_WEIGHTS
from liftbench.errors import ConfigError
from liftbench.models.base import LIFTERS, Lifter, NormStats
from liftbench.models.lnlstm import LNLSTMCell, State
from liftbench.models.seq2seq_fused import module_params, seq2seq_forward
from liftbench.models.stack import keep_mask_

# Dropout sites, one fresh (B, H) mask per site and step: rows of the (5, T, B, H) mask tensor.
_ENC_IN, _ENC_G, _DEC_IN, _DEC_G, _DEC_OUT = range(5)
# predict_causal works on chunks whose (b, 4H) temporaries hold at most this many floats (16 MB):
# larger fresh buffers are mmap-ed by glibc and page-faulted anew on every allocation.
EVAL_CHUNK_FLOATS = 1 << 22


def _glorot_linear(in_features: int, out_features: int) -> nn.Linear:
    """TF 1.x ``_Linear`` defaults: Glorot-uniform kernel, zero bias."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)  # symmetric in fan_in/fan_out, so the (out, in) layout is fine
    nn.init.zeros_(layer.bias)
    return layer


@LIFTERS.register("seq2seq", "hossain")
class Seq2SeqLifter(Lifter):
    """Sequence-to-sequence LN-LSTM lifter: (B, T, 32) normalised 2D -> (B, T, 48) normalised 3D."""

    @dataclass(frozen=True)
    class Config:
        hidden_size: int = 1024  # --linear_size: LSTM units and projection width
        seq_len: int = 5  # frames per window (T)
        residual: bool = True  # decoder output = projection + previous output
        layer_norm: bool = True  # LN on each gate and on the cell state (else: plain LSTM with bias)
        dropout: float = 0.5  # probability (reference keep_prob 0.5) on projected input, g and h
        smoothness: float = 5.0  # beta of the weighted first-difference loss term; 0 = off
        layer_norm_eps: float = 1e-12  # TF 1.x contrib layer_norm variance epsilon
        implementation: str = "fast"  # "fast" (seq2seq_fused, batched backward) or "plain" (per-step reference)

        def validate(self) -> None:
            where = "lifter 'seq2seq'"
            if self.hidden_size < 1:
                raise ConfigError(f"{where}: 'hidden_size' must be >= 1, got {self.hidden_size}.")
            if self.seq_len < 1:
                raise ConfigError(f"{where}: 'seq_len' must be >= 1, got {self.seq_len}.")
            if not 0.0 <= self.dropout < 1.0:
                raise ConfigError(f"{where}: 'dropout' is a probability in [0, 1), got {self.dropout}.")
            if self.smoothness < 0.0:
                raise ConfigError(f"{where}: 'smoothness' must be >= 0, got {self.smoothness}.")
            if self.layer_norm_eps <= 0.0:
                raise ConfigError(f"{where}: 'layer_norm_eps' must be > 0, got {self.layer_norm_eps}.")
            if self.implementation not in ("fast", "plain"):
                raise ConfigError(f"{where}: 'implementation' must be 'fast' or 'plain', got {self.implementation!r}.")

    paper = ("Hossain & Little, Exploiting temporal information for 3D human pose estimation, ECCV 2018 "
             "(code: rayat137/Pose_3D)")
    reference_params = 16_930_864  # trained variables of the released checkpoint (enc. output proj. excluded)
    input_kind = "sequence"
    toggles = ("residual", "layer_norm", "dropout", "smoothness", "seq_len")
    train_defaults = {"lr": 1e-5, "batch_size": 32, "epochs": 100}

    def __init__(self, config: Config | None = None):
        config = config or self.Config()
        super().__init__(config)
        H = config.hidden_size
        cell = dict(layer_norm=config.layer_norm, eps=config.layer_norm_eps, forget_bias=1.0)
        self.encoder_in = _glorot_linear(INPUT_DIM, H)
        self.encoder_cell = LNLSTMCell(H, H, **cell)
        self.decoder_in = _glorot_linear(OUTPUT_DIM, H)
        self.decoder_cell = LNLSTMCell(H, H, **cell)
        self.decoder_out = _glorot_linear(H, OUTPUT_DIM)
        # Per-dimension smoothness weights (48,): each joint's weight repeated over x, y, z.
        w = torch.tensor(SMOOTHNESS_JOINT_WEIGHTS, dtype=torch.float32).repeat_interleave(3)  # (16,) -> (48,)
        self.register_buffer("smooth_weights", w, persistent=False)
        # Optional per-model RNG for the dropout masks (None = torch's global RNG), a torch.Generator on
        # the model's device. Variant packing gives each packed model its own stream so it draws exactly
        # what a separate run would. Not part of the state_dict: whoever sets it saves its state.
        self.dropout_generator: torch.Generator | None = None

    @property
    def window(self) -> int:
        return self.config.seq_len

    # ------------------------------------------------------------------ forward
    def _dropout_masks(self, T: int, B: int, like: torch.Tensor) -> torch.Tensor | None:
        """All dropout masks of one forward pass, (5, T, B, H), drawn in ONE call so that both
        implementations consume the global RNG identically (the fast/plain equality test relies on
        it). Each entry is 0 or 1/keep (inverted dropout, like ``tf.nn.dropout``). None when off."""
        p = self.config.dropout
        if not self.training or p == 0.0:
            return None
        keep = 1.0 - p
        masks = torch.empty(5, T, B, self.config.hidden_size, device=like.device, dtype=like.dtype)
        return keep_mask_(masks, keep, self.dropout_generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32) -> (B, T, 48)
        B, T, _ = x.shape
        masks = self._dropout_masks(T, B, x)
        if self.config.implementation == "plain" or x.requires_grad:  # the fused path gives no d/dx
            return self._decode(self._encode_plain(x, masks), B, T, x, masks)
        # Production path: the whole window as one autograd function (K = 1 model) whose backward
        # batches every weight-gradient matmul over the T steps (seq2seq_fused.py).
        residual = x.new_full((1,), 1.0 if self.config.residual else 0.0)  # (1,) per-model multiplier
        out = seq2seq_forward(module_params(self), x.unsqueeze(0), None if masks is None else masks.unsqueeze(0),
                              residual, self.config.layer_norm, self.config.layer_norm_eps)  # (1, B, T, 48)
        return out[0]  # (B, T, 48)

    def _encode_plain(self, x: torch.Tensor, masks: torch.Tensor | None) -> State:
        """Reference encoder: one step at a time from the zero state, newest frame first."""
        B, T, _ = x.shape
        state = self.encoder_cell.zero_state(B, x)
        for t in range(T):
            xp = self.encoder_in(x[:, T - 1 - t])  # (B, 32) -> (B, H); frame t-0, t-1, ... (reversed)
            if masks is not None:
                xp = xp * masks[_ENC_IN, t]
            _, state = self.encoder_cell.reference_step(xp, state, None if masks is None else masks[_ENC_G, t])
            # The encoder's dropped-out output and its projection would be computed here in TF but are unused.
        return state

    def _decode(self, state: State, B: int, T: int, like: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """Reference decoder with output feedback: input 0 is the START ones vector, input k the output k-1."""
        step = self.decoder_cell.reference_step
        y = like.new_ones(B, OUTPUT_DIM)  # START token (B, 48), in normalised 3D space
        outputs = []
        for k in range(T):
            xp = self.decoder_in(y)  # (B, 48) -> (B, H)
            if masks is not None:
                xp = xp * masks[_DEC_IN, k]
            h, state = step(xp, state, None if masks is None else masks[_DEC_G, k])
            if masks is not None:
                h = h * masks[_DEC_OUT, k]  # output dropout only; `state` keeps the undropped h
            out = self.decoder_out(h)  # (B, H) -> (B, 48)
            y = out + y if self.config.residual else out  # residual on this step's input (prev. output)
            outputs.append(y)
        return torch.stack(outputs, dim=1)  # T x (B, 48) -> (B, T, 48)

    # ------------------------------------------------------------------ causal evaluation
    @torch.no_grad()
    def predict_causal(self, inputs: torch.Tensor, index: torch.Tensor, batch_size: int) -> torch.Tensor:
        """(F, 32) frames, (F, T) causal window rows -> (F, 48) last output of each window (inference).

        Without dropout the input projections are linear maps feeding linear maps, so they fold:
        ``encoder_in(x) @ W_x = x @ (W_in^T W_x) + b_in W_x`` is a per-frame (32 -> 4H) function,
        computed ONCE per frame of a batch and gathered for the T windows containing it; the
        decoder's ``decoder_in(y) @ W_x`` likewise becomes ``y @ (48 x 4H)``. What remains per step
        is the recurrent ``h @ W_h`` on the whole batch. Same function up to float rounding
        (re-association). Used only without dropout masks (eval mode or dropout 0)."""
        if self.config.implementation == "plain" or (self.training and self.config.dropout > 0.0):
            return super().predict_causal(inputs, index, batch_size)
        T, H = index.shape[1], self.config.hidden_size
        if index.shape[0] == 0:
            return inputs.new_empty(0, OUTPUT_DIM)
        enc, dec = self.encoder_cell, self.decoder_cell
        # Folded input halves: (32, 4H) / (48, 4H) weights and (4H,) biases.
        enc_w = self.encoder_in.weight.t() @ enc.weight[:H]  # (32, H) @ (H, 4H) -> (32, 4H)
        enc_b = self.encoder_in.bias @ enc.weight[:H]  # (H,) @ (H, 4H) -> (4H,)
        dec_w = self.decoder_in.weight.t() @ dec.weight[:H]  # (48, H) @ (H, 4H) -> (48, 4H)
        dec_b = self.decoder_in.bias @ dec.weight[:H]  # (4H,)
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
                h, c = enc.inference_pointwise_(gates, c)
            y = inputs.new_ones(len(inv), OUTPUT_DIM)  # START token (b, 48)
            for _ in range(T):  # decoder with output feedback
                gates = torch.addmm(dec_b, y, dec_w).addmm_(h, dec.weight[H:])  # (b, 48) @ (48, 4H) + (b, H) @ (H, 4H)
                h, c = dec.inference_pointwise_(gates, c)
                out = self.decoder_out(h)  # (b, H) -> (b, 48)
                y = out + y if self.config.residual else out
            chunks.append(y)  # (b, 48): the last frame of each window
        return torch.cat(chunks)  # (F, 48)

    # ------------------------------------------------------------------ loss
    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """Reference loss in mm (alpha = 1, beta = ``smoothness``); element means, not joint sums."""
        pred_mm = stats.unnormalize_output(pred)  # (B, T, 48) mm
        gt_mm = stats.unnormalize_output(target)  # (B, T, 48) mm
        loss = torch.mean((gt_mm - pred_mm) ** 2)
        if self.config.smoothness > 0.0 and pred.shape[1] > 1:  # no first difference when T = 1
            diff = pred_mm[:, 1:] - pred_mm[:, :-1]  # (B, T-1, 48) predicted velocities only
            loss = loss + self.config.smoothness * torch.mean(self.smooth_weights * diff**2)
        return loss
