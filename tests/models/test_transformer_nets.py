"""MotionBERT's DSTformer and MixSTE as plain networks (models/dstformer_net.py, models/mixste_net.py, the
shared models/transformer_blocks.py) and their losses (models/clip_losses.py): exact parameter counts, key
names and shapes vs the official state dicts, init, MACs vs the facts sheet, attention layouts (no
cross-clip or cross-frame leakage, equal to a naive reference), drop path, and every loss by hand and
against an independent numpy computation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from liftbench.models.clip_losses import (
    MIXSTE_JOINT_WEIGHTS,
    gradient_times_loss,
    mixste_loss,
    motionbert_loss,
    mpjpe,
    n_mpjpe,
    temporal_consistency,
    velocity_error,
    weighted_mpjpe,
)
from liftbench.models.dstformer_net import DSTformer
from liftbench.models.mixste_net import MixSTENet
from liftbench.models.transformer_blocks import DropPath, flops_per_clip, from_temporal, to_temporal

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint_keys"  # key names/shapes of the official code
LITE = {"dim_feat": 256, "mlp_ratio": 4.0}  # MotionBERT-Lite (MB_lite / MB_ft_h36m_global_lite)
TINY_DST = dict(dim_feat=32, dim_rep=16, depth=2, num_heads=2, maxlen=9)
TINY_MIX = dict(num_frame=9, embed_dim=32, depth=2, num_heads=2, drop_path_rate=0.0)


def tiny_dst(seed=0, **kw) -> DSTformer:
    torch.manual_seed(seed)
    return DSTformer(**{**TINY_DST, **kw}).double()


def tiny_mix(seed=0, **kw) -> MixSTENet:
    torch.manual_seed(seed)
    return MixSTENet(**{**TINY_MIX, **kw}).double()


def clips(batch, frames, chans, seed=1) -> torch.Tensor:
    return torch.randn(batch, frames, 17, chans, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def read_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (KEYS / name).read_text().splitlines():
        if line.strip():
            key, shape = line.split(maxsplit=1)  # "blocks_st.0.attn_s.qkv.weight (1536, 512)"
            rows.append((key, tuple(int(d) for d in re.findall(r"\d+", shape))))
    return rows


def keys_of(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def on_meta(cls, **kw):
    with torch.device("meta"):
        return cls(**kw)


# ---------------------------------------------------------------- sizes, keys, compute
@pytest.mark.parametrize("cls, kw, params", [(DSTformer, {}, 42_466_317),
                                             (DSTformer, LITE, 16_001_549),
                                             (MixSTENet, {}, 33_783_811),
                                             (MixSTENet, {"num_frame": 81}, 33_700_867)])
def test_parameter_counts_are_the_official_ones(cls, kw, params):
    net = on_meta(cls, **kw)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == params
    assert not list(net.buffers())


@pytest.mark.parametrize("cls, kw, name", [(DSTformer, {}, "motionbert_dstformer_h36m"),
                                           (DSTformer, LITE, "motionbert_dstformer_lite"),
                                           (MixSTENet, {}, "mixste_243"), (MixSTENet, {"num_frame": 81}, "mixste_243")])
def test_state_dict_keys_and_shapes_equal_the_checkpoints_in_order(cls, kw, name):
    expected = read_keys(f"{name}_statedict_keys.txt")
    assert len(expected) in (260, 204)
    if kw.get("num_frame") == 81:  # the 81-frame checkpoint differs only in Temporal_pos_embed
        expected = [(k, (1, 81, 512) if k == "Temporal_pos_embed" else s) for k, s in expected]
    assert keys_of(on_meta(cls, **kw)) == expected  # order too: parameters() order = optimizer-state order


@pytest.mark.parametrize("cls, kw, frames, linear, total", [
    (DSTformer, {}, 243, 174.4, 185.4),
    (DSTformer, LITE, 243, 65.5, 71.0),
    (MixSTENet, {}, 243, 138.6, 147.4),
    (MixSTENet, {"num_frame": 81}, 81, 46.2, 47.3)])
def test_macs_per_clip_match_the_facts_sheet(cls, kw, frames, linear, total):
    macs = flops_per_clip(on_meta(cls, **kw), frames)
    assert macs["total"] == macs["linear"] + macs["attention"]
    assert abs(macs["linear"] / 1e9 - linear) <= 0.05 + 1e-9
    assert abs(macs["total"] / 1e9 - total) <= 0.05 + 1e-9


@pytest.mark.parametrize("make, frames, chans", [(lambda: DSTformer(**TINY_DST), 7, 3),
                                                 (lambda: MixSTENet(**TINY_MIX), 9, 2)])
def test_analytic_macs_equal_torch_flop_counter_on_meta(make, frames, chans):
    with torch.device("meta"):
        net = make()
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, frames, 17, chans))
    assert counter.get_total_flops() == 2 * net.flops_per_clip(frames)["total"]


# ---------------------------------------------------------------- init
def test_dstformer_init():
    net = tiny_dst()
    for lin in net.ts_attn:
        assert torch.equal(lin.weight, torch.zeros_like(lin.weight))
        assert torch.equal(lin.bias, torch.full_like(lin.bias, 0.5))
    others = [m for n, m in net.named_modules() if isinstance(m, nn.Linear) and not n.startswith("ts_attn")]
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in others)
    w = torch.cat([m.weight.flatten() for m in others])
    assert abs(w.std().item() - 0.02) < 0.002 and w.abs().max() <= 2.0
    assert 0.015 < net.temp_embed.std().item() < 0.025 and 0.015 < net.pos_embed.std().item() < 0.025
    norms = [m for m in net.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 2 * 4 + 1 and all(m.eps == 1e-6 for m in norms)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert isinstance(net.pre_logits.act, nn.Tanh) and net.pre_logits.fc.out_features == 16


def test_dstformer_without_fusion_averages_streams():
    net = tiny_dst(att_fuse=False).eval()
    assert net.ts_attn is None and "ts_attn.0.weight" not in net.state_dict()
    fused = tiny_dst().eval()  # same seed, same weights; ts_attn starts at an even split = the average
    x = clips(2, 9, 3)
    torch.testing.assert_close(net(x), fused(x))


def test_mixste_init():
    net = tiny_mix()
    assert torch.equal(net.Spatial_pos_embed, torch.zeros_like(net.Spatial_pos_embed))
    assert torch.equal(net.Temporal_pos_embed, torch.zeros_like(net.Temporal_pos_embed))
    assert net.head[0].eps == 1e-5 and isinstance(net.head[1], nn.Linear)
    norms = [m for n, m in net.named_modules() if isinstance(m, nn.LayerNorm) and n != "head.0"]
    assert len(norms) == 2 * 2 * 2 + 2 and all(m.eps == 1e-6 for m in norms)
    for m in net.modules():  # PyTorch default: kaiming-uniform(a=sqrt 5) = U(+-1/sqrt(fan_in))
        if isinstance(m, nn.Linear):
            assert m.weight.abs().max() <= m.in_features ** -0.5
    rates = [blk.drop_path.p for blk in MixSTENet(**{**TINY_MIX, "depth": 3, "drop_path_rate": 0.1}).TTEblocks]
    assert rates == pytest.approx([0.0, 0.05, 0.1])


# ---------------------------------------------------------------- shapes and frame counts
def test_output_shapes_and_finite():
    d = tiny_dst().eval()
    for frames in (9, 5, 1):
        x = clips(2, frames, 3)
        assert d(x).shape == (2, frames, 17, 3) and torch.isfinite(d(x)).all()
        assert d.representation(x).shape == (2, frames, 17, 16) and d.representation(x).abs().max() < 1
    y = tiny_mix().eval()(clips(2, 9, 2))
    assert y.shape == (2, 9, 17, 3) and torch.isfinite(y).all()


def test_dstformer_short_clips_use_only_the_first_temp_embed_rows():
    net, x = tiny_dst().eval(), clips(1, 5, 3)
    before = net(x)
    with torch.no_grad():
        net.temp_embed[:, 5:] += 1.0
    torch.testing.assert_close(net(x), before, rtol=0, atol=0)


def test_frame_count_errors_name_both_numbers():
    with pytest.raises(ValueError, match=r"10 frames.*maxlen is 9"):
        tiny_dst()(clips(1, 10, 3))
    for frames in (8, 10):
        with pytest.raises(ValueError, match=rf"num_frame=9.*got {frames}"):
            tiny_mix()(clips(1, frames, 2))
    with pytest.raises(ValueError):
        tiny_mix()(clips(1, 9, 3))  # MixSTE reads (x, y) only
    with pytest.raises(ValueError, match="maxlen=9"):
        flops_per_clip(tiny_dst(), 10)
    with pytest.raises(ValueError, match="num_frame=9"):
        flops_per_clip(tiny_mix(), 8)


# ---------------------------------------------------------------- attention layout
def naive_attention(attn, x: torch.Tensor, axis: str) -> torch.Tensor:
    """(B, F, J, C) through ``attn``'s weights with an explicit softmax over joints or frames."""
    (b, f, j, c), h = x.shape, attn.num_heads
    q, k, v = (attn.qkv(x).reshape(b, f, j, 3, h, c // h)).unbind(3)  # (B, F, J, H, c) each
    eq = ("bfjhc,bfkhc->bfjhk", "bfjhk,bfkhc->bfjhc") if axis == "spatial" else \
         ("bfjhc,bgjhc->bfjhg", "bfjhg,bgjhc->bfjhc")
    w = torch.softmax(torch.einsum(eq[0], q, k) * (c // h) ** -0.5, dim=-1)
    return attn.proj(torch.einsum(eq[1], w, v).reshape(b, f, j, c))


@pytest.mark.parametrize("axis", ["spatial", "temporal"])
def test_attention_equals_naive_reference(axis):
    blk = tiny_dst().blocks_st[0]
    attn = blk.attn_s if axis == "spatial" else blk.attn_t
    x = torch.randn(3, 9, 17, 32, dtype=torch.float64)
    flat = x.reshape(27, 17, 32)  # (B*F, J, C)
    got = attn(flat) if axis == "spatial" else from_temporal(attn(to_temporal(flat, 9)), 17)
    torch.testing.assert_close(got.reshape(3, 9, 17, 32), naive_attention(attn, x, axis))


def test_layout_round_trip():
    x = torch.arange(2 * 5 * 17 * 4, dtype=torch.float64).reshape(10, 17, 4)
    t = to_temporal(x, 5)
    assert t.shape == (34, 5, 4) and torch.equal(t[17 + 3, 2], x[5 + 2, 3])  # clip 1, joint 3, frame 2
    assert torch.equal(from_temporal(t, 17), x)


def test_spatial_sublayers_never_mix_frames_and_temporal_never_mixes_joints():
    b, f, j, c = 2, 9, 17, 32
    dual, mix_block = tiny_dst().blocks_ts[1], tiny_mix().STEblocks[0]
    x = torch.randn(b * f, j, c, dtype=torch.float64)
    x2 = x.clone()
    x2[1 * f + 4, 6] += 1.0  # clip 1, frame 4, joint 6
    for spatial in (dual.spatial, mix_block):
        changed = (spatial(x2) - spatial(x)).abs().amax(dim=(1, 2)) > 0  # per (clip, frame) row
        assert changed.nonzero().flatten().tolist() == [1 * f + 4]
    changed = (dual.temporal(x2, f) - dual.temporal(x, f)).abs().amax(dim=-1) > 0  # (B*F, J)
    assert changed.reshape(b, f, j).nonzero()[:, [0, 2]].unique(dim=0).tolist() == [[1, 6]]


@pytest.mark.parametrize("make, chans", [(tiny_dst, 3), (tiny_mix, 2)])
def test_no_cross_clip_leakage(make, chans):
    net, x = make().eval(), clips(4, 9, chans)
    out, perm = net(x), torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(net(x[perm]), out[perm])  # permuting clips permutes the output
    x2 = x.clone()
    x2[1] += torch.randn_like(x2[1])
    out2 = net(x2)
    torch.testing.assert_close(out2[[0, 2, 3]], out[[0, 2, 3]])  # changing clip 1 leaves the others alone
    assert not torch.allclose(out2[1], out[1])


# ---------------------------------------------------------------- determinism, training, drop path
@pytest.mark.parametrize("make, chans", [(tiny_dst, 3), (tiny_mix, 2)])
def test_seeded_construction_and_forward_are_deterministic(make, chans):
    a, b = make(seed=3, drop_path_rate=0.3), make(seed=3, drop_path_rate=0.3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    x = clips(2, 9, chans)
    torch.manual_seed(11)
    ya = a.train()(x)
    torch.manual_seed(11)
    assert torch.equal(ya, b.train()(x))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), make(seed=4).state_dict().values()))


@pytest.mark.parametrize("make, chans, loss", [(tiny_dst, 3, motionbert_loss), (tiny_mix, 2, mixste_loss)])
def test_one_gradient_step_changes_every_parameter(make, chans, loss):
    net = make().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss(net(clips(2, 9, chans)), clips(2, 9, 3, seed=2)).backward()
    opt.step()
    unchanged = [k for k, v in net.state_dict().items() if torch.equal(v, before[k])]
    assert unchanged == []


@pytest.mark.parametrize("make, chans", [(tiny_dst, 3), (tiny_mix, 2)])
def test_drop_path_only_in_training_and_eval_is_deterministic(make, chans):
    net, x = make(drop_path_rate=0.5), clips(3, 9, chans)
    y_eval = net.eval()(x)
    assert torch.equal(net(x), y_eval)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    y_train = net.train()(x)
    assert not torch.allclose(y_train, y_eval)
    torch.set_rng_state(state)  # the mask comes from torch's global RNG: restoring it reproduces the pass
    assert torch.equal(net(x), y_train)
    assert torch.equal(make(drop_path_rate=0.0).train()(x), make(drop_path_rate=0.0).eval()(x))


def test_drop_path_module():
    x = torch.randn(64, 5, 4)
    assert DropPath(0.0).train()(x) is x and DropPath(0.3).eval()(x) is x
    y = DropPath(0.25).train()(x)
    kept, dropped = (y != 0).flatten(1).all(1), (y == 0).flatten(1).all(1)
    assert bool((kept | dropped).all()) and 0 < int(dropped.sum()) < 64  # whole samples, some of each
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    with pytest.raises(ValueError):
        DropPath(1.0)


# ---------------------------------------------------------------- losses
def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_losses_by_hand():
    # 1 clip, 2 frames, 2 joints
    gt = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    pred = t([[[[3, 4, 0], [0, 0, 1]], [[0, 6, 8], [2, 0, 0]]]])
    assert mpjpe(pred, gt).item() == pytest.approx((5 + 1 + 10 + 2) / 4)
    assert weighted_mpjpe(pred, gt, [1.0, 3.0]).item() == pytest.approx((5 + 3 + 10 + 6) / 4)

    # velocity: delta pred - delta gt = (3, 4, 0) on joint 0 and (0, 0, 2) on joint 1
    pred = t([[[[0, 0, 0], [1, 1, 1]], [[3, 4, 0], [1, 1, 3]]]])
    gt = t([[[[5, 5, 5], [0, 0, 0]], [[5, 5, 5], [0, 0, 0]]]])
    assert velocity_error(pred, gt).item() == pytest.approx((5 + 2) / 2)
    assert velocity_error(pred[:, :1], gt[:, :1]).item() == 0.0

    # temporal consistency (prediction only): steps (1, 2, 0) w=1 and (0, 0, 1) w=3 over 2 joints x 3 coords
    pred = t([[[[0, 0, 0], [0, 0, 0]], [[1, 2, 0], [0, 0, 1]]]])
    assert temporal_consistency(pred, [1.0, 3.0]).item() == pytest.approx((1 + 4 + 3 * 1) / 6)

    # N-MPJPE: frame 0: s = mean(1, 0) / mean(1, 1) = 0.5 -> errors 0.5, |(0, 1, -0.5)|; frame 1: pred = 2 gt -> 0
    gt = t([[[[1, 0, 0], [0, 1, 0]], [[0, 3, 4], [1, 2, 2]]]])
    pred = t([[[[1, 0, 0], [0, 0, 1]], [[0, 6, 8], [2, 4, 4]]]])
    assert n_mpjpe(pred, gt).item() == pytest.approx((0.5 + 1.25 ** 0.5) / 4)

    # MotionBERT: pred = 2 gt, static -> MPJPE = mean |gt| = 3, N-MPJPE = 0, velocity = 0
    gt = t([[[[3, 4, 0], [0, 0, 1]], [[3, 4, 0], [0, 0, 1]]]])
    assert motionbert_loss(2 * gt, gt).item() == pytest.approx(3.0)

    # MixSTE, 17 joints: only joint 12 (weight 4) moves, by (3, 4, 0) in frame 1; gt zero
    gt = torch.zeros(1, 2, 17, 3, dtype=torch.float64)
    pred = gt.clone()
    pred[0, 1, 12] = t([3, 4, 0])
    wmpjpe, tc, mpjve = 4 * 5 / 34, 4 * 25 / 51, 5 / 17
    assert mixste_loss(pred, gt).item() == pytest.approx(wmpjpe + 0.5 * tc + 2 * mpjve) == pytest.approx(110 / 51)
    assert MIXSTE_JOINT_WEIGHTS == (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)


def numpy_losses(p: np.ndarray, g: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Independent re-computation with explicit loops over clips and frames."""
    out = {"mpjpe": [], "nmpjpe": [], "vel": [], "wmpjpe": [], "tc": []}
    for b in range(p.shape[0]):
        for f in range(p.shape[1]):
            err = np.sqrt(((p[b, f] - g[b, f]) ** 2).sum(1))
            out["mpjpe"] += list(err)
            out["wmpjpe"] += list(w * err)
            s = np.mean([g[b, f, j] @ p[b, f, j] for j in range(p.shape[2])]) / np.mean((p[b, f] ** 2).sum(1))
            out["nmpjpe"] += list(np.sqrt(((s * p[b, f] - g[b, f]) ** 2).sum(1)))
            if f:
                dv = (p[b, f] - p[b, f - 1]) - (g[b, f] - g[b, f - 1])
                out["vel"] += list(np.sqrt((dv ** 2).sum(1)))
                out["tc"] += list((w[:, None] * (p[b, f] - p[b, f - 1]) ** 2).ravel())
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(2, 5, 17, 3)), rng.normal(size=(2, 5, 17, 3))
    w = np.asarray(MIXSTE_JOINT_WEIGHTS)
    ref = numpy_losses(p, g, w)
    pt, gt = torch.from_numpy(p), torch.from_numpy(g)
    assert mpjpe(pt, gt).item() == pytest.approx(ref["mpjpe"])
    assert n_mpjpe(pt, gt).item() == pytest.approx(ref["nmpjpe"])
    assert velocity_error(pt, gt).item() == pytest.approx(ref["vel"])
    assert weighted_mpjpe(pt, gt, w).item() == pytest.approx(ref["wmpjpe"])
    assert temporal_consistency(pt, torch.from_numpy(w)).item() == pytest.approx(ref["tc"])
    assert motionbert_loss(pt, gt).item() == pytest.approx(ref["mpjpe"] + 0.5 * ref["nmpjpe"] + 20 * ref["vel"])
    assert mixste_loss(pt, gt).item() == pytest.approx(ref["wmpjpe"] + 0.5 * ref["tc"] + 2 * ref["vel"])
    with pytest.raises(ValueError):
        weighted_mpjpe(pt, gt, w[:16])


def test_gradient_times_loss_is_the_gradient_of_half_the_squared_loss():
    gt = clips(2, 5, 3, seed=4)
    pred = clips(2, 5, 3, seed=5).requires_grad_()
    loss = mixste_loss(pred, gt)
    wrapped = gradient_times_loss(loss)
    assert wrapped.item() == loss.item()  # the value is untouched (logging sees L)
    (got,) = torch.autograd.grad(wrapped, pred, retain_graph=True)
    (want,) = torch.autograd.grad(loss ** 2 / 2, pred, retain_graph=True)
    (plain,) = torch.autograd.grad(loss, pred, retain_graph=True)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, loss.detach() * plain)
    assert loss.item() > 1.5 and not torch.allclose(got, plain)  # the quirk really rescales
    loss.backward(gradient=loss.detach())  # what MixSTE's run.py does
    torch.testing.assert_close(pred.grad, want)


@pytest.mark.parametrize("name, params", [("motionbert", {"dim_feat": 16, "dim_rep": 16, "depth": 1, "num_heads": 2,
                                                          "maxlen": 9, "clip_frames": 9}),
                                          ("mixste", {"embed_dim": 16, "depth": 1, "num_heads": 2, "frames": 9})])
def test_lifter_flops_are_per_training_clip_and_per_evaluated_frame(name, params):
    """``liftbench bench`` multiplies "train" by the batch of clips and "eval" by frames: counted by torch on the
    lifter's own forward (one clip) and its own clip prediction (flip TTA: two forwards) on the meta device."""
    from liftbench.models import create_lifter

    lifter = create_lifter(name, **params)
    frames, d_in = lifter.contract.window.size, lifter.contract.representation.input_dim
    flops = lifter.flops_per_frame()
    with torch.device("meta"):
        meta = create_lifter(name, **params).eval()
        with FlopCounterMode(display=False) as forward:
            meta(torch.empty(1, frames, d_in))
        with FlopCounterMode(display=False) as predicted:
            meta.predict_clips(torch.empty(1, frames, d_in))
    assert flops["train"] == pytest.approx(3 * forward.get_total_flops())
    assert flops["eval"] == pytest.approx(predicted.get_total_flops() / frames)
    assert predicted.get_total_flops() == 2 * forward.get_total_flops()  # flip TTA is on by default
