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

Training and evaluation run through the speed path ``liftbench.fast.seq2seq`` (a fused autograd
function over the whole window, and a folded causal evaluator); it computes this module's function
(tested in ``tests/test_fastpath.py``) and scores with this module's ``loss``. Inside
``liftbench.fast.disabled()`` this module itself is trained and evaluated (``liftbench bench``'s plain path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from liftbench.data.skeleton import INPUT_DIM, OUTPUT_DIM, SMOOTHNESS_JOINT_WEIGHTS
from liftbench.data.windows import WindowSpec
from liftbench.errors import ConfigError
from liftbench.models.base import LIFTERS, Contract, Lifter, NormStats
from liftbench.models.lnlstm import LNLSTMCell, State

# Dropout sites, one fresh (B, H) mask per site and step: rows of the (5, T, B, H) mask tensor.
_ENC_IN, _ENC_G, _DEC_IN, _DEC_G, _DEC_OUT = range(5)


def keep_mask_(out: torch.Tensor, keep: float, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``out`` in place with inverted-dropout values: 1/keep with probability ``keep``, else 0.

    One uniform draw per entry, compared with ``keep`` (P(u < keep) = keep for u in [0, 1)), then
    divided by ``keep`` like ``tf.nn.dropout``. Why not ``bernoulli_``: on the project CPU it takes
    ~12 ms for one step's (5, T, B, H) masks, ``uniform_`` + compare ~4 ms, same distribution. Every
    seq2seq dropout mask (this module, the fused path, single and packed runs) is drawn here."""
    return out.uniform_(generator=generator).lt_(keep).div_(keep)


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

    paper = ("Hossain & Little, Exploiting temporal information for 3D human pose estimation, ECCV 2018 "
             "(code: rayat137/Pose_3D)")
    reference_params = 16_930_864  # trained variables of the released checkpoint (enc. output proj. excluded)
    input_kind = "sequence"
    toggles = ("residual", "layer_norm", "dropout", "smoothness", "seq_len")
    train_defaults = {"lr": 1e-5, "batch_size": 32, "epochs": 100}
    speed_path = "liftbench.fast.seq2seq:Seq2SeqSpeed"  # fused training, folded causal evaluation
    retired_config_keys = ("implementation",)  # fast vs plain was a config key until 0.1 (now a runtime switch)

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

    @classmethod
    def contract_for(cls, config: Config) -> Contract:
        """z-scored 16-joint 2D in, 16 non-root joints out; causal windows fully inside a sequence,
        trained on every frame of the window (the reference's seq2seq targets)."""
        return Contract(window=WindowSpec(config.seq_len, "causal", "inside", "window"),
                        label="Hossain & Little 2018 (seq2seq LN-LSTM)", method="hossain2018")

    # ------------------------------------------------------------------ forward
    def _dropout_masks(self, T: int, B: int, like: torch.Tensor) -> torch.Tensor | None:
        """All dropout masks of one forward pass, (5, T, B, H), drawn in ONE call so that this module
        and the fused speed path consume the RNG identically (the equality tests rely on it). Each
        entry is 0 or 1/keep (inverted dropout, like ``tf.nn.dropout``). None when off."""
        p = self.config.dropout
        if not self.training or p == 0.0:
            return None
        keep = 1.0 - p
        masks = torch.empty(5, T, B, self.config.hidden_size, device=like.device, dtype=like.dtype)
        return keep_mask_(masks, keep, self.dropout_generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 32) -> (B, T, 48)
        B, T, _ = x.shape
        masks = self._dropout_masks(T, B, x)
        return self._decode(self._encode(x, masks), B, T, x, masks)

    def _encode(self, x: torch.Tensor, masks: torch.Tensor | None) -> State:
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

    def flops_per_frame(self) -> dict[str, float]:
        """Matmul FLOPs of the paper graph (``cpu_performance_notes.md`` section 2), per training window
        (forward + data + weight gradients, no data gradient into the 2D input) and per evaluated frame
        (one whole causal window per frame). ``liftbench.fast.seq2seq`` reports what its paths skip."""
        h, T = self.config.hidden_size, self.config.seq_len
        gate = 2 * (2 * h) * (4 * h)  # one [x, h] @ W per window and step
        enc_in = 2 * INPUT_DIM * h
        forward = T * (enc_in + gate + 2 * OUTPUT_DIM * h + gate + 2 * h * OUTPUT_DIM)
        return {"train": float(3 * forward - T * enc_in), "eval": float(forward)}
