"""Any structure the safe ``.npz`` loader admits in a VideoPose3D-layout file loads or is refused in one
line (hypothesis-generated arrays, dicts and dtypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.h36m import CPN, CPN_FILE, write_h36m_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liftbench.data import load_dataset, verify_dataset
from liftbench.errors import LiftbenchError


@pytest.fixture
def h36m(tmp_path):
    write_h36m_fixture(tmp_path, keypoints=("gt", CPN))
    return tmp_path


# ---- any structure the safe loader admits gives success or one DataError -------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.floats(allow_nan=True), st.text(max_size=4),
                  st.sampled_from([np.zeros((0, 17, 2), np.float32), np.ones((5, 17, 2)) * 500,
                                   np.full((5, 17, 2), 1e30), np.zeros((5, 16, 2), np.float16), np.array(3),
                                   np.ones((6, 32, 3), np.float32), np.ones((4, 17, 3), np.int64),
                                   np.zeros((2, 17, 2), bool), np.ones((3, 17, 3)) * np.nan]))
_tree = st.recursive(_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=5), st.lists(kids, min_size=4, max_size=4).map(tuple),
    st.dictionaries(st.sampled_from(["S1", "S9", "S11", "S2", "Directions", "Walking 1", "layout_name",
                                     "num_joints", 1]), kids, max_size=4)), max_leaves=25)


_subjects = st.sampled_from(["S1", "S5", "S9", "S11", "S2", 7])
_actions = st.sampled_from(["Directions", "Walking 1", "TakingPhoto 1", "Photo 1", 3])
_poses_3d = st.sampled_from([np.ones((6, 32, 3), np.float32), np.ones((6, 17, 3)) * 2000, np.ones((6, 32, 3)) * 40,
                             np.zeros((0, 32, 3)), np.ones((12, 17, 3), np.float16)])
_views = st.sampled_from([np.ones((6, 17, 2)) * 500, np.ones((5, 17, 2)) * 1e6, np.ones((6, 16, 2), np.float32),
                          np.zeros((0, 17, 2)), None, np.ones((40, 17, 2))])
# VideoPose3D-shaped content with wrong leaves, and shapeless trees
_files_3d = st.one_of(_tree, st.dictionaries(_subjects, st.dictionaries(_actions, st.one_of(_poses_3d, _leaf)),
                                            max_size=4))
_files_2d = st.one_of(_tree, st.dictionaries(_subjects, st.dictionaries(_actions, st.one_of(
    st.lists(_views, min_size=4, max_size=4), st.lists(_views, max_size=5), _leaf)), max_size=4))
_metadata = st.one_of(_tree, st.fixed_dictionaries({
    "layout_name": st.one_of(st.sampled_from(["h36m", "mpii", "coco"]), _leaf),
    "num_joints": st.one_of(st.sampled_from([16, 17, 18]), _leaf)}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positions_3d=_files_3d, positions_2d=_files_2d, metadata=_metadata)
def test_any_admitted_structure_is_loaded_or_refused_in_one_line(h36m, monkeypatch, positions_3d, positions_2d,
                                                                 metadata):
    import liftbench.data.h36m_files as files

    fake = {h36m / "data_3d_h36m.npz": {"positions_3d": positions_3d},
            h36m / CPN_FILE: {"positions_2d": positions_2d, "metadata": metadata}}
    monkeypatch.setattr(files, "load_npz", lambda path: fake[Path(path)])
    try:
        problems = verify_dataset("h36m", h36m, CPN)
        load_dataset("h36m", h36m, CPN)
        assert problems == []
    except LiftbenchError as exc:
        assert "\n" not in str(exc) and str(exc)
