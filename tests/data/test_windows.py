import numpy as np
import pytest

from liftbench.data.noise import add_gaussian_noise
from liftbench.data.normalize import compute_stats, flat_targets, normalize_targets, outputs_to_poses
from liftbench.data.windows import WindowSpec, build_table, training_window_starts, window_index


def test_training_windows_stay_inside_sequences(tiny_dataset):
    train = tiny_dataset.split("train")
    table = build_table(train, compute_stats(train))
    for T in (1, 4, 5, 31):
        starts = training_window_starts(table, T)
        expected = sum(max(0, s.n_frames - T + 1) for s in train)
        assert len(starts) == expected
        seq_of = table.sequence_ids()
        assert np.all(seq_of[starts] == seq_of[starts + T - 1])  # never crosses a boundary


def test_causal_index_pads_with_first_frame():
    from liftbench.data.windows import FrameTable

    lengths = np.array([2, 5])
    table = FrameTable(np.zeros((7, 32), np.float32), np.zeros((7, 48), np.float32), np.array([0, 2]), lengths, [])
    idx = window_index(table, WindowSpec(3, "causal"))
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [2, 2, 2], [2, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]


def test_normalisation_uses_train_stats_and_roundtrips(tiny_dataset):
    train = tiny_dataset.split("train")
    stats = compute_stats(train)
    y = np.concatenate([normalize_targets(s.joints_3d, stats) for s in train])
    assert np.allclose(y.mean(0), 0, atol=1e-4) and np.allclose(y.std(0), 1, atol=1e-3)
    s = tiny_dataset.split("test")[0]
    mm = normalize_targets(s.joints_3d, stats) * stats.out_std.numpy() + stats.out_mean.numpy()
    poses = outputs_to_poses(mm.astype(np.float64))
    centred = s.joints_3d - s.joints_3d[:, :1]
    assert np.abs(poses - centred).max() < 1e-2 and np.all(poses[:, 0] == 0)
    assert flat_targets(s.joints_3d).shape == (s.n_frames, 48)


def test_noise_reproducible_and_order_independent(tiny_dataset):
    seqs = tiny_dataset.split("test")
    a = add_gaussian_noise(seqs, 5.0, seed=1)
    b = add_gaussian_noise(list(reversed(seqs)), 5.0, seed=1)[::-1]
    c = add_gaussian_noise(seqs, 5.0, seed=2)
    for x, y, z, s in zip(a, b, c, seqs):
        assert np.array_equal(x.keypoints_2d, y.keypoints_2d)
        assert not np.array_equal(x.keypoints_2d, z.keypoints_2d)
        assert np.array_equal(x.joints_3d, s.joints_3d)
    noise = np.concatenate([(x.keypoints_2d - s.keypoints_2d).ravel() for x, s in zip(a, seqs)])
    assert abs(noise.std() - 5.0) < 0.3 and abs(noise.mean()) < 0.3
    assert add_gaussian_noise(seqs, 0.0, seed=1) is seqs
    with pytest.raises(ValueError):
        add_gaussian_noise(seqs, -1.0, seed=1)
