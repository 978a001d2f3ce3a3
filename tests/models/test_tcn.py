"""VideoPose3D's temporal convolutional lifter (models/tcn.py) and the contract features it needs:
exact parameter counts, strided == dilated on one receptive field, causality, whole-video evaluation
equal to per-window evaluation, flip TTA, and the trainer's padded windows, flip augmentation,
per-epoch lr decay, AMSGrad and BatchNorm momentum schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftbench.config import resolve_config
from liftbench.data.normalize import NormStats, Representation, compute_stats, flat_inputs, flip_maps
from liftbench.data.skeleton import FLIP_PERMUTATION
from liftbench.data.windows import FrameTable, WindowSpec, training_windows, window_index
from liftbench.models import create_lifter, lifter_contract, trainable_parameters


def small(widths="3,3", causal=False, **kw):
    torch.manual_seed(0)
    return create_lifter("tcn", filter_widths=widths, channels=kw.pop("channels", 16), causal=causal, **kw).double()


@pytest.mark.parametrize("widths, rf, params", [("3,3,3", 27, 8_555_571), ("3,3,3,3", 81, 12_753_971),
                                                ("3,3,3,3,3", 243, 16_952_371)])
def test_parameter_counts_and_receptive_field_are_the_papers(widths, rf, params):
    model = create_lifter("tcn", filter_widths=widths)
    assert trainable_parameters(model) == params
    assert model.receptive_field == rf == lifter_contract("tcn", filter_widths=widths).window.size


def test_dense_ablation_count_is_the_papers():
    assert trainable_parameters(create_lifter("tcn", filter_widths="3,3,3", dense=True)) == 29_527_091


@pytest.mark.parametrize("widths", ["3,3", "3,5", "3,3,3", "5,3"])
@pytest.mark.parametrize("causal", [False, True])
def test_strided_model_equals_dilated_on_one_receptive_field(widths, causal):
    model = small(widths, causal).eval()
    x = torch.randn(4, model.receptive_field, 34, dtype=torch.float64)
    assert model.strided(x).shape == (4, 1, 51)
    assert torch.allclose(model.strided(x), model.dilated(x), atol=1e-10, rtol=0)


def test_dilated_over_a_long_sequence_equals_sliding_the_strided_model():
    model = small("3,3,3").eval()
    x = torch.randn(1, 60, 34, dtype=torch.float64)
    rf = model.receptive_field
    slid = torch.cat([model.strided(x[:, t : t + rf]) for t in range(60 - rf + 1)], dim=1)  # (1, 34, 51)
    assert torch.allclose(model.dilated(x), slid, atol=1e-10, rtol=0)


def test_causal_output_never_depends_on_future_frames():
    model = small("3,3", causal=True).eval()
    x = torch.randn(1, 30, 34, dtype=torch.float64)
    rows = torch.arange(30)
    table_index = torch.clamp(rows[:, None] + torch.arange(-8, 1)[None], min=0)  # (30, 9) causal windows
    base = model.predict_frames(x[0], table_index, 7, [(0, 30)])
    y = x.clone()
    y[0, 20:] += 5.0  # change the future of frame 19
    moved = model.predict_frames(y[0], table_index, 7, [(0, 30)])
    assert torch.equal(base[:20], moved[:20]) and not torch.allclose(base[20:], moved[20:])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("flip", [False, True])
def test_whole_video_evaluation_equals_one_window_per_frame(causal, flip):
    """predict_frames over whole videos (dilated, edge-replicated) == the base class gathering one
    replicated window per frame and running predict_aligned on each (independent path)."""
    model = small("3,3", causal, test_flip=flip).eval()
    lengths = [5, 23, 1, 12]  # shorter than the receptive field too
    inputs = torch.randn(sum(lengths), 34, dtype=torch.float64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    table = FrameTable(inputs.numpy(), np.zeros((sum(lengths), 51)), starts, np.array(lengths),
                       [("S", "a", i) for i in range(4)])
    index = torch.from_numpy(window_index(table, model.contract.window))
    whole = model.predict_frames(inputs, index, 8, [(int(a), n) for a, n in zip(starts, lengths)])
    per_window = super(type(model), model).predict_frames(inputs, index, 8, None)
    assert whole.shape == (sum(lengths), 51)
    assert torch.allclose(whole, per_window, atol=1e-10, rtol=0)


def test_flip_tta_is_equivariant_under_mirroring():
    """With TTA the prediction of a mirrored input is the mirrored prediction (exactly, by construction)."""
    model = small("3,3", test_flip=True).eval()
    perm_in, sign_in, perm_out, sign_out = (torch.as_tensor(a) for a in flip_maps(model.contract.representation))
    x = torch.randn(6, model.receptive_field, 34, dtype=torch.float64)
    a = model.predict_aligned(x[..., perm_in] * sign_in.double())
    b = model.predict_aligned(x)[..., perm_out] * sign_out.double()
    assert torch.allclose(a, b, atol=1e-12)


def test_flip_maps_swap_left_and_right_and_negate_x():
    rep = Representation("h36m17", "screen", "all17", "metres")
    perm_in, sign_in, perm_out, sign_out = flip_maps(rep)
    pose = np.arange(17 * 3, dtype=float).reshape(17, 3)
    flipped = (pose.reshape(-1)[perm_out] * sign_out).reshape(17, 3)
    for j in range(17):  # joint j of the mirrored pose is joint FLIP(j) of the original, x negated
        assert np.array_equal(flipped[j], pose[FLIP_PERMUTATION[j]] * [-1, 1, 1])
    assert sorted(perm_in) == list(range(34)) and (sign_in[0::2] == -1).all() and (sign_in[1::2] == 1).all()


def test_screen_normalisation_is_videopose3ds():
    kp = np.array([[[0.0, 0.0], [1000.0, 1002.0]] + [[500.0, 501.0]] * 15])  # (1, 17, 2)
    flat = flat_inputs(kp, Representation("h36m17", "screen"), resolution=(1000, 1002)).reshape(17, 2)
    assert np.allclose(flat[0], [-1.0, -1.002]) and np.allclose(flat[1], [1.0, 1.002]) and np.allclose(flat[2], [0, 0])


def test_metre_targets_and_constant_input_stats(tiny_dataset):
    rep = lifter_contract("tcn").representation
    stats = compute_stats(tiny_dataset.split("train"), rep)
    assert torch.equal(stats.in_mean, torch.zeros(34)) and torch.equal(stats.in_std, torch.ones(34))
    assert torch.equal(stats.out_std, torch.full((51,), 1000.0))  # mm / 1000 = metres


def test_padded_training_windows_replicate_edges():
    table = FrameTable(np.zeros((7, 2)), np.zeros((7, 3)), np.array([0, 4]), np.array([4, 3]),
                       [("a", "b", 0), ("a", "b", 1)])
    w = training_windows(table, WindowSpec(5, "centred", "padded", "aligned"))
    assert list(w.anchors) == list(range(7)) and w.target_offset == 0 and w.clamp
    assert list(w.offsets) == [-2, -1, 0, 1, 2]
    assert window_index(table, WindowSpec(5, "centred")).tolist()[4] == [4, 4, 4, 5, 6]  # second video's first frame


def test_mpjpe_loss_is_mean_joint_distance():
    model = small("3")
    pred, target = torch.zeros(2, 1, 51, dtype=torch.float64), torch.zeros(2, 1, 51, dtype=torch.float64)
    target[0, 0, 0:3] = torch.tensor([3.0, 4.0, 0.0])  # one joint 5 m away in one of 2 x 17 joint slots
    assert model.loss(pred, target, None).item() == pytest.approx(5.0 / 34)


def _recipe_run(tmp_path, tiny_dataset, **train):
    from liftbench.pipeline import train_run

    cfg = resolve_config("tcn", options={"data.name": "tiny"},
                         overrides={"filter_widths": "3", "channels": 8, "epochs": 2, "batch_size": 64, **train})
    return cfg, train_run(cfg, out_dir=tmp_path, device="cpu")


def test_tcn_recipe_trains_and_scores_every_frame(tmp_path, tiny_dataset, monkeypatch):
    from liftbench.fast.stack import FunctionalStack
    from liftbench.pipeline import evaluate_run

    applied = []
    original = FunctionalStack.set_bn_momentum

    def record(self, momentum):
        applied.append(momentum)
        original(self, momentum)
        applied.append(sorted({m.momentum for model in self.models for m in model.modules()
                               if isinstance(m, torch.nn.BatchNorm1d)}))

    monkeypatch.setattr(FunctionalStack, "set_bn_momentum", record)
    cfg, outcome = _recipe_run(tmp_path, tiny_dataset)
    resolved = cfg.resolved_train()
    assert (resolved.optimizer, resolved.lr_decay_every, resolved.flip_augment) == ("amsgrad", "epoch", True)
    history = outcome.state.history
    assert [h["lr"] for h in history] == pytest.approx([1e-3, 1e-3 * 0.95])  # epoch e (0-based) at 1e-3 * 0.95^e
    assert applied == [pytest.approx(0.1), [pytest.approx(0.1)], pytest.approx(0.01),
                       [pytest.approx(0.01)]]  # 0.1 * 0.01^(e/2)
    res = evaluate_run(outcome.run_dir, device="cpu")
    assert res.card["frames"]["every_frame_exactly_once"] and res.card["temporal"]["alignment"] == "centred"
    assert set(res.rows["alignment"]) == {"centred"} and set(res.rows["seq_len"]) == {3}


def test_flip_augmentation_feeds_mirrored_copies(tmp_path, tiny_dataset):
    """The gather of sample W + i is the mirror of sample i (inputs and targets)."""
    from liftbench.data.windows import build_table
    from liftbench.train import Member, _BatchGather

    cfg = resolve_config("tcn", options={"data.name": "tiny"}, overrides={"filter_widths": "3", "channels": 8})
    model = create_lifter("tcn", **cfg.model_params)
    rep = model.contract.representation
    train = tiny_dataset.split("train")
    stats = compute_stats(train, rep)
    table = build_table(train, stats, rep)
    member = Member(model, table, stats, cfg.resolved_train(), tmp_path, cfg.to_dict())
    windows = training_windows(table, model.contract.window)
    gather = _BatchGather([member], windows, torch.device("cpu"))
    n = len(windows.anchors)
    ids = torch.tensor([[3, n + 3]])
    x, y = gather(ids)
    perm_in, sign_in, perm_out, sign_out = (torch.as_tensor(a) for a in flip_maps(rep))
    assert (torch.equal(x[0, 1], x[0, 0][..., perm_in] * sign_in)
            and torch.equal(y[0, 1], y[0, 0][..., perm_out] * sign_out))
    assert y.shape == (1, 2, 1, 51) and x.shape == (1, 2, 3, 34)


def test_flip_augmentation_refuses_a_zscore_lifter(tmp_path, tiny_dataset):
    from liftbench.errors import ConfigError

    with pytest.raises(ConfigError, match="flip_augment"):
        _recipe_lifter = resolve_config("mlp", options={"data.name": "tiny"},
                                        overrides={"hidden_size": 8, "epochs": 1, "flip_augment": True})
        from liftbench.pipeline import train_run

        train_run(_recipe_lifter, out_dir=tmp_path, device="cpu")


def test_bn_schedule_on_a_stack_with_its_own_batchnorm_is_an_error(tmp_path, tiny_dataset):
    from liftbench.errors import ConfigError
    from liftbench.pipeline import train_run

    cfg = resolve_config("mlp", options={"data.name": "tiny"},
                         overrides={"hidden_size": 8, "epochs": 1, "bn_momentum_start": 0.1, "bn_momentum_end": 0.01})
    with pytest.raises(ConfigError, match="bn_momentum"):
        train_run(cfg, out_dir=tmp_path, device="cpu")


def test_new_recipe_keys_at_their_defaults_keep_existing_run_ids():
    """Adding recipe options must not rename runs that do not use them (their hash skips defaults)."""
    a = resolve_config("mlp")
    b = resolve_config("mlp", overrides={"optimizer": "adam", "flip_augment": False, "lr_decay_every": "step"})
    c = resolve_config("mlp", overrides={"optimizer": "amsgrad"})
    assert a.run_id == b.run_id != c.run_id


def test_unit_stats_shapes_follow_the_contract():
    stats = NormStats(torch.zeros(34), torch.ones(34), torch.zeros(51), torch.full((51,), 1000.0))
    y = stats.unnormalize_output(torch.full((2, 51), 0.5))
    assert torch.equal(y, torch.full((2, 51), 500.0))  # metres -> mm
