"""Zhu, Ma, Liu, Liu, Wu & Wang, "MotionBERT: A Unified Perspective on Learning Human Motion
Representations", ICCV 2023 (code: Walter0807/MotionBERT); trained from scratch on 3D lifting
(``configs/pose3d/MB_train_h36m.yaml``), facts in ``transformer_lifters_facts.md`` section 1.

The network is ``dstformer_net.DSTformer`` (dual-stream spatio-temporal transformer, 5 depths, width 512,
8 heads, MLP ratio 2, LayerNorm eps 1e-6, tanh pre-logits: 42,466,317 parameters; lite: width 256,
MLP ratio 4: 16,001,549). This file is what liftbench needs around it:

* Input: the 17 H36M joints screen-normalised (x / w * 2 - 1, y / w * 2 - h / w) plus the detector's score
  per joint as a third channel (1.0 for ground-truth 2D and for 2D without scores; the protocol card says
  which stood in). Output: root-relative image-plane 2.5D in the same normalised units
  (``data.normalize``, ``output_norm = "image25d"``), decoded to millimetres as MotionBERT's evaluation
  does: times (w / 2) * k with k the frame's mm per pixel at the ground-truth root depth, and scored
  against the ground truth expressed the same way.
* Clips (``clip_frames``, any length up to the positional table ``maxlen`` = 243): training clips of 243
  frames every ``train_stride`` = 81 frames, tails dropped, each clip mirrored with probability 1/2;
  evaluation covers every frame exactly once (``data.windows.clip_plan``; a video shorter than a clip is
  one shorter clip), with flip test-time augmentation and the predicted root set to zero, as its
  evaluation does (``rootrel``).
* Loss (``clip_losses.motionbert_loss``): MPJPE + 0.5 N-MPJPE + 20 velocity error, in normalised units.
  Recipe: AdamW lr 2e-4, weight decay 0.01, lr x 0.99 per epoch, 32 clips per batch, 120 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from liftbench.data.conventions import FullWindowsOnly
from liftbench.data.normalize import Representation
from liftbench.data.skeleton import NUM_JOINTS
from liftbench.data.windows import WindowSpec
from liftbench.errors import CheckpointError, ConfigError
from liftbench.models.base import LIFTERS, Contract, Lifter, NormStats, flip_averaged
from liftbench.models.clip_losses import motionbert_loss
from liftbench.models.dstformer_net import DSTformer
from liftbench.models.official import count_indexed, joints_check, ratio, shape_of

REPRESENTATION = Representation(input_joints="h36m17", input_norm="screen", output_joints="all17",
                                output_norm="image25d", input_confidence=True)


@LIFTERS.register("motionbert", "dstformer")
class MotionBERTLifter(Lifter):
    """DSTformer over (x, y, score) clips -> root-relative image-plane 2.5D (decoded to mm per frame)."""

    @dataclass(frozen=True)
    class Config:
        dim_feat: int = 512  # dim_feat (lite: 256)
        dim_rep: int = 512  # dim_rep: width of the tanh motion representation
        depth: int = 5  # depth
        num_heads: int = 8  # num_heads
        mlp_ratio: float = 2.0  # mlp_ratio (lite: 4)
        maxlen: int = 243  # maxlen: frames of the temporal positional table
        clip_frames: int = 243  # clip length in training and evaluation (<= maxlen)
        train_stride: int = 81  # data_stride: a training clip every 81 frames
        att_fuse: bool = True  # learned per-token fusion of the two streams (else their mean)
        drop_path: float = 0.0  # not passed by MotionBERT's load_backbone, so 0
        test_flip: bool = True  # flip test-time augmentation (flip: True in every published config)

        def validate(self) -> None:
            where = "lifter 'motionbert'"
            for name in ("dim_feat", "dim_rep", "depth", "num_heads", "maxlen", "clip_frames", "train_stride"):
                if getattr(self, name) < 1:
                    raise ConfigError(f"{where}: '{name}' must be >= 1, got {getattr(self, name)}.")
            if self.dim_feat % self.num_heads:
                raise ConfigError(f"{where}: dim_feat {self.dim_feat} is not divisible by num_heads {self.num_heads}.")
            if self.clip_frames > self.maxlen:
                raise ConfigError(f"{where}: clip_frames {self.clip_frames} is longer than the positional table "
                                  f"(maxlen {self.maxlen}); use clip_frames <= {self.maxlen} or a larger maxlen.")
            if not self.mlp_ratio > 0:
                raise ConfigError(f"{where}: 'mlp_ratio' must be > 0, got {self.mlp_ratio}.")
            if not 0.0 <= self.drop_path < 1.0:
                raise ConfigError(f"{where}: 'drop_path' is a probability in [0, 1), got {self.drop_path}.")

    paper = ("Zhu, Ma, Liu, Liu, Wu & Wang, MotionBERT: A Unified Perspective on Learning Human Motion "
             "Representations, ICCV 2023 (code: Walter0807/MotionBERT)")
    reference_params = 42_466_317
    reference_variants = {"full (MB_train_h36m)": ({}, 42_466_317),
                          "lite (MB_lite)": ({"dim_feat": 256, "mlp_ratio": 4.0}, 16_001_549)}
    input_kind = "sequence"
    toggles = ("clip_frames", "att_fuse", "test_flip")
    # ``s_09_act_05_subact_02``, ``s_09_act_10_subact_02``, ``s_09_act_13_subact_01`` of its pickle (bad ground
    # truth), in VideoPose3D's take names as mmpose's skip list names them (S9_Greet(ing), S9_SittingDown, S9_Wait_1)
    evaluation_convention = FullWindowsOnly(
        "motionbert", "MotionBERT's evaluation: non-overlapping 243-frame windows from each video's first frame, the "
        "tail after the last full window never scored; S9 Greeting, SittingDown and Waiting 1 left out (bad ground "
        "truth); predicted root set to zero; frames weighted within an action, then the actions unweighted",
        zero_predicted_root=True, size=243,
        excluded=(("S9", "Greeting"), ("S9", "SittingDown"), ("S9", "Waiting 1")))
    train_defaults = {"lr": 2e-4, "batch_size": 32, "epochs": 120, "lr_decay": 0.99, "lr_decay_every": "epoch",
                      "optimizer": "adamw", "weight_decay": 0.01, "flip_augment": True, "flip_mode": "random"}
    # `liftbench import-checkpoint motionbert FILE`: train.py's {epoch, lr, optimizer, model_pos, min_loss}
    # (best_epoch.bin, latest_epoch.bin); official key K is liftbench key net.K. mmpose's converted weights
    # use other names (transformer_lifters_facts.md section 1.3): rewritten to the official ones, in order.
    checkpoint_format = "motionbert"
    official_prefix = "net."
    official_extras = ("min_loss",)
    official_key_rewrites = ((r"^backbone\.spat_embed$", "pos_embed"),
                             (r"^backbone\.attn_regress\.", "ts_attn."),
                             (r"^backbone\.(blocks_(?:st|ts)\.\d+\.mlp_[st])\.0\.", r"\1.fc1."),
                             (r"^backbone\.(blocks_(?:st|ts)\.\d+\.mlp_[st])\.2\.", r"\1.fc2."),
                             (r"^backbone\.", ""),
                             (r"^head\.pre_logits\.", "pre_logits."),
                             (r"^head\.fc\.", "head."))

    @classmethod
    def config_from_official(cls, state: dict[str, torch.Tensor],
                             given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, str]]]:
        """Width, depth, MLP ratio, representation width, frame table and fusion from the tensor shapes:
        joints_embed (C, 3), temp_embed (1, maxlen, 1, C), blocks_st.i..., mlp_s.fc1 (C r, C),
        pre_logits.fc (dim_rep, C), ts_attn.i present. The number of heads splits C without a trace."""
        what = "MotionBERT DSTformer"
        dim_feat, dim_in = shape_of(state, "joints_embed.weight", 2, what)
        if dim_in != 3:
            raise CheckpointError(f"tensor 'joints_embed.weight' reads {dim_in} values per joint; MotionBERT reads 3 "
                                  "(x, y, detector score)")
        maxlen = shape_of(state, "temp_embed", 4, what)[1]
        joints_check(shape_of(state, "pos_embed", 3, what)[1], "pos_embed")
        hidden = shape_of(state, "blocks_st.0.mlp_s.fc1.weight", 2, what)[0]
        read = {"dim_feat": dim_feat, "dim_rep": shape_of(state, "pre_logits.fc.weight", 2, what)[0],
                "depth": count_indexed(state, "blocks_st.{i}.norm1_s.weight"), "maxlen": maxlen,
                "mlp_ratio": ratio(hidden, dim_feat, "blocks_st.0.mlp_s.fc1.weight"),
                "att_fuse": "ts_attn.0.weight" in state}
        needs = {"num_heads": (8, "heads split the width without a trace in the weights; every released model has 8"),
                 "clip_frames": (min(243, maxlen), "MotionBERT evaluates clips of 243 frames (maxlen)"),
                 "test_flip": (True, "flip test-time augmentation (flip: True in every published config)")}
        return read, needs

    @classmethod
    def contract_for(cls, config: Config) -> Contract:
        return Contract(representation=REPRESENTATION,
                        window=WindowSpec(config.clip_frames, "clip", "inside", "window", stride=config.train_stride,
                                          short="shorter"),
                        label="Zhu et al. 2023 (MotionBERT DSTformer)", method="zhu2023",
                        test_time_augmentation="horizontal flip, averaged with the unflipped prediction"
                        if config.test_flip else "none")

    def __init__(self, config: Config | None = None):
        config = config or self.Config()
        super().__init__(config)
        self.net = DSTformer(dim_in=3, dim_out=3, dim_feat=config.dim_feat, dim_rep=config.dim_rep, depth=config.depth,
                             num_heads=config.num_heads, mlp_ratio=config.mlp_ratio, num_joints=NUM_JOINTS,
                             maxlen=config.maxlen, att_fuse=config.att_fuse, drop_path_rate=config.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 51) -> (B, T, 51)
        b, t, _ = x.shape
        y = self.net(x.view(b, t, NUM_JOINTS, 3))  # (B, T, 17, 3) x, y, score -> (B, T, 17, 3) x, y, z
        return y.reshape(b, t, NUM_JOINTS * 3)  # (B, T, 51)

    def predict_clips(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 51) -> (B, T, 51)
        """Flip-averaged (when ``test_flip``), predicted root set to zero (MotionBERT's ``rootrel`` evaluation)."""
        out = flip_averaged(self.forward, x, REPRESENTATION) if self.config.test_flip else self.forward(x)
        out = out.clone()
        out[..., :3] = 0.0  # the root joint's x, y, z
        return out

    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """MPJPE + 0.5 N-MPJPE + 20 velocity error on (B, T, 51) normalised 2.5D (MotionBERT ``train.py``)."""
        b, t, _ = pred.shape
        return motionbert_loss(pred.view(b, t, NUM_JOINTS, 3), target.view(b, t, NUM_JOINTS, 3))

    def flops_per_frame(self) -> dict[str, float]:
        """Matmul FLOPs (2 x the MACs of Linear layers and attention): per training window, one whole clip
        (3x its forward); per evaluated frame, the clip's forward over its frames, 2x with flip TTA."""
        frames = self.config.clip_frames
        clip = 2.0 * self.net.flops_per_clip(frames)["total"]
        return {"train": 3.0 * clip, "eval": clip / frames * (2 if self.config.test_flip else 1)}
