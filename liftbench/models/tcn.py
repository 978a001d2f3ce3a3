"""Pavllo, Feichtenhofer, Grangier & Auli, "3D human pose estimation in video with temporal
convolutions and semi-supervised training", CVPR 2019 (code: facebookresearch/VideoPose3D).

The supervised temporal convolutional lifter, faithful to ``common/model.py`` (facts in
``videopose3d_facts.md``):

    Conv1d(34 -> C, W0, no bias) -> BN -> ReLU -> Dropout
    for block i = 1..B:  res = centre (or causal end) slice of x
                         x = Dropout(ReLU(BN(Conv1d(C -> C, Wi, dilation W0*..*W(i-1), no bias))))
                         x = res + Dropout(ReLU(BN(Conv1d(C -> C, 1, no bias))))
    Conv1d(C -> 51, 1, with bias)

* Receptive field = product of the widths: 3,3,3 / 3,3,3,3 / 3,3,3,3,3 -> 27 / 81 / 243 frames,
  8,555,571 / 12,753,971 / 16,952,371 trainable parameters at C = 1024.
* Input: the 17 H36M joints screen-normalised (x/w*2-1, y/w*2-h/w, no z-score); output: all 17
  joints in metres, root target zero (the predicted root is kept and scored). Loss: MPJPE in metres.
* Training sees one window of RF frames per frame (edges replicated), through the STRIDED model
  (stride = width: ``TemporalModelOptimized1f``), which shares every parameter with the dilated model
  and equals it on one receptive field in eval mode; ``dense`` trains the dilated model (the paper's
  "w/o dilation" ablation uses dense kernels). Evaluation runs the dilated model over whole videos
  padded by edge replication (``predict_frames``), with optional flip test-time augmentation.
* BatchNorm: PyTorch defaults (eps 1e-5, momentum 0.1, decayed by the recipe's schedule).
* ``in_features = 3`` reads the detector's score as a third value per joint (17 x 3 = 51 input channels, as
  VideoPose3D's ``d-pt-243.bin``). Released weights load with ``liftbench import-checkpoint videopose3d``:
  module names equal ``TemporalModel``'s, the configuration is read from the tensor shapes
  (``config_from_official``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from liftbench.data.conventions import EveryFrameOnce
from liftbench.data.normalize import Representation
from liftbench.data.skeleton import NUM_JOINTS
from liftbench.data.windows import WindowSpec
from liftbench.errors import CheckpointError, ConfigError
from liftbench.models.base import LIFTERS, Contract, Lifter, NormStats, flip_averaged
from liftbench.models.official import count_indexed, joints_check, shape_of

REPRESENTATION = Representation(input_joints="h36m17", input_norm="screen", output_joints="all17", output_norm="metres")
# in_features = 3: the detector's score per joint as a third input feature (VideoPose3D's d-pt-243.bin)
REPRESENTATION_WITH_SCORES = dataclasses.replace(REPRESENTATION, input_confidence=True)
_EVAL_CHUNK = 8192  # output frames per dilated pass over a long video (bounds activation memory)


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in str(text).replace(" ", "").split(",") if w)
    except ValueError:
        widths = ()
    return widths


@LIFTERS.register("tcn", "videopose3d")
class TemporalConvLifter(Lifter):
    """Temporal convolutions over screen-normalised 17-joint 2D -> 17-joint 3D in metres."""

    @dataclass(frozen=True)
    class Config:
        filter_widths: str = "3,3,3,3,3"  # -arc; 243 frames, the paper's best model
        channels: int = 1024  # -ch
        dropout: float = 0.25  # -drop
        causal: bool = False  # --causal: frame t from frames t-RF+1 .. t
        dense: bool = False  # --dense: dense kernels instead of dilation (ablation)
        test_flip: bool = True  # flip test-time augmentation, on in every published number (-no-tta off)
        in_features: int = 2  # input values per joint: x, y (2) or x, y, detector score (3; in_features of run.py)

        @property
        def representation(self) -> Representation:
            return REPRESENTATION_WITH_SCORES if self.in_features == 3 else REPRESENTATION

        @property
        def widths(self) -> tuple[int, ...]:
            return parse_widths(self.filter_widths)

        def validate(self) -> None:
            where = "lifter 'tcn'"
            widths = self.widths
            if not widths or any(w < 1 or w % 2 == 0 for w in widths):
                raise ConfigError(f"{where}: 'filter_widths' must be odd positive integers like \"3,3,3\", "
                                  f"got {self.filter_widths!r}.")
            if self.channels < 1:
                raise ConfigError(f"{where}: 'channels' must be >= 1, got {self.channels}.")
            if not 0.0 <= self.dropout < 1.0:
                raise ConfigError(f"{where}: 'dropout' is a probability in [0, 1), got {self.dropout}.")
            if self.in_features not in (2, 3):
                raise ConfigError(f"{where}: 'in_features' is 2 (x, y) or 3 (x, y, detector score), got "
                                  f"{self.in_features}.")

    paper = ("Pavllo, Feichtenhofer, Grangier & Auli, 3D human pose estimation in video with temporal convolutions "
             "and semi-supervised training, CVPR 2019 (code: facebookresearch/VideoPose3D)")
    reference_params = 16_952_371  # 243 frames (3,3,3,3,3), 1024 channels
    reference_variants = {"27 frames": ({"filter_widths": "3,3,3"}, 8_555_571),
                          "81 frames": ({"filter_widths": "3,3,3,3"}, 12_753_971),
                          "243 frames": ({"filter_widths": "3,3,3,3,3"}, 16_952_371)}
    input_kind = "sequence"
    speed_path = "liftbench.fast.tcn:TemporalConvSpeed"  # names bench's plain path (dilated, one window per frame)
    later_config_keys = ("in_features",)  # added with official checkpoint import (issue 24)
    toggles = ("filter_widths", "causal", "dense", "dropout", "test_flip")
    evaluation_convention = EveryFrameOnce(
        "videopose3d", "VideoPose3D's evaluation: every frame of every video once (whole videos, edges padded), "
        "frames weighted within an action, then the 15 actions unweighted (S11 Directions absent from its data "
        "files): equal to liftbench's on the same predictions")
    train_defaults = {"lr": 1e-3, "batch_size": 1024, "epochs": 80, "lr_decay": 0.95, "lr_decay_every": "epoch",
                      "optimizer": "amsgrad", "bn_momentum_start": 0.1, "bn_momentum_end": 0.001,
                      "flip_augment": True}
    # `liftbench import-checkpoint videopose3d FILE`: run.py's {epoch, lr, random_state, optimizer, model_pos}
    # (pretrained_h36m_cpn.bin, pretrained_h36m_detectron_coco.bin); module names equal TemporalModel's
    checkpoint_format = "videopose3d"
    official_prefix = ""
    official_extras = ("random_state",)
    official_notes = ("the input joint order leaves no trace in the weights: H36M-17 is assumed. "
                      "pretrained_h36m_detectron_coco.bin reads COCO-17 keypoints, which liftbench does not feed a "
                      "lifter yet: its predictions would be wrong",)

    @classmethod
    def config_from_official(cls, state: dict[str, torch.Tensor],
                             given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, tuple[Any, str]]]:
        """Widths, channels and input features from the tensor shapes: expand_conv (C, 17 F, W0),
        layers_conv.2i (C, C, W_i) (under ``dense`` the kernel is (W_i - 1) d_i + 1, d_i = W0 ... W_(i-1)),
        shrink (51, C, 1). Causal or centred and dense or dilated leave no trace in the weights."""
        what = "VideoPose3D TemporalModel"
        channels, in_channels, first = shape_of(state, "expand_conv.weight", 3, what)
        features, rest = divmod(in_channels, NUM_JOINTS)
        if rest or features not in (2, 3):
            raise CheckpointError(f"tensor 'expand_conv.weight' reads {in_channels} input channels, not 17 joints x 2 "
                                  "(x, y) or x 3 (x, y, detector score); 16-joint (MPII) inputs are not supported")
        out = shape_of(state, "shrink.weight", 3, what)[0]
        if out == 3:
            raise CheckpointError("tensor 'shrink.weight' predicts 1 joint: this is the semi-supervised trajectory "
                                  "model (model_traj), not the pose model")
        joints_check(out // 3, "shrink.weight")
        convs = count_indexed(state, "layers_conv.{i}.weight")
        widths = [first]
        for i in range(0, convs, 2):
            kernel = shape_of(state, f"layers_conv.{i}.weight", 3, what)[2]
            if given.get("dense") is True:  # a dense kernel spans the block's dilated receptive field
                dilation = math.prod(widths)
                steps, rest = divmod(kernel - 1, dilation)
                if rest:
                    raise CheckpointError(f"tensor 'layers_conv.{i}.weight' has kernel {kernel}, not a dense kernel "
                                          f"(W - 1) x {dilation} + 1; drop --set dense=true if the model is dilated")
                kernel = steps + 1
            widths.append(kernel)
        read = {"filter_widths": ",".join(map(str, widths)), "channels": channels, "in_features": features}
        needs = {"causal": (False, "the weights are the same causal or centred (--causal); the published models "
                                   "are centred"),
                 "dense": (False, "--dense kernels of a block can equal another model's dilated ones; the published "
                                  "models are dilated"),
                 "test_flip": (True, "flip test-time augmentation, on in every published number"),
                 "dropout": (0.25, "training only: no effect on predictions")}
        return read, needs

    @classmethod
    def contract_for(cls, config: Config) -> Contract:
        rf = 1
        for w in config.widths:
            rf *= w
        return Contract(representation=config.representation,
                        window=WindowSpec(rf, "causal" if config.causal else "centred", "padded", "aligned"),
                        label="Pavllo et al. 2019 (VideoPose3D TCN)", method="pavllo2019",
                        test_time_augmentation="horizontal flip, averaged with the unflipped prediction"
                        if config.test_flip else "none")

    def __init__(self, config: Config | None = None):
        config = config or self.Config()
        super().__init__(config)
        widths, C = config.widths, config.channels
        self.expand_conv = nn.Conv1d(config.representation.input_dim, C, widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(C, momentum=0.1)
        self.layers_conv = nn.ModuleList()
        self.layers_bn = nn.ModuleList()
        self.dilations: list[int] = []  # of each block's temporal conv (1 under dense)
        self.pads: list[int] = []  # frames each block's conv trims on each side, (W_i - 1) * d_i / 2
        dilation = widths[0]
        for w in widths[1:]:
            pad = (w - 1) * dilation // 2
            self.pads.append(pad)
            kernel, conv_dilation = (2 * pad + 1, 1) if config.dense else (w, dilation)
            self.dilations.append(conv_dilation)
            self.layers_conv.append(nn.Conv1d(C, C, kernel, dilation=conv_dilation, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(C, momentum=0.1))
            self.layers_conv.append(nn.Conv1d(C, C, 1, bias=False))
            self.layers_bn.append(nn.BatchNorm1d(C, momentum=0.1))
            dilation *= w
        self.shrink = nn.Conv1d(C, REPRESENTATION.output_dim, 1)
        self.drop = nn.Dropout(config.dropout)

    @property
    def receptive_field(self) -> int:
        return self.contract.window.size

    # ------------------------------------------------------------------ forward
    def _unit(self, x: torch.Tensor, k: int, conv_kwargs: dict) -> torch.Tensor:
        conv = self.layers_conv[k]
        return self.drop(F.relu(self.layers_bn[k](F.conv1d(x, conv.weight, None, **conv_kwargs))))

    def dilated(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 34) -> (B, T - RF + 1, 51): the evaluation model (``TemporalModel``)."""
        x = x.transpose(1, 2)  # (B, T, 34) -> (B, 34, T); channel j*2+f as VideoPose3D's view
        x = self.drop(F.relu(self.expand_bn(self.expand_conv(x))))  # (B, C, T - W0 + 1)
        for i, pad in enumerate(self.pads):
            shift = pad if self.config.causal else 0
            res = x[:, :, pad + shift : x.shape[2] - pad + shift]  # centre (or causal end) slice
            x = self._unit(x, 2 * i, {"dilation": self.dilations[i]})  # (B, C, T_i - 2 pad)
            x = res + self._unit(x, 2 * i + 1, {})
        return self.shrink(x).transpose(1, 2)  # (B, 51, T') -> (B, T', 51)

    def strided(self, x: torch.Tensor) -> torch.Tensor:
        """(B, RF, 34) -> (B, 1, 51): the single-frame training model (``TemporalModelOptimized1f``),
        every dilated conv replaced by a conv of stride = width on the same weights."""
        widths = self.config.widths
        x = x.transpose(1, 2)  # (B, RF, 34) -> (B, 34, RF)
        x = self.drop(F.relu(self.expand_bn(F.conv1d(x, self.expand_conv.weight, None, stride=widths[0]))))
        for i, w in enumerate(widths[1:]):
            shift = w // 2 if self.config.causal else 0
            res = x[:, :, shift + w // 2 :: w]  # (B, C, T_i / w): the element each output frame is aligned with
            x = self._unit(x, 2 * i, {"stride": w})
            x = res + self._unit(x, 2 * i + 1, {})
        return self.shrink(x).transpose(1, 2)  # (B, 51, 1) -> (B, 1, 51)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 34) -> (B, T - RF + 1, 51)
        if x.shape[1] == self.receptive_field and not self.config.dense:
            return self.strided(x)  # training windows: the optimised model (equal in eval mode)
        return self.dilated(x)

    # ------------------------------------------------------------------ evaluation
    def _flipped(self, run, x: torch.Tensor) -> torch.Tensor:
        """``run(x)``, averaged with the un-mirrored prediction of the mirrored input under flip TTA."""
        return flip_averaged(run, x, self.config.representation) if self.config.test_flip else run(x)

    def predict_aligned(self, x: torch.Tensor) -> torch.Tensor:  # (B, RF, 34) -> (B, 51)
        return self._flipped(lambda v: self.forward(v)[:, 0], x)

    @torch.no_grad()
    def predict_frames(self, inputs: torch.Tensor, index: torch.Tensor, batch_size: int,
                       segments: list[tuple[int, int]] | None = None) -> torch.Tensor:
        """Whole videos through the dilated model (VideoPose3D's ``UnchunkedGenerator``): each video
        padded by edge replication (pad each side, or 2 pad on the left if causal), so every frame
        gets exactly one prediction and shared frames are computed once (~10x fewer FLOPs than one
        strided pass per window). (F, 34) -> (F, 51)."""
        if segments is None or (self.training and self.config.dropout > 0.0):
            return super().predict_frames(inputs, index, batch_size, segments)
        rf = self.receptive_field
        left = rf - 1 if self.config.causal else rf // 2
        outputs = []
        for first, n in segments:
            for a in range(0, n, _EVAL_CHUNK):  # long videos in chunks of output frames, overlapping inputs
                b = min(n, a + _EVAL_CHUNK)
                rows = torch.arange(a - left, b - left + rf - 1, device=inputs.device).clamp_(0, n - 1) + first
                outputs.append(self._flipped(self.dilated, inputs[rows][None])[0])  # (1, b-a+rf-1, 34) -> (b-a, 51)
        if not outputs:
            return inputs.new_empty(0, REPRESENTATION.output_dim)
        return torch.cat(outputs)  # (F, 51)

    # ------------------------------------------------------------------ loss and cost
    def loss(self, pred: torch.Tensor, target: torch.Tensor, stats: NormStats) -> torch.Tensor:
        """MPJPE in metres (``common/loss.py mpjpe``): mean Euclidean distance over frames and 17 joints."""
        diff = (pred - target).view(*pred.shape[:-1], NUM_JOINTS, 3)  # (B, T, 51) -> (B, T, 17, 3)
        return torch.linalg.vector_norm(diff, dim=-1).mean()

    def flops_per_frame(self) -> dict[str, float]:
        """Eval: 2 x the conv weights per frame (whole videos, shared frames once; paper Table 5).
        Train: one strided window per frame, 3x forward (forward + both backward products)."""
        weights = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Conv1d))
        widths = self.config.widths
        positions = [1]
        for w in reversed(widths):
            positions.insert(0, positions[0] * w)  # output positions each layer computes for one window
        train = 2 * self.expand_conv.weight.numel() * positions[1]
        for i in range(len(widths) - 1):
            block = self.layers_conv[2 * i].weight.numel() + self.layers_conv[2 * i + 1].weight.numel()
            train += 2 * block * positions[i + 2]
        train += 2 * self.shrink.weight.numel()
        mult = 2 if self.config.test_flip else 1
        return {"train": 3.0 * train, "eval": float(2 * weights * mult)}
