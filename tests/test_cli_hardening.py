"""Issue 15 (items 6, 7, 10, 11): damaged run directories, bad values, failed writes and options that do not
apply are one line on stderr and exit 2, before any work, and never a traceback, a partial file or a
silently reused run trained on other data."""

from __future__ import annotations

import errno
import json
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from liftbench.config import resolve_config
from liftbench.data import DATASETS, DatasetSource, PoseDataset
from liftbench.pipeline import train_run
from liftbench.results import rows_frame, write_rows, write_text_atomic
from liftbench.train import CHECKPOINT

TINY = {"data.name": "tiny", "hidden_size": 8, "epochs": 1, "batch_size": 16, "lr": 1e-3}
# Whatever a test gives on top, a regression (the value accepted) trains for seconds, not hours.
QUICK = ["--data", "tiny", "--set", "epochs=1", "--set", "hidden_size=8", "--set", "batch_size=16", "--device", "cpu"]
TRAIN_ARGS = ["--data", "tiny", "--epochs", "1", "--set", "hidden_size=8", "--set", "batch_size=16", "--set", "lr=1e-3",
              "--device", "cpu"]


def _one_line(code: int, err: str, *needles: str) -> None:
    """Exit 2, exactly one line on stderr, no traceback, every needle in it."""
    assert code == 2, (code, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ------------------------------------------------------------------ damaged checkpoints and run.json


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished and an interrupted tiny MLP run, both in OUT/runs/<run_id> (copied by each test)."""
    out = tmp_path_factory.mktemp("hardening")
    cfg = resolve_config("mlp", options=TINY)
    done = train_run(cfg, out_dir=out / "done" / "runs", device="cpu")
    cfg2 = resolve_config("mlp", options={**TINY, "epochs": 2})
    part = train_run(cfg2, out_dir=out / "part" / "runs", device="cpu", stop_after_steps=2)
    assert done.state.finished and not part.state.finished
    return {"done": done.run_dir, "part": part.run_dir}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "runs" / src.name
    shutil.copytree(src, dst)
    return dst


def _damage(run_dir: Path, edit) -> None:
    path = run_dir / CHECKPOINT
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def _first_weight(ckpt) -> str:
    return next(k for k, v in ckpt["model"].items() if v.dim() == 2)


DAMAGES = {
    "missing key": (lambda c: c.pop("epoch"), "missing key(s) epoch"),
    "wrong type": (lambda c: c.__setitem__("epoch", "3"), "'epoch' is a str"),
    "history type": (lambda c: c.__setitem__("history", [{"epoch": torch.zeros(2)}]), "'history'"),
    "weight shape": (lambda c: c["model"].__setitem__(_first_weight(c), torch.zeros(3, 3)), "does not fit"),
    "missing weight": (lambda c: c["model"].pop(_first_weight(c)), "does not fit"),
    "config": (lambda c: c.__setitem__("config", {"model": 5}), "'config'"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_checkpoint_evaluate_is_one_line(runs, tmp_path, run_cli, damage):
    run_dir = _copy(runs["done"], tmp_path)
    edit, phrase = DAMAGES[damage]
    _damage(run_dir, edit)
    code, _, err = run_cli("evaluate", run_dir, "--device", "cpu")
    _one_line(code, err, str(run_dir / CHECKPOINT), phrase)


RESUME_DAMAGES = {
    **DAMAGES,
    "dropout rng": (lambda c: c.__setitem__("dropout_rng", torch.zeros(7, dtype=torch.uint8)), "dropout RNG state"),
    "dropout rng type": (lambda c: c.__setitem__("dropout_rng", [1, 2]), "'dropout_rng'"),
    "torch rng": (lambda c: c.__setitem__("torch_rng", torch.zeros(7, dtype=torch.uint8)), "torch RNG state"),
    "adam moment shape": (lambda c: next(iter(c["optimizer"]["state"].values())).__setitem__("exp_avg", torch.zeros(2, 2)),
                          "optimizer state 'exp_avg'"),
}


@pytest.mark.parametrize("damage", sorted(RESUME_DAMAGES))
def test_damaged_checkpoint_resume_is_one_line(runs, tmp_path, run_cli, damage):
    run_dir = _copy(runs["part"], tmp_path)
    edit, phrase = RESUME_DAMAGES[damage]
    _damage(run_dir, edit)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS[:3], "2", *TRAIN_ARGS[4:], "--out", tmp_path, "--resume")
    _one_line(code, err, str(run_dir / CHECKPOINT), phrase)


def test_undamaged_interrupted_run_still_resumes(runs, tmp_path, run_cli):
    """The checks accept what liftbench writes (else the tests above would pass for the wrong reason)."""
    run_dir = _copy(runs["part"], tmp_path)
    code, out, err = run_cli("train", "mlp", *TRAIN_ARGS[:3], "2", *TRAIN_ARGS[4:], "--out", tmp_path, "--resume")
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["state"] == "done"


@pytest.mark.parametrize("content", ['{"run_id": "mlp-', "[]", "\x00\xff"])
def test_damaged_run_json_is_one_line(runs, tmp_path, run_cli, content):
    run_dir = _copy(runs["done"], tmp_path)
    (run_dir / "run.json").write_bytes(content.encode("latin-1"))
    code, _, err = run_cli("evaluate", run_dir, "--device", "cpu")
    _one_line(code, err, str(run_dir / "run.json"))
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    _one_line(code, err, str(run_dir / "run.json"))


# ------------------------------------------------------------------ config values (item 7)


@pytest.mark.parametrize("text,needles", [
    ('model = "mlp"\n', ["'model' must be a table", "[model]"]),
    ("train = 5\n", ["'train' must be a table"]),
    ('[model]\nname = 5\n', ["[model] name must be a lifter name"]),
    ("[train]\nlr = nan\n", ["'train.lr' must be a finite number"]),
    ("[model]\nsmoothness = inf\n", ["'model.smoothness' must be a finite number"]),
])
def test_bad_toml_values_are_one_line(tmp_path, run_cli, text, needles):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    code, _, err = run_cli("train", "seq2seq", "--config", path, "--out", tmp_path / "out", *QUICK)
    _one_line(code, err, str(path), *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,needles", [
    (["--seed", "-1"], ["train.seed", "got -1"]),
    (["--set", "lr=nan"], ["--set lr must be a finite number"]),
    (["--set", "smoothness=nan"], ["--set smoothness must be a finite number"]),
    (["--set", "dropout=inf"], ["--set dropout must be a finite number"]),
    (["--set", "train_noise=-inf"], ["--set train_noise must be a finite number"]),
    (["--subset", "nan"], ["data.subset must be a finite number"]),
    (["--set", "checkpoint_every_s=nan"], ["checkpoint_every_s must be a finite number"]),
])
def test_non_finite_and_negative_values_refused_before_any_work(tmp_path, run_cli, args, needles):
    code, _, err = run_cli("train", "seq2seq", "--out", tmp_path, *QUICK, *args)
    _one_line(code, err, *needles)
    assert not (tmp_path / "runs").exists()  # no config.toml that could not be read back


def test_every_float_field_of_every_section_is_checked():
    """Generic: whatever float field a section or lifter Config has, nan is refused (not only the ones above)."""
    import dataclasses

    from liftbench.config import DataConfig, TrainConfig
    from liftbench.errors import ConfigError
    from liftbench.models import LIFTERS

    for model in LIFTERS.names():
        sections = {"train": TrainConfig, "data": DataConfig, "model": LIFTERS.get(model).Config}
        for section, cls in sections.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if "float" in str(hints[f.name]):
                    with pytest.raises(ConfigError, match="finite"):
                        resolve_config(model, overrides={f"{section}.{f.name}": float("nan")})


def test_huge_model_refused_with_its_size_without_allocating():
    from liftbench.model_size import check_model_size, count_parameters
    from liftbench.errors import ConfigError
    from liftbench.models import LIFTERS, create_lifter, trainable_parameters

    # the meta-device count equals the real count (for a size that fits) ...
    for model in LIFTERS.names():
        assert count_parameters(model, LIFTERS.get(model).Config()) == trainable_parameters(create_lifter(model))
    # ... and for the MLP it is the closed form: stem 32H+H, 2 blocks x 2 x (H*H+H), head 48H+48, BN 2H per dense
    H = 10**6
    n = count_parameters("mlp", LIFTERS.get("mlp").Config(hidden_size=H))
    assert n == (32 * H + H + 2 * H) + 2 * 2 * (H * H + H + 2 * H) + (H * 48 + 48)
    with pytest.raises(ConfigError, match=r"4,000,095,000,048 parameters.*GiB"):
        resolve_config("mlp", overrides={"hidden_size": H})
    check_model_size("mlp", LIFTERS.get("mlp").Config(), limit_bytes=16 * 4_291_632)  # exactly fits: no error
    with pytest.raises(ConfigError, match="4,291,632 parameters"):
        check_model_size("mlp", LIFTERS.get("mlp").Config(), limit_bytes=16 * 4_291_632 - 1)


def test_huge_model_cli_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "seq2seq", "--set", "hidden_size=1000000", "--out", tmp_path)
    _one_line(code, err, "hidden_size=1000000", "parameters", "GiB")


@pytest.mark.parametrize("sigma", ["nan", "inf", "-1"])
def test_evaluate_noise_sigma_must_be_finite(runs, run_cli, sigma):
    code, _, err = run_cli("evaluate", runs["done"], "--noise-sigma", sigma, "--device", "cpu")
    _one_line(code, err, "--noise-sigma must be a finite number >= 0")


# ------------------------------------------------------------------ results files for report / compare


def _rows() -> list[dict]:
    return [{"run_id": "r", "model": "m", "variant": "full", "seed": 0, "dataset": "tiny", "keypoints": "gt",
             "test_noise": 0.0, "seq_len": 1, "metric": "mpjpe", "slice_type": "all", "slice": "action_mean",
             "value": 50.0, "status": "ok"}]


@pytest.mark.parametrize("drop", ["status", "variant", "slice"])
def test_compare_on_csv_without_a_required_column(tmp_path, run_cli, drop):
    path = tmp_path / "results.csv"
    rows_frame(_rows()).drop(columns=[drop]).to_csv(path, index=False)
    code, _, err = run_cli("compare", path)
    _one_line(code, err, str(path), f"missing column(s) {drop}")


def test_report_on_csv_without_status_and_on_bad_manifest(tmp_path, run_cli):
    suite = tmp_path / "abl"
    suite.mkdir()
    rows_frame(_rows()).drop(columns=["status"]).to_csv(suite / "results.csv", index=False)
    (suite / "summary.csv").write_text("variant,seq_len,test_noise,metric,slice_type,slice,mean,sd,n\n")
    (suite / "manifest.json").write_text(json.dumps({"suite": "ablation", "runs": []}))
    code, _, err = run_cli("report", suite)
    _one_line(code, err, str(suite / "results.csv"), "status")
    write_rows(suite / "results.csv", _rows())
    (suite / "manifest.json").write_text("{}")
    code, _, err = run_cli("report", suite)
    _one_line(code, err, str(suite / "manifest.json"), "'runs'")
    (suite / "manifest.json").write_text(json.dumps({"suite": "ablation", "runs": []}))
    (suite / "summary.csv").write_text("a,b\n1,2\n")
    code, _, err = run_cli("report", suite)
    _one_line(code, err, str(suite / "summary.csv"), "missing column(s)")


# ------------------------------------------------------------------ output paths and failed writes


def test_out_on_an_existing_file(tmp_path, run_cli, runs):
    file = tmp_path / "afile"
    file.write_text("x")
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", file)
    _one_line(code, err, f"--out {file} is an existing file")
    code, _, err = run_cli("run", "ablation", "--out", file / "sub", *QUICK)
    _one_line(code, err, f"--out {file / 'sub'}", "which is a file")
    code, _, err = run_cli("evaluate", runs["done"], "--device", "cpu", "--results-dir", file)
    _one_line(code, err, f"--results-dir {file} is an existing file")
    assert file.read_text() == "x"


def test_out_on_a_read_only_place(tmp_path, run_cli, monkeypatch, runs):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == ro and mode & os.W_OK else real_access(p, mode, **kw))
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", ro / "out")
    _one_line(code, err, f"--out {ro / 'out'}", "not writable")
    code, _, err = run_cli("run", "ablation", "--out", ro, *QUICK)
    _one_line(code, err, f"--out {ro}", "not writable")
    code, _, err = run_cli("evaluate", runs["done"], "--device", "cpu", "--results-dir", ro)
    _one_line(code, err, f"--results-dir {ro}", "not writable")


def test_write_failing_with_erofs_is_one_line(tmp_path, run_cli, monkeypatch):
    """Where the probe cannot tell (a filesystem turned read-only mid-run), the OSError is still one line."""
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):
        if tmp_path / "out" in (self, *self.parents):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path / "out")
    _one_line(code, err, "Read-only file system", str(tmp_path / "out"))


class _FullDisk:
    """A file object whose write stores a few bytes, then fails as a full disk does."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, data):
        self.fh.write(data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    import liftbench.results as results
    from liftbench.errors import OutputError

    target = tmp_path / "results.csv"
    target.write_text("old\n")
    monkeypatch.setattr(results, "open", lambda p, mode="r", **kw: _FullDisk(open(p, mode, **kw)), raising=False)
    with pytest.raises(OutputError) as info:
        write_text_atomic(target, "new rows\n")
    message = str(info.value)
    assert str(target) in message and "No space left on device" in message and "\n" not in message
    assert isinstance(info.value, OSError)  # callers that handle I/O errors keep handling it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]  # the .tmp is gone
    assert target.read_text() == "old\n"  # the old file is untouched


def test_checkpoint_on_a_full_disk_leaves_no_temp_file(tmp_path, run_cli, monkeypatch):
    real_save = torch.save

    def full_disk_save(obj, f, *a, **kw):
        if str(f).endswith(".tmp"):
            Path(f).write_bytes(b"PK\x03\x04partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk_save)
    code, _, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    _one_line(code, err, "checkpoint.pt", "No space left on device", "free disk space")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert not (run_dir / CHECKPOINT).exists()


# ------------------------------------------------------------------ item 10: data changed behind a run

SHIFT = {"mm": 0.0}  # what the 'tiny-shifting' source adds to every 3D joint: the "re-prepared dataset"


if "tiny-shifting" not in DATASETS:
    @DATASETS.register("tiny-shifting")
    class ShiftingSource(DatasetSource):
        name = "tiny-shifting"
        description = "tiny, with 2D keypoints that a test can change (tests only)"

        def load(self, data_dir, keypoints: str) -> PoseDataset:
            from conftest import make_tiny_dataset

            ds = make_tiny_dataset()
            seqs = [type(s)(s.subject, s.action, s.camera, s.keypoints_2d + np.float32(SHIFT["mm"]), s.joints_3d)
                    for s in ds.sequences]
            return PoseDataset("tiny-shifting", ds.keypoints, ds.fps, seqs, ds.cameras, ds.train_subjects,
                               ds.test_subjects)

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "nothing to prepare"


def test_finished_run_is_reused_only_while_its_data_are_the_same(tmp_path, monkeypatch, run_cli):
    monkeypatch.setitem(SHIFT, "mm", 0.0)
    cfg = resolve_config("mlp", options={**TINY, "data.name": "tiny-shifting"})
    first = train_run(cfg, out_dir=tmp_path / "runs", device="cpu")
    old_fp = json.loads((first.run_dir / "run.json").read_text())["dataset_fingerprint"]
    old_weights = (first.run_dir / CHECKPOINT).read_bytes()
    assert train_run(cfg, out_dir=tmp_path / "runs", device="cpu").skipped  # same data: reused

    monkeypatch.setitem(SHIFT, "mm", 3.0)  # another detector file / a re-prepared dataset
    code, _, err = run_cli("evaluate", first.run_dir, "--device", "cpu")
    _one_line(code, err, old_fp, "changed since it was trained", "retrain")
    code, out, err = run_cli("train", "mlp", "--data", "tiny-shifting", *TRAIN_ARGS[2:], "--out", tmp_path)
    assert code == 0, err
    assert "moved to" in " ".join(out.split())
    meta = json.loads((first.run_dir / "run.json").read_text())
    assert meta["state"] == "done" and meta["dataset_fingerprint"] != old_fp
    stale = tmp_path / "runs" / f"{first.run_dir.name}.stale-{old_fp}"
    assert meta["stale_run_moved_to"] == str(stale)
    assert (stale / CHECKPOINT).read_bytes() == old_weights  # the old run is kept, byte for byte
    assert json.loads((stale / "STALE.json").read_text())["new_fingerprint"] == meta["dataset_fingerprint"]
    assert train_run(cfg, out_dir=tmp_path / "runs", device="cpu").skipped  # the new data: reused again
    assert run_cli("evaluate", first.run_dir, "--device", "cpu")[0] == 0


# ------------------------------------------------------------------ item 11: options


def test_ray_only_options_with_the_local_executor_are_errors(run_cli, tmp_path):
    for args in (["--cpus-per-trial", "2"], ["--gpus-per-trial", "0"], ["--ray-address", "auto"]):
        code, out, err = run_cli("run", "ablation", "--out", tmp_path, *QUICK, *args)
        _one_line(code, err, args[0], "--executor ray only")
        assert out == "" and not any(tmp_path.iterdir())  # refused before any work
    code, _, err = run_cli("run", "ablation", "--executor", "ray", "--cpus-per-trial", "nan", "--out", tmp_path)
    _one_line(code, err, "--cpus-per-trial must be a finite number > 0")


@pytest.mark.parametrize("args,needle", [
    (["run", "ablation", "--executor", "slurm"], "--executor"),
    (["train", "mlp", "--device", "gpu"], "--device 'gpu' is not a device"),
    (["train", "mlp", "--device", "cuda:x"], "--device 'cuda:x' is not a device"),
    (["compare", "nonexistent.csv", "--metric", "jitter"], "Unknown metric"),
    (["compare", "nonexistent.csv", "--metric", "mpjp"], "Did you mean: mpjpe"),
    (["compare", "nonexistent.csv", "--paper", "hossain2019"], "Did you mean: hossain2018"),
])
def test_choices_are_checked_when_parsing(run_cli, args, needle):
    code, out, err = run_cli(*args)
    assert code == 2 and "Traceback" not in err and out == "", (code, out, err)
    assert needle in " ".join(err.replace("│", " ").split()), err


def test_executor_choices_are_the_registered_executors():
    from liftbench.cli.suite_cmd import ExecOpt
    from liftbench.executors import EXECUTORS

    assert typing.get_args(typing.get_args(ExecOpt)[0]) == tuple(EXECUTORS)


def test_metric_aliases_accepted():
    from liftbench.cli.model_cmd import _check_metric

    assert _check_metric("p2") == "p_mpjpe" and _check_metric("mpjpe") == "mpjpe"


def test_help_texts(run_cli):
    def helptext(*cmd):
        code, out, _ = run_cli(*cmd, "--help")
        assert code == 0
        return " ".join(out.replace("│", " ").split())

    assert "--install-completion" in helptext()  # shell completion is on
    noise = helptext("noise")
    assert "same suite as `liftbench run noise`" in noise
    assert "default_preset: smoke" in noise  # --preset shows its default
    assert "same as the `noise`, `seqlen` and `jitter` commands" in helptext("run")
    assert "Results root" in helptext("train") and "OUT/runs/" in helptext("train")
    assert "--results-dir" in helptext("evaluate") and "--out" not in helptext("evaluate")
    bench = helptext("bench")
    assert "--csv" in bench and "--out" not in bench


def test_bench_csv_checked_before_measuring(run_cli, tmp_path):
    code, out, err = run_cli("bench", "--csv", tmp_path)
    _one_line(code, err, f"--csv {tmp_path} is a directory")
    code, out, err = run_cli("bench", "--out", tmp_path / "x.csv")
    assert code == 2 and "--out" in err


def test_train_out_is_the_results_root_shared_with_suites(run_cli, tmp_path):
    """train --out means what a suite's --out means: the run directory is OUT/runs/<run_id>."""
    code, out, err = run_cli("train", "mlp", *TRAIN_ARGS, "--out", tmp_path)
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("mlp-") and (run_dir / CHECKPOINT).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
