"""Zhang, Tang, Shi, Li, Huang & Wang, "MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose
Estimation in Video", CVPR 2022 (code: JinluZhang1126/MixSTE, which has no licence: written from the
facts in ``transformer_lifters_facts.md`` section 2 only).

The network is ``mixste_net.MixSTENet`` (8 alternating spatial / temporal transformer blocks with one
shared spatial and one shared temporal LayerNorm, width 512, 8 heads, MLP ratio 2: 33,783,811 parameters
at 243 frames, 33,700,867 at 81). This file is what liftbench needs around it:

* Input: the 17 H36M joints screen-normalised (x / w * 2 - 1, y / w * 2 - h / w), no score channel.
  Output: every frame of the clip (seq2seq), 17 joints in metres with a zero root target; the predicted
  root is kept and scored (MixSTE's evaluation does not zero it).
* Clips of exactly ``frames`` frames (the temporal positional table is not sliced). Training: the
  non-overlapping clip grid centred on each video, both ends edge-padded, every clip also seen mirrored
  (``ChunkedGenerator_Seq``). Evaluation: every frame exactly once (``data.windows.clip_plan``; the last
  clip aligned to the video's end; a video shorter than a clip right-padded by repeating its last frame),
  with flip test-time augmentation.
* Loss (``clip_losses.mixste_loss``): weighted MPJPE (17 joint weights) + 0.5 temporal consistency of the
  prediction + 2 MPJVE, in metres, backpropagated as the paper's code does, ``L.backward(gradient=L)``
  (``gradient_times_loss``: the logged loss is L, the applied gradient L dL, i.e. of L^2 / 2).
  Recipe: AdamW lr 4e-5, weight decay 0.1, lr x 0.99 per epoch, 4 clips of 243 frames per batch
  (1024 // 243), 120 epochs, drop path linspace(0, 0.1, 8) in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from liftbench.data.conventions import LastWindowAtEnd
from liftbench.data.normalize import Representation
from liftbench.data.skeleton import NUM_JOINTS
from liftbench.data.windows import WindowSpec
from liftbench.errors import CheckpointError, ConfigError
from liftbench.models.base import LIFTERS, Contract, Lifter, NormStats, flip_averaged
from liftbench.models.clip_losses import gradient_times_loss, mixste_loss
from liftbench.models.mixste_net import MixSTENet
from liftbench.models.official import count_indexed, joints_check, ratio, shape_of

REPRESENTATION = Representation(input_joints="h36m17", input_norm="screen", output_joints="all17", output_norm="metres")


@LIFTERS.register("mixste")
class MixSTELifter(Lifter):
    """MixSTE over screen-normalised 2D clips -> 17-joint 3D in metres for every frame."""

    @dataclass(frozen=True)
    class Config:
        frames: int = 243  # -f: clip length (and the temporal positional table)
        embed_dim: int = 512  # -cs
        depth: int = 8  # -dep
        num_heads: int = 8
        mlp_ratio: float = 2.0
        drop_path: float = 0.1  # top of linspace(0, rate, depth) in the training copy
        gradient_times_loss: bool = True  # L.backward(gradient=L), as the paper's code (False: plain backward)
        test_flip: bool = True  # flip test-time augmentation (always on in the paper's evaluation)

        def validate(self) -> None:
            where = "lifter 'mixste'"
            for name in ("frames", "embed_dim", "depth", "num_heads"):
                if getattr(self, name) < 1:
                    raise ConfigError(f"{where}: '{name}' must be >= 1, got {getattr(self, name)}.")
            if self.embed_dim % self.num_heads:
                raise ConfigError(f"{where}: embed_dim {self.embed_dim} is not divisible by num_heads "
                                  f"{self.num_heads}.")
            if not self.mlp_ratio > 0:
                raise ConfigError(f"{where}: 'mlp_ratio' must be > 0, got {self.mlp_ratio}.")
            if not 0.0 <= self.drop_path < 1.0:
                raise ConfigError(f"{where}: 'drop_path' is a probability in [0, 1), got {self.drop_path}.")

    paper = ("Zhang, Tang, Shi, Li, Huang & Wang, MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose "
             "Estimation in Video, CVPR 2022 (code: JinluZhang1126/MixSTE)")
    reference_params = 33_783_811
    reference_variants = {"243 frames": ({"frames": 243}, 33_783_811), "81 frames": ({"frames": 81}, 33_700_867)}
    input_kind = "sequence"
    toggles = ("frames", "gradient_times_loss", "test_flip")
    evaluation_convention = LastWindowAtEnd(
        "mixste", "MixSTE's evaluation: ceil(n/243) windows per video, the last aligned to its end, every window's "
        "frames weighted, so the overlap of the last window counts twice (here: the frame's one prediction, twice; "
        "MixSTE's code predicts it again from the last window); a video under 243 frames right-padded by repeating "
        "its last frame, which then counts 1 + the padding; predicted root kept", size=243)
    train_defaults = {"lr": 4e-5, "batch_size": 4, "epochs": 120, "lr_decay": 0.99, "lr_decay_every": "epoch",
                      "optimizer": "adamw", "weight_decay": 0.1, "flip_augment": True, "flip_mode": "copy"}
    # `liftbench import-checkpoint mixste FILE`: run.py's {epoch, lr, random_state, optimizer, model_pos};
    # official key K is liftbench key net.K (loaded strictly, unlike the original's strict=False)
    checkpoint_format = "mixste"
    official_prefix = "net."
    official_extras = ("random_state",)

    @classmethod
    def config_from_official(cls, state: dict[str, torch.Tensor],
                             given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, str]]]:
        """Frames, width, depth and MLP ratio from the tensor shapes: Temporal_pos_embed (1, F, C),
        Spatial_patch_to_embedding (C, 2), STEblocks.i..., mlp.fc1 (C r, C). Heads leave no trace."""
        what = "MixSTE (MixSTE2)"
        embed_dim, chans = shape_of(state, "Spatial_patch_to_embedding.weight", 2, what)
        if chans != 2:
            raise CheckpointError(f"tensor 'Spatial_patch_to_embedding.weight' reads {chans} values per joint; "
                                  "MixSTE reads 2 (x, y)")
        joints_check(shape_of(state, "Spatial_pos_embed", 3, what)[1], "Spatial_pos_embed")
        hidden = shape_of(state, "STEblocks.0.mlp.fc1.weight", 2, what)[0]
        read = {"frames": shape_of(state, "Temporal_pos_embed", 3, what)[1], "embed_dim": embed_dim,
                "depth": count_indexed(state, "STEblocks.{i}.norm1.weight"),
                "mlp_ratio": ratio(hidden, embed_dim, "STEblocks.0.mlp.fc1.weight")}
        needs = {"num_heads": (8, "heads split the width without a trace in the weights; the released models have 8"),
                 "test_flip": (True, "flip test-time augmentation (always on in MixSTE's evaluation)"),
                 "drop_path": (0.1, "training only: no effect on predictions")}
        return read, needs

    @classmethod
    def contract_for(cls, config: Config) -> Contract:
        return Contract(representation=REPRESENTATION,
                        window=WindowSpec(config.frames, "clip", "grid", "window", short="pad"),
                        label="Zhang et al. 2022 (MixSTE)", method="zhang2022",
                        test_time_augmentation="horizontal flip, averaged with the unflipped prediction"
                        if config.test_flip else "none")

    def __init__(self, config: Config | None = None):
        config = config or self.Config()
        super().__init__(config)
        self.net = MixSTENet(num_frame=config.frames, num_joints=NUM_JOINTS, in_chans=2, embed_dim=config.embed_dim,
                             depth=config.depth, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                             drop_path_rate=config.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 34) -> (B, T, 51)
        b, t, _ = x.shape
        y = self.net(x.view(b, t, NUM_JOINTS, 2))  # (B, T, 17, 2) -> (B, T, 17, 3) metres
        return y.reshape(b, t, NUM_JOINTS * 3)  # (B, T, 51)

    def predict_clips(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 34) -> (B, T, 51)
        return flip_averaged(self.forward, x, REPRESENTATION) if self.config.test_flip else self.forward(x)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """WMPJPE + 0.5 TC + 2 MPJVE on (B, T, 51) metres (MixSTE ``run.py``), with its gradient quirk."""
        b, t, _ = pred.shape
        loss = mixste_loss(pred.view(b, t, NUM_JOINTS, 3), target.view(b, t, NUM_JOINTS, 3))
        return gradient_times_loss(loss) if self.config.gradient_times_loss else loss

    def flops_per_frame(self) -> dict[str, float]:
        """Matmul FLOPs (2 x the MACs of Linear layers and attention): per training window, one whole clip
        (3x its forward); per evaluated frame, the clip's forward over its frames, 2x with flip TTA."""
        clip = 2.0 * self.net.flops_per_clip()["total"]
        return {"train": 3.0 * clip, "eval": clip / self.config.frames * (2 if self.config.test_flip else 1)}
