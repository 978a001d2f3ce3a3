"""Clip lifters (MotionBERT, MixSTE): every test frame scored exactly once whatever the video length, the
batched clip evaluator equal to a one-clip-per-frame reference, their training windows counted by hand,
the image-plane 2.5D representation against hand computation, the score channel, flip equivariance and
their losses as the model files use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.lifters import (
    one_torch_thread,  # noqa: F401  (the fixture, used by pytestmark)
    small_params,
)

from liftbench.data.dataset import Sequence
from liftbench.data.normalize import (
    Representation,
    compute_stats,
    encode_targets,
    flat_inputs,
    flip_maps,
    image25d,
    output_scale,
    scored_targets,
)
from liftbench.data.windows import FrameTable, WindowSpec, clip_plan, grid_clips, training_windows
from liftbench.errors import ConfigError
from liftbench.evaluate import check_coverage, predict_sequences
from liftbench.models import LIFTERS, NormStats, create_lifter
from liftbench.models.clip_losses import mixste_loss

CLIP_LIFTERS = [n for n in LIFTERS.names() if create_lifter(n, **small_params(n)).contract.window.is_clip]
LENGTHS = (1, 242, 243, 244, 486, 500)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_clip_lifters_are_registered():
    assert {"motionbert", "mixste"} <= set(CLIP_LIFTERS)
    assert LIFTERS.get("dstformer") is LIFTERS.get("motionbert")


# ------------------------------------------------------------------ the clip plan
@pytest.mark.parametrize("short", ["shorter", "pad"])
@pytest.mark.parametrize("n", LENGTHS)
def test_clip_plan_takes_every_frame_exactly_once(n, short):
    spec = WindowSpec(243, "clip", "inside", "window", short=short)
    taken = np.zeros(n, dtype=int)
    for start, length, keep_from, keep_to in clip_plan(n, spec):
        assert length == (243 if n >= 243 or short == "pad" else n)
        assert 0 <= start and (start + length <= n or n < 243)  # clips lie inside the video (or pad a short one)
        taken[start + keep_from : start + keep_to] += 1
    assert (taken == 1).all()


def test_clip_plan_by_hand():
    spec = WindowSpec(243, "clip", "inside", "window")
    assert clip_plan(243, spec) == [(0, 243, 0, 243)]
    assert clip_plan(244, spec) == [(0, 243, 0, 243), (1, 243, 242, 243)]  # the tail: only frame 243 is new
    assert clip_plan(486, spec) == [(0, 243, 0, 243), (243, 243, 0, 243)]
    assert clip_plan(500, spec) == [(0, 243, 0, 243), (243, 243, 0, 243), (257, 243, 229, 243)]
    assert clip_plan(1, spec) == [(0, 1, 0, 1)]
    assert clip_plan(242, WindowSpec(243, "clip", "grid", "window", short="pad")) == [(0, 243, 0, 242)]


def _clip_of_frame(t: int, n: int, spec: WindowSpec) -> tuple[np.ndarray, int]:
    """Written out independently of ``clip_plan``: the rows of the one clip that predicts frame t of an
    n-frame video, and t's position in it. Grid clips from 0; a frame past the last full clip comes from
    the clip aligned to the video's end; a short video is one clip (shorter, or right-padded)."""
    T = spec.size
    if n < T:
        rows = np.arange(n if spec.short == "shorter" else T)
        return np.minimum(rows, n - 1), t
    k = t // T
    if (k + 1) * T <= n:
        return np.arange(k * T, (k + 1) * T), t - k * T
    return np.arange(n - T, n), t - (n - T)


@pytest.mark.parametrize("name", CLIP_LIFTERS)
def test_batched_clips_equal_one_clip_per_frame(name):
    """For video lengths 1, 242, 243, 244, 486 and 500 at the published 243-frame clip (a tiny width): the
    evaluator's batched clips give, for every frame, what that frame's own clip run alone gives."""
    torch.manual_seed(0)
    params = small_params(name, clip_frames=243, maxlen=243, frames=243, dim_feat=8, dim_rep=8, embed_dim=8)
    model = create_lifter(name, **params).eval()
    spec, rep = model.contract.window, model.contract.representation
    segments, first = [], 0
    for n in LENGTHS:
        segments.append((first, n))
        first += n
    inputs = torch.randn(first, rep.input_dim, dtype=torch.float64)
    model = model.double()
    with torch.no_grad():
        batched = model.predict_frames(inputs, torch.arange(first)[:, None], 2048, segments)  # (F, D_out)
        cache: dict[tuple[int, int], torch.Tensor] = {}
        for seg_first, n in segments:
            for t in range(n):
                rows, pos = _clip_of_frame(t, n, spec)
                key = (seg_first + int(rows[0]), len(rows))
                if key not in cache:
                    cache[key] = model.predict_clips(inputs[torch.from_numpy(rows + seg_first)][None])[0]
                assert torch.allclose(batched[seg_first + t], cache[key][pos], atol=1e-12, rtol=0), (n, t)


@pytest.mark.parametrize("name", CLIP_LIFTERS)
def test_evaluator_scores_every_frame_once_at_any_length(name):
    """End to end through the evaluator's coverage check, on videos of the six lengths (clip 9, lengths scaled)."""
    torch.manual_seed(0)
    model = create_lifter(name, **small_params(name)).eval()  # 9-frame clips
    rng = np.random.default_rng(0)
    seqs = []
    for i, n in enumerate((1, 8, 9, 10, 18, 20)):
        j3 = rng.normal(0, 200, (n, 17, 3)) + np.array([0, 0, 5000])
        kp = rng.uniform(100, 900, (n, 17, 2))
        seqs.append(Sequence("S9", f"Walk {i}", 0, kp.astype(np.float32), j3.astype(np.float32),
                             resolution=(1000, 1002), intrinsics=(1145.0, 1144.0, 512.0, 515.0)))
    stats = compute_stats(seqs, model.contract.representation)
    preds = predict_sequences(model, stats, seqs, torch.device("cpu"))
    assert check_coverage(seqs, preds) == sum(s.n_frames for s in seqs)
    assert np.isfinite(preds.pred).all()


# ------------------------------------------------------------------ training windows
def _table(lengths: list[int]) -> FrameTable:
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(sum(lengths))
    return FrameTable(np.zeros((total, 2), np.float32), np.zeros((total, 3), np.float32), starts,
                      np.array(lengths, np.int64), [("S1", str(i), 0) for i in range(len(lengths))])


def test_training_clips_inside_with_stride_drop_tails():
    """MotionBERT: 243-frame clips every 81 frames, tails dropped: a 600-frame video gives starts 0, 81, ...,
    324 (324 + 243 = 567 <= 600; 405 + 243 > 600); a 200-frame video gives none."""
    w = training_windows(_table([600, 200]), WindowSpec(243, "clip", "inside", "window", stride=81))
    assert w.anchors.tolist() == [0, 81, 162, 243, 324]
    assert w.offsets.tolist() == list(range(243)) and w.target_offset is None and not w.clamp


def test_training_clips_on_a_centred_grid():
    """MixSTE: ceil(n / T) clips on a grid centred on the video, ends edge-padded. n = 10, T = 4: 3 clips
    over 12 frames, overhang (12 - 10) // 2 = 1 at the start: clips start at -1, 3, 7."""
    assert grid_clips(10, 4).tolist() == [-1, 3, 7]
    assert grid_clips(8, 4).tolist() == [0, 4]
    assert grid_clips(3, 4).tolist() == [0]  # (4 - 3) // 2 = 0: the one clip pads its end
    w = training_windows(_table([10, 3]), WindowSpec(4, "clip", "grid", "window"))
    first = w.anchors + w.shifts
    assert first.tolist() == [-1, 3, 7, 10] and w.anchors.tolist() == [0, 3, 7, 10] and w.clamp
    rows = np.clip(first[:, None] + w.offsets, [[0], [0], [0], [10]], [[9], [9], [9], [12]])  # edge replication
    assert rows.tolist() == [[0, 0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 9], [10, 11, 12, 12]]


def test_clip_window_rules():
    with pytest.raises(ConfigError, match="grid"):
        WindowSpec(9, "centred", "grid", "window").validate()
    with pytest.raises(ConfigError, match="whole clips"):
        WindowSpec(9, "clip", "inside", "aligned").validate()
    with pytest.raises(ConfigError, match="positional table"):
        create_lifter("motionbert", clip_frames=300)


# ------------------------------------------------------------------ image-plane 2.5D
CAM = (1145.0, 1144.0, 512.0, 515.0)


def test_image25d_by_hand():
    """Root at (0, 0, 5000) mm, a joint at (100, -50, 5200): u - u_root = fx 100/5200, v - v_root = fy -50/5200,
    k = 5000/fx mm per px: x = 100 * 5000/5200, y = -50 * (fy/fx) * 5000/5200, z = 200."""
    j = np.zeros((1, 17, 3))
    j[0, :, 2] = 5000.0
    j[0, 1] = [100.0, -50.0, 5200.0]
    mm, k = image25d(j, CAM)
    assert k[0] == pytest.approx(5000 / 1145.0)
    assert mm[0, 1] == pytest.approx([100 * 5000 / 5200, -50 * 1144 / 1145 * 5000 / 5200, 200.0])
    assert np.abs(mm[0, 0]).max() == 0 and np.abs(mm[0, 2:]).max() == 0


def test_image25d_decodes_a_perfect_prediction_to_zero_error():
    """Encoding the ground truth and decoding it as the evaluator does gives exactly the scored target."""
    rep = Representation("h36m17", "screen", "all17", "image25d", input_confidence=True)
    rng = np.random.default_rng(1)
    j3 = rng.normal(0, 300, (20, 17, 3)) + np.array([300, -100, 4500])
    seq = Sequence("S1", "Walk", 0, rng.uniform(0, 1000, (20, 17, 2)).astype(np.float32), j3.astype(np.float32),
                   resolution=(1000, 1002), intrinsics=CAM)
    stats = compute_stats([seq], rep)
    encoded = encode_targets(seq, stats, rep).astype(np.float64)  # (20, 51)
    nominal = stats.out_std.double().numpy()
    decoded = encoded * nominal * (output_scale(seq, rep) / nominal[0])[:, None]
    assert np.allclose(decoded.reshape(20, 17, 3), scored_targets(seq, rep), atol=1e-3)
    assert stats.out_std[0].item() == pytest.approx(float(np.median(output_scale(seq, rep))), rel=1e-6)


def test_score_channel_and_flip_maps():
    rep = Representation("h36m17", "screen", "all17", "image25d", input_confidence=True)
    kp = np.full((2, 17, 2), 500.0)
    conf = np.linspace(0, 1, 34).reshape(2, 17)
    flat = flat_inputs(kp, rep, (1000, 1000), conf).reshape(2, 17, 3)
    assert np.allclose(flat[..., 2], conf) and np.allclose(flat[..., :2], 0.0)
    assert np.allclose(flat_inputs(kp, rep, (1000, 1000)).reshape(2, 17, 3)[..., 2], 1.0)  # no scores: 1.0
    perm_in, sign_in, _, _ = flip_maps(rep)
    assert len(perm_in) == 51 and sign_in.reshape(17, 3).tolist() == [[-1.0, 1.0, 1.0]] * 17  # a score never flips


@pytest.mark.parametrize("name", CLIP_LIFTERS)
def test_flip_test_time_augmentation_is_equivariant(name):
    torch.manual_seed(0)
    model = create_lifter(name, **small_params(name, test_flip=True)).eval().double()
    rep = model.contract.representation
    perm_in, sign_in, perm_out, sign_out = (torch.as_tensor(a) for a in flip_maps(rep))
    x = torch.randn(2, model.window, rep.input_dim, dtype=torch.float64)
    with torch.no_grad():
        y = model.predict_clips(x)
        y_of_mirror = model.predict_clips(x[..., perm_in] * sign_in.double())
    assert torch.allclose(y_of_mirror, y[..., perm_out] * sign_out.double(), atol=1e-12)


# ------------------------------------------------------------------ the losses the model files use
def test_mixste_lifter_loss_value_and_gradient_quirk():
    torch.manual_seed(0)
    model = create_lifter("mixste", **small_params("mixste"))
    pred = torch.randn(2, 9, 51, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 9, 51, dtype=torch.float64)
    stats = NormStats(*(torch.zeros(1) for _ in range(4)))
    loss = model.loss(pred, target, stats)
    plain = mixste_loss(pred.view(2, 9, 17, 3), target.view(2, 9, 17, 3))
    assert torch.equal(loss, plain)  # the logged value is the paper's L
    (grad,) = torch.autograd.grad(loss, pred)
    (expected,) = torch.autograd.grad(plain * plain / 2, pred)  # the applied gradient is of L^2 / 2
    assert torch.allclose(grad, expected, atol=1e-12)


def test_motionbert_zeroes_the_predicted_root_at_evaluation():
    torch.manual_seed(0)
    model = create_lifter("motionbert", **small_params("motionbert")).eval()
    x = torch.randn(2, 9, 51)
    with torch.no_grad():
        out, raw = model.predict_clips(x), model(x)
    assert out[..., :3].abs().max() == 0 and raw[..., :3].abs().max() > 0
