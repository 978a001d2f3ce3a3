"""`liftbench import-checkpoint` / `export-checkpoint` (issue 24 sections 1-2).

Checkpoints are built in code in the published layouts (key names and shapes from
``tests/fixtures/checkpoint_keys/`` and ``videopose3d_facts.md``): the dict ``{epoch, lr, random_state |
min_loss, model_pos}`` with numpy objects and DataParallel's ``module.`` prefix, in torch's zip and legacy
formats. Round trips train tiny runs and compare predictions bit for bit; full-size layouts are read on the
meta device (shapes only).
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.cli import assert_one_line_error
from fixtures.lifters import (
    one_torch_thread,  # noqa: F401  (the fixture, used by pytestmark)
    small_params,
)

import liftbench
from liftbench.errors import CheckpointError, ConfigError, UnknownNameError, UnsafeFileError
from liftbench.evaluate import predict_sequences
from liftbench.models import LIFTERS, create_lifter
from liftbench.pipeline import load_run, prepare_data, read_run_meta
from liftbench.wild.checkpoint_reader import read_checkpoint
from liftbench.wild.checkpoints import (
    IMAGE25D_NOMINAL_MM,
    checkpoint_formats,
    export_checkpoint,
    import_checkpoint,
    official_weights,
    strict_state,
)

KEYS = Path(__file__).parent.parent / "fixtures" / "checkpoint_keys"
FORMATS = {"videopose3d": "tcn", "motionbert": "motionbert", "mixste": "mixste"}
HEADS = {"num_heads": 2}  # the tiny runs' heads: what the weights cannot tell, given with --set


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read_keys(name: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (KEYS / name).read_text().splitlines():
        key, _, shape = line.partition(" ")
        out[key] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return out


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def official(model) -> OrderedDict:
    """A liftbench model's weights under the official names (written out here, independently of export)."""
    prefix = type(model).official_prefix
    return OrderedDict((k[len(prefix):], v.detach().clone()) for k, v in model.state_dict().items())


def released(state: dict, extras: dict | None = None, prefix: str = "module.") -> dict:
    """A checkpoint dict as the three code bases save it: numpy objects beside ``model_pos``."""
    return {"epoch": 80, "lr": 1.7e-5, "random_state": np.random.RandomState(1234), "min_loss": np.float64(0.04),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1.7e-5, "amsgrad": True}]},
            "model_pos": OrderedDict((prefix + k, v) for k, v in state.items()), **(extras or {})}


def save(obj, path: Path, legacy: bool = False) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def small_tcn(seed: int = 0, **params):
    torch.manual_seed(seed)
    return create_lifter("tcn", **{**small_params("tcn"), **params})


# ------------------------------------------------------------------ the registry
def test_formats_are_declared_by_the_lifters():
    assert checkpoint_formats() == FORMATS
    assert LIFTERS.get("videopose3d") is LIFTERS.get("tcn")


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownNameError, match=r"Unknown checkpoint format 'videopose'.*Did you mean: videopose3d"):
        import_checkpoint("videopose", tmp_path / "x.bin")


# ------------------------------------------------------------------ safe reading
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_numpy_objects_are_read_as_plain_values(tmp_path, legacy):
    state = official(small_tcn())
    path = save({**released(state), "table": np.arange(6, dtype=np.float32).reshape(2, 3),
                 "fortran": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3)), "flag": np.bool_(True)},
                tmp_path / "ckpt.bin", legacy)
    got = read_checkpoint(path)
    assert got["epoch"] == 80 and got["lr"] == 1.7e-5
    assert got["min_loss"] == np.float64(0.04) and got["min_loss"].dtype == np.float64 and got["flag"]
    np.testing.assert_array_equal(got["table"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(got["fortran"], np.arange(6).reshape(2, 3))
    record = got["random_state"]  # an inert record of the generator's state, never a numpy generator
    assert record["numpy"] == "numpy.random.RandomState"
    key = np.random.RandomState(1234).get_state()[1]
    assert any(isinstance(v, np.ndarray) and np.array_equal(v, key) for v in _leaves(record))
    for k, v in state.items():
        assert torch.equal(got["model_pos"]["module." + k], v)


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


def test_legacy_format_is_what_torch_1x_wrote(tmp_path):
    path = save({"x": torch.ones(2)}, tmp_path / "old.bin", legacy=True)
    assert not path.read_bytes().startswith(b"PK")  # pickles first: the format VideoPose3D's 2019 files use
    assert torch.equal(read_checkpoint(path)["x"], torch.ones(2))


def test_old_numpy_pickles_are_read(tmp_path, monkeypatch):
    """numpy 1.16 (2019) pickled a RandomState as ``numpy.random.__RandomState_ctor()`` + BUILD of the legacy
    state tuple, and arrays through ``numpy.core.multiarray``."""
    def ctor():
        raise AssertionError("never called")

    ctor.__module__, ctor.__qualname__, ctor.__name__ = "numpy.random", "__RandomState_ctor", "__RandomState_ctor"
    monkeypatch.setattr(np.random, "__RandomState_ctor", ctor, raising=False)
    legacy_state = np.random.RandomState(1234).get_state()  # ('MT19937', key, pos, has_gauss, gauss)

    class OldRandomState:
        def __reduce__(self):
            return ctor, (), legacy_state

    path = save({"random_state": OldRandomState(), "model_pos": {"w": torch.ones(1)}}, tmp_path / "a.bin", True)
    data = path.read_bytes().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n" in data and b"cnumpy.random\n__RandomState_ctor\n" in data
    (tmp_path / "b.bin").write_bytes(data)
    got = read_checkpoint(tmp_path / "b.bin")
    state = got["random_state"]["state"]
    assert state[0] == "MT19937" and np.array_equal(state[1], legacy_state[1]) and state[2] == legacy_state[2]


class Reduce:
    """Pickles as a call of ``target(*args)``: what a crafted checkpoint uses to run code."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


REFUSED = [(os.system, ("true",), "posix.system"), (eval, ("1",), "builtins.eval"),
           (getattr, (1, "real"), "builtins.getattr"),
           (bytearray, (10,), "builtins.bytearray"),  # torch admits it: 3 GB from a few bytes
           (set, ([1],), "builtins.set"), (complex, (1, 2), "builtins.complex"),
           (torch.Size, ([2],), "torch.Size"), (torch._utils._rebuild_qtensor, (), "torch._utils._rebuild_qtensor"),
           (np.frombuffer, (b"\0" * 8,), "numpy.frombuffer"),
           (np.random.default_rng, (), "numpy.random.default_rng"),
           (pickle.loads, (b"N.",), "_pickle.loads")]


@pytest.mark.parametrize("target, args, name", REFUSED, ids=[r[2] for r in REFUSED])
@pytest.mark.parametrize("protocol", [2, 4])
def test_every_global_outside_the_admitted_ones_is_refused_by_name(tmp_path, target, args, name, protocol):
    path = tmp_path / "evil.bin"
    torch.save({"model_pos": {"w": torch.ones(1)}, "x": Reduce(target, *args)}, path, pickle_protocol=protocol)
    # protocol 2 writes Python 2's module names (__builtin__, pickle)
    spelled = name.replace("builtins.", "(builtins|__builtin__)\\.").replace("_pickle.", "_?pickle\\.")
    with pytest.raises(UnsafeFileError, match=f"refuses to load '{spelled}'"):
        read_checkpoint(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_crafted_checkpoint_never_runs_code(tmp_path, run_cli, legacy):
    marker = tmp_path / "pwned"
    path = save({"model_pos": {"w": torch.ones(1)}, "x": Reduce(os.system, f"touch {marker}")}, tmp_path / "e.bin",
                legacy)
    code, _, err = run_cli("import-checkpoint", "videopose3d", path, "--out", tmp_path / "out")
    assert_one_line_error(code, err, str(path), "posix.system")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value, needle", [
    (np.array([1, "a"], dtype=object), "dtype O8"),
    (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "dtype V8"),
    (np.zeros(2, dtype=np.complex64), "dtype c8")])
def test_numpy_values_other_than_plain_numbers_are_refused(tmp_path, value, needle):
    path = save({"x": value}, tmp_path / "n.bin", legacy=True)
    with pytest.raises(UnsafeFileError, match=needle):
        read_checkpoint(path)


def test_a_declared_storage_larger_than_the_file_is_refused_before_loading(tmp_path):
    """A legacy file allocates each storage at its declared size before reading it: a few bytes declaring
    400 GB would be 400 GB of memory. Written as torch's _legacy_save writes, with a lying element count."""
    path = tmp_path / "bomb.bin"

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 10**11, None) if obj == "STORAGE" else None

    with open(path, "wb") as fh:
        for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, fh, protocol=2)
        Pickler(fh, protocol=2).dump({"w": "STORAGE"})
        pickle.dump(["0"], fh, protocol=2)
    with pytest.raises(UnsafeFileError, match=r"declares 400000000000 bytes of tensor storage in a file of \d+ bytes"):
        read_checkpoint(path)


def legacy_file(path: Path, main: bytes) -> Path:
    """A legacy-format file around a hand-written main pickle (no storages)."""
    with open(path, "wb") as fh:
        for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, fh, protocol=2)
        fh.write(main)
        pickle.dump([], fh, protocol=2)
    return path


def test_one_text_encoded_again_and_again_is_refused(tmp_path):
    """Protocol 2 spells bytes as _codecs.encode(text, 'latin1'), a copy per call: 50 calls on one memoised
    100 kB text would make 5 MB from a 100 kB file (3 GB from a few MB with more calls)."""
    text = b"a" * 100_000
    call = b"h\x00h\x01h\x02\x86R"  # encode(text, 'latin1') from the memo
    main = (b"\x80\x02c_codecs\nencode\nq\x00X" + len(text).to_bytes(4, "little") + text + b"q\x01X\x06\x00\x00\x00"
            b"latin1q\x02](" + call * 50 + b"e.")
    path = legacy_file(tmp_path / "copies.bin", main)
    with pytest.raises(UnsafeFileError, match=r"makes 5000000 bytes from texts in a file of \d+ bytes"):
        read_checkpoint(path)


def test_classes_named_outside_globals_are_refused(tmp_path):
    path = legacy_file(tmp_path / "inst.bin", b"\x80\x02(S'true'\nios\nsystem\n.")  # INST os.system('true')
    with pytest.raises(UnsafeFileError, match="uses pickle opcode INST"):
        read_checkpoint(path)


def test_deeply_nested_tuples_are_refused(tmp_path):
    nested: tuple = ()
    for _ in range(100):
        nested = (nested,)
    path = save({"k": nested}, tmp_path / "deep.bin", legacy=True)
    with pytest.raises(UnsafeFileError, match="nests tuples more than 64 deep"):
        read_checkpoint(path)


def test_other_files_are_not_checkpoints(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        read_checkpoint(tmp_path / "a.bin")
    import zipfile

    with zipfile.ZipFile(tmp_path / "z.bin", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(UnsafeFileError, match="compressed or oversized records"):
        read_checkpoint(tmp_path / "z.bin")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.bin")


# ------------------------------------------------------------------ configuration read from the shapes
def tcn_layout(**params) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return official(create_lifter("tcn", **params))


@pytest.mark.parametrize("params, widths, features", [
    ({}, "3,3,3,3,3", 2), ({"filter_widths": "3,3,3"}, "3,3,3", 2), ({"filter_widths": "3,5,5"}, "3,5,5", 2),
    ({"in_features": 3}, "3,3,3,3,3", 3), ({"filter_widths": "1,1,1"}, "1,1,1", 2)])
def test_tcn_widths_channels_and_features_are_read_from_the_shapes(params, widths, features):
    cls = LIFTERS.get("tcn")
    read, needs = cls.config_from_official(tcn_layout(**params), {})
    assert read == {"filter_widths": widths, "channels": 1024, "in_features": features}
    assert set(needs) == {"causal", "dense", "test_flip", "dropout"} and needs["causal"][0] is False


def test_tcn_published_parameter_counts_from_a_layout():
    """pretrained_h36m_cpn.bin's layout (243 frames, 1024 channels): 16,952,371 parameters; the 3-feature
    d-pt-243.bin: 17,004,595 (videopose3d_facts.md section 2)."""
    for params, count in (({}, 16_952_371), ({"in_features": 3}, 17_004_595)):
        read, _ = LIFTERS.get("tcn").config_from_official(tcn_layout(**params), {})
        with torch.device("meta"):
            model = create_lifter("tcn", **read)
        assert sum(p.numel() for p in model.parameters()) == count


def test_dense_kernels_need_the_set_value():
    layout = tcn_layout(filter_widths="3,3,3", dense=True)  # kernels 3, 7, 19
    cls = LIFTERS.get("tcn")
    assert cls.config_from_official(layout, {"dense": True})[0]["filter_widths"] == "3,3,3"
    assert cls.config_from_official(layout, {})[0]["filter_widths"] == "3,7,19"  # as dilated: the weights can't tell
    with pytest.raises(CheckpointError, match=r"'layers_conv.0.weight' has kernel 3, not a dense kernel"):
        cls.config_from_official(tcn_layout(filter_widths="3,3"), {"dense": True})  # (3 - 1) / 3: not dense


@pytest.mark.parametrize("change, needle", [
    ({"expand_conv.weight": (1024, 32, 3)}, "reads 32 input channels"),
    ({"shrink.weight": (3, 1024, 1), "shrink.bias": (3,)}, "trajectory model"),
    ({"shrink.weight": (48, 1024, 1)}, "is for 16 joints")])
def test_tcn_layouts_liftbench_cannot_run_are_one_line(change, needle):
    layout = {**tcn_layout(), **{k: torch.empty(s, device="meta") for k, s in change.items()}}
    with pytest.raises(CheckpointError, match=needle):
        LIFTERS.get("tcn").config_from_official(layout, {})


@pytest.mark.parametrize("keys, expected", [
    ("motionbert_dstformer_h36m_statedict_keys.txt", {"dim_feat": 512, "mlp_ratio": 2.0, "depth": 5}),
    ("motionbert_dstformer_lite_statedict_keys.txt", {"dim_feat": 256, "mlp_ratio": 4.0, "depth": 5})])
def test_dstformer_width_depth_and_mlp_ratio_are_read_from_the_shapes(keys, expected):
    cls = LIFTERS.get("motionbert")
    layout = meta_state(read_keys(keys))
    read, needs = cls.config_from_official(layout, {})
    assert read == {**expected, "dim_rep": 512, "maxlen": 243, "att_fuse": True}
    assert needs["num_heads"][0] == 8 and needs["clip_frames"][0] == 243
    with torch.device("meta"):
        model = create_lifter("motionbert", **read)
    strict_state(model, layout, "net.", "f.bin", "motionbert")  # every key and shape of the official layout


@pytest.mark.parametrize("frames", [243, 81])
def test_mixste_frame_count_is_read_from_the_shapes(frames):
    shapes = read_keys("mixste_243_statedict_keys.txt")
    shapes["Temporal_pos_embed"] = (1, frames, 512)
    layout = meta_state(shapes)
    read, needs = LIFTERS.get("mixste").config_from_official(layout, {})
    assert read == {"frames": frames, "embed_dim": 512, "depth": 8, "mlp_ratio": 2.0}
    assert needs["num_heads"][0] == 8
    with torch.device("meta"):
        model = create_lifter("mixste", **read)
    assert sum(p.numel() for p in model.parameters()) == {243: 33_783_811, 81: 33_700_867}[frames]
    strict_state(model, layout, "net.", "f.bin", "mixste")


def mmpose_name(key: str) -> str:
    """mmpose's name of an official MotionBERT key (transformer_lifters_facts.md section 1.3), written out."""
    parts = key.split(".")
    if key == "pos_embed":
        return "backbone.spat_embed"
    if parts[0] == "ts_attn":
        return "backbone.attn_regress." + ".".join(parts[1:])
    if parts[0] == "pre_logits":
        return "head." + key
    if parts[0] == "head":
        return "head.fc." + ".".join(parts[1:])
    if len(parts) > 3 and parts[2].startswith("mlp_"):
        parts[3] = {"fc1": "0", "fc2": "2"}[parts[3]]
    return "backbone." + ".".join(parts)


def test_mmpose_renamed_motionbert_keys_are_accepted():
    official_keys = read_keys("motionbert_dstformer_h36m_statedict_keys.txt")
    renamed = {mmpose_name(k): torch.empty(s, device="meta") for k, s in official_keys.items()}
    assert "backbone.blocks_st.0.mlp_s.0.weight" in renamed and "head.fc.weight" in renamed
    got = official_weights({"state_dict": renamed, "meta": {"epoch": 120}}, LIFTERS.get("motionbert"), "m.pth")
    assert {k: tuple(v.shape) for k, v in got.state.items()} == official_keys
    assert got.renamed == len(official_keys)


# ------------------------------------------------------------------ strict loading: every mismatch kind
def write_tcn(tmp_path: Path, state: dict, name: str = "tcn.bin", legacy: bool = False) -> Path:
    return save(released(state), tmp_path / name, legacy)


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.pop("layers_bn.1.running_var"), "has no tensor 'layers_bn.1.running_var' of shape (16,)"),
    (lambda s: s.update({"extra.weight": torch.ones(4, 2)}), "tensor 'extra.weight' of shape (4, 2) has no place"),
    (lambda s: s.update({"layers_conv.1.weight": torch.ones(16, 16, 3)}),
     r"tensor 'layers_conv.1.weight' has shape (16, 16, 3) in the file, the videopose3d model built from the "
     r"file's other tensors needs (16, 16, 1)"),
    (lambda s: s.update({"expand_bn.weight": torch.ones(17)}),
     r"tensor 'expand_bn.weight' has shape (17,) in the file, the videopose3d model built from the file's other "
     r"tensors needs (16,)"),
    (lambda s: s.pop("expand_conv.weight"), "has no tensor 'expand_conv.weight', which every VideoPose3D"),
    (lambda s: s.update({"layers_bn.0.running_mean": torch.ones(16, dtype=torch.int64)}),
     "'layers_bn.0.running_mean' is torch.int64")])
def test_every_mismatch_is_one_line_naming_the_key_and_both_shapes(tmp_path, run_cli, edit, needle):
    state = official(small_tcn())
    edit(state)
    path = write_tcn(tmp_path, state)
    code, _, err = run_cli("import-checkpoint", "videopose3d", path, "--out", tmp_path / "out")
    line = assert_one_line_error(code, err, str(path))
    assert needle.replace("\\", "") in line.replace("\\", ""), line
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


def test_another_models_file_and_non_tensors_are_refused(tmp_path):
    torch.manual_seed(0)
    mixste = create_lifter("mixste", **small_params("mixste"))
    path = save(released(official(mixste)), tmp_path / "m.bin")
    with pytest.raises(CheckpointError, match="has no tensor 'expand_conv.weight'"):
        import_checkpoint("videopose3d", path, out=tmp_path)
    path = save({"model_pos": {"w": torch.ones(1), "n": 3}}, tmp_path / "n.bin")
    with pytest.raises(CheckpointError, match="'model_pos' is not a state dict"):
        import_checkpoint("videopose3d", path, out=tmp_path)


def test_set_cannot_contradict_the_tensors(tmp_path):
    path = write_tcn(tmp_path, official(small_tcn()))
    with pytest.raises(ConfigError, match=r"--set channels=32: the weights say channels = 16"):
        import_checkpoint("videopose3d", path, {"channels": 32}, out=tmp_path)


def test_batchnorm_statistics_are_imported(tmp_path):
    """Non-trivial running statistics: an importer that ignored them would predict with mean 0, var 1."""
    torch.manual_seed(3)
    state = official(small_tcn())
    for key in state:
        if key.endswith("running_mean"):
            state[key] = torch.randn_like(state[key])
        elif key.endswith("running_var"):
            state[key] = torch.rand_like(state[key]) * 3 + 0.2
    done = import_checkpoint("videopose3d", write_tcn(tmp_path, state), out=tmp_path / "out")
    run = load_run(done.run_dir)
    for key, value in state.items():
        assert torch.equal(run.model.state_dict()[key], value), key
    fresh = small_tcn()
    fresh.load_state_dict({k: v for k, v in state.items() if "running" not in k}, strict=False)
    x = torch.randn(2, 9, 34)
    run.model.eval(), fresh.eval()
    assert not torch.allclose(run.model(x), fresh(x))  # the statistics matter to the prediction


def test_a_missing_num_batches_tracked_is_filled(tmp_path):
    """torch < 0.4.1 saved BatchNorm without num_batches_tracked (read by no prediction)."""
    state = {k: v for k, v in official(small_tcn()).items() if not k.endswith("num_batches_tracked")}
    done = import_checkpoint("videopose3d", write_tcn(tmp_path, state), out=tmp_path / "out")
    assert int(load_run(done.run_dir).model.state_dict()["expand_bn.num_batches_tracked"]) == 0


# ------------------------------------------------------------------ the imported run directory
def test_imported_run_directory_records_where_everything_came_from(tmp_path, run_cli):
    path = write_tcn(tmp_path, official(small_tcn()), legacy=True)
    code, out, err = run_cli("import-checkpoint", "videopose3d", path, "--set", "causal=true", "--set",
                             "data.name=tiny", "--out", tmp_path / "out")
    assert code == 0, err
    assert "read from the tensors: filter_widths=3,3, channels=16, in_features=2" in out
    assert "from --set: causal=true" in out and "published default dense=false" in out
    run_dir = next((tmp_path / "out" / "runs").iterdir())
    meta = read_run_meta(run_dir)
    imported = meta["imported"]
    assert meta["origin"] == "imported" and meta["state"] == "done" and "dataset_fingerprint" not in meta
    assert imported["file"] == "tcn.bin" and imported["size"] == path.stat().st_size
    assert imported["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert imported["config_sources"] == {"filter_widths": "tensors", "channels": "tensors", "in_features": "tensors",
                                          "causal": "--set", "dense": "published default",
                                          "test_flip": "published default", "dropout": "published default"}
    assert imported["source_epoch"] == 80 and imported["source_lr"] == 1.7e-5
    assert imported["stripped_prefix"] == "module." and imported["format"] == "videopose3d"
    assert run_dir.name == f"tcn-{meta['config_hash']}" and json.loads((run_dir / "config.json").read_text())[
        "model"]["causal"] is True
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")]  # no staging directory left
    code, out, _ = run_cli("import-checkpoint", "videopose3d", path, "--set", "causal=true", "--set",
                           "data.name=tiny", "--out", tmp_path / "out")
    assert code == 0 and "already imported" in out


def test_a_different_file_with_the_same_configuration_is_refused(tmp_path):
    import_checkpoint("videopose3d", write_tcn(tmp_path, official(small_tcn(0)), "a.bin"), out=tmp_path / "out")
    with pytest.raises(CheckpointError, match="already holds weights imported from a.bin"):
        import_checkpoint("videopose3d", write_tcn(tmp_path, official(small_tcn(1)), "b.bin"), out=tmp_path / "out")


def test_suites_and_train_reuse_an_imported_run_and_evaluate_accepts_it(tmp_path):
    done = import_checkpoint("videopose3d", write_tcn(tmp_path, official(small_tcn())), {"data.name": "tiny"},
                             out=tmp_path / "out")
    run = load_run(done.run_dir)
    before = (done.run_dir / "checkpoint.pt").read_bytes()
    again = liftbench.train_run(run.config, out_dir=tmp_path / "out" / "runs", device="cpu")
    assert again.skipped and again.run_dir == done.run_dir
    assert (done.run_dir / "checkpoint.pt").read_bytes() == before  # not retrained, not moved aside
    res = liftbench.evaluate_run(done.run_dir, device="cpu")
    assert res.card["origin"] == "imported" and res.card["imported"]["file"] == "tcn.bin"
    assert res.card["frames"]["every_frame_exactly_once"]


def test_motionbert_nominal_scale_without_ground_truth(tmp_path):
    torch.manual_seed(0)
    model = create_lifter("motionbert", **small_params("motionbert"))
    path = save(released(official(model)), tmp_path / "best_epoch.bin")
    run = load_run(import_checkpoint("motionbert", path, HEADS, out=tmp_path / "out").run_dir)
    assert torch.equal(run.stats.out_std, torch.full((51,), IMAGE25D_NOMINAL_MM))
    assert torch.equal(run.stats.in_std, torch.ones(51)) and not run.stats.in_mean.any()


# ------------------------------------------------------------------ round trips
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run per lifter with a published layout, trained here for one epoch."""
    root = tmp_path_factory.mktemp("trained")
    runs = {}
    for fmt, name in FORMATS.items():
        cfg = liftbench.load_config(name, options={"data.name": "tiny", "train.epochs": 1},
                                    overrides={**small_params(name), "batch_size": 16, "max_windows_per_epoch": 32})
        runs[fmt] = liftbench.train_run(cfg, out_dir=root, device="cpu").run_dir
    return runs


def predictions(run_dir: Path) -> np.ndarray:
    run = load_run(run_dir)
    test = prepare_data(run.config).test
    return predict_sequences(run.model, run.stats, test, torch.device("cpu")).pred


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_predicts_bit_identically(trained, tmp_path, fmt, legacy):
    src = trained[fmt]
    exported = export_checkpoint(src, fmt, tmp_path / f"{fmt}.bin", legacy=legacy)
    raw = read_checkpoint(exported.path)
    assert all(k.startswith("module.") for k in raw["model_pos"]) and {"epoch", "lr", "model_pos"} <= set(raw)
    sets = {"data.name": "tiny", **(HEADS if fmt != "videopose3d" else {})}
    done = import_checkpoint(fmt, exported.path, sets, out=tmp_path / "out")
    assert done.weights.stripped_prefix == "module." and done.from_set == ({} if fmt == "videopose3d" else HEADS)
    a, b = load_run(src), load_run(done.run_dir)
    for key, value in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[key], value), key
    if fmt == "videopose3d":
        assert any(k.endswith("running_var") and not torch.equal(v, torch.ones_like(v))
                   for k, v in a.model.state_dict().items())  # trained BatchNorm statistics travelled
    torch.manual_seed(5)
    x = torch.randn(3, a.model.window, a.model.contract.representation.input_dim)
    a.model.eval(), b.model.eval()
    with torch.no_grad():
        assert torch.equal(a.model.predict_clips(x), b.model.predict_clips(x))  # the network, bit for bit
    if a.model.contract.representation.output_norm == "image25d":
        # decoded with the ground truth's per-frame scale over NormStats' nominal one, which the published
        # layout cannot carry (training median here, IMAGE25D_NOMINAL_MM imported): equal up to float round-off
        np.testing.assert_allclose(predictions(done.run_dir), predictions(src), rtol=1e-6, atol=1e-5)
    else:
        np.testing.assert_array_equal(predictions(done.run_dir), predictions(src))


def test_export_checks_the_format(trained, tmp_path):
    with pytest.raises(ConfigError, match="whose published layout is 'videopose3d'; pass that FORMAT"):
        export_checkpoint(trained["videopose3d"], "mixste", tmp_path / "x.bin")


def test_export_then_import_on_the_command_line(trained, tmp_path, run_cli):
    out = tmp_path / "v.bin"
    code, text, err = run_cli("export-checkpoint", trained["videopose3d"], "videopose3d", out, "--legacy")
    assert code == 0, err
    assert "entries epoch, lr, model_pos, random_state" in text
    code, text, err = run_cli("import-checkpoint", "videopose3d", out, "--set", "data.name=tiny", "--out",
                              tmp_path / "r")
    assert code == 0, err
    assert "stripped the DataParallel prefix 'module.'" in text
    buffer = io.BytesIO(out.read_bytes())
    assert buffer.read(2) != b"PK"


def test_an_mmpose_converted_motionbert_file_imports_with_the_official_weights(tmp_path):
    torch.manual_seed(2)
    model = create_lifter("motionbert", **small_params("motionbert"))
    state = official(model)
    path = save({"meta": {"epoch": 60}, "state_dict": OrderedDict((mmpose_name(k), v) for k, v in state.items())},
                tmp_path / "mmpose.pth")
    done = import_checkpoint("motionbert", path, HEADS, out=tmp_path / "out")
    assert done.weights.renamed == len(state) and not done.weights.stripped_prefix
    got = load_run(done.run_dir).model.state_dict()
    assert all(torch.equal(got["net." + k], v) for k, v in state.items())


def test_a_three_feature_videopose3d_file_reads_scores(tmp_path):
    """d-pt-243.bin's variant: (x, y, detector score) per joint, 51 input channels."""
    path = write_tcn(tmp_path, official(small_tcn(in_features=3)))
    run = load_run(import_checkpoint("videopose3d", path, {"data.name": "tiny"}, out=tmp_path / "out").run_dir)
    assert run.config.model_params["in_features"] == 3
    assert run.model.contract.representation.input_confidence and run.model.expand_conv.in_channels == 51
    res = liftbench.evaluate_run(run.run_dir, device="cpu")
    assert res.card["frames"]["every_frame_exactly_once"] and "1.0 for every joint" in res.card["input_scores"]


def test_an_imported_run_exports_the_weights_it_was_given(tmp_path):
    state = official(small_tcn(4))
    done = import_checkpoint("videopose3d", write_tcn(tmp_path, state), out=tmp_path / "out")
    back = read_checkpoint(export_checkpoint(done.run_dir, "videopose3d", tmp_path / "back.bin").path)
    assert list(back["model_pos"]) == ["module." + k for k in state]  # the official key order
    assert all(torch.equal(back["model_pos"]["module." + k], v) for k, v in state.items())
    assert back["epoch"] == 80 and back["random_state"]["numpy"] == "numpy.random.RandomState"


def test_a_dense_file_imports_with_set_dense(tmp_path):
    """The paper's "w/o dilation" ablation: block kernels (W - 1) d + 1; dense=true comes from --set."""
    state = official(small_tcn(dense=True))
    assert state["layers_conv.0.weight"].shape[2] == 7
    run = load_run(import_checkpoint("videopose3d", write_tcn(tmp_path, state), {"dense": True},
                                     out=tmp_path / "out").run_dir)
    assert run.config.model_params["filter_widths"] == "3,3" and run.config.model_params["dense"] is True
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in state.items())
