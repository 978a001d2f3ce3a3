"""The CLI end to end on the tiny dataset: train -> evaluate -> files, an independent re-scoring of
``predictions.npz``, and one clear line (exit 2, no traceback) for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# ---------------------------------------------------------------- independent metric definitions
# Written from the protocol definitions (reference_implementations.md §3.1, §3.5), not from
# liftbench.metrics: plain numpy loops over frames, SVD per frame.


def _mpjpe_frame(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.sqrt(((p - t) ** 2).sum(-1))))


def _procrustes_frame(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Similarity transform of p (17, 3) onto t, rotation without reflection, optimal scale."""
    mp, mt = p.mean(0), t.mean(0)
    p0, t0 = p - mp, t - mt
    u, s, vt = np.linalg.svd(t0.T @ p0)  # cross-covariance target^T pred
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt  # maps pred-centred onto target-centred: t0 ~ scale * p0 @ rot.T
    scale = (s * np.diag(fix)).sum() / (p0**2).sum()
    return scale * p0 @ rot.T + mt


def _rescore(npz: Path) -> dict[tuple[str, str], float]:
    z = np.load(npz, allow_pickle=False)
    pred, target = z["pred"].astype(np.float64), z["target"].astype(np.float64)
    groups = np.array([a.split(" ")[0] for a in z["action"]])
    p1 = np.array([_mpjpe_frame(pred[i], target[i]) for i in range(len(pred))])
    p2 = np.array([_mpjpe_frame(_procrustes_frame(pred[i], target[i]), target[i]) for i in range(len(pred))])
    out = {}
    for metric, values in (("mpjpe", p1), ("p_mpjpe", p2)):
        means = {g: values[groups == g].mean() for g in sorted(set(groups))}
        out.update({(metric, g): v for g, v in means.items()})
        out[(metric, "action_mean")] = float(np.mean(list(means.values())))
        out[(metric, "frame_mean")] = float(values.mean())
    return out


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """One tiny MLP and one tiny seq2seq trained through the CLI (module-scoped: trained once)."""
    from liftbench.cli import main

    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for model, extra in (("mlp", ["--set", "hidden_size=16"]),
                         ("seq2seq", ["--set", "hidden_size=12", "--set", "seq_len=4"])):
        code = main(["train", model, "--data", "tiny", "--epochs", "2", "--device", "cpu", "--out", str(out),
                     "--set", "batch_size=16", *extra])
        assert code == 0
        (run_dir,) = [d for d in (out / "runs").iterdir() if d.name.startswith(model + "-")]  # --out = results root
        runs[model] = run_dir
    return runs


@pytest.mark.parametrize("model", ["mlp", "seq2seq"])
def test_evaluate_writes_files_and_independent_rescoring_agrees(trained_runs, run_cli, model, tiny_dataset):
    run_dir = trained_runs[model]
    code, out, err = run_cli("evaluate", run_dir, "--save-predictions", "--device", "cpu")
    assert code == 0, err
    assert "Protocol #1" in out and "Protocol #2" in out
    for name in ("results.csv", "protocol.json", "predictions.npz"):
        assert (run_dir / name).is_file(), name
    card = json.loads((run_dir / "protocol.json").read_text())
    n_test = sum(s.n_frames for s in tiny_dataset.split("test"))
    assert card["frames"]["test_expected"] == card["frames"]["test_scored"] == n_test
    rows = pd.read_csv(run_dir / "results.csv")
    got = {(r.metric, r.slice): r.value for r in rows.itertuples()
           if r.metric in ("mpjpe", "p_mpjpe") and r.slice_type in ("action", "all") and r.slice != "video_mean"}
    expected = _rescore(run_dir / "predictions.npz")
    assert set(expected) <= set(got)
    for key, value in expected.items():
        assert abs(got[key] - value) < 0.01, (key, got[key], value)
    z = np.load(run_dir / "predictions.npz")
    assert len(z["frame"]) == n_test and z["pred"].shape == (n_test, 17, 3)
    assert np.all(z["pred"][:, 0] == 0) and np.all(z["target"][:, 0] == 0)  # root-relative


def test_noise_condition_rows_are_added_not_overwritten(trained_runs, run_cli):
    run_dir = trained_runs["mlp"]
    assert run_cli("evaluate", run_dir, "--device", "cpu")[0] == 0
    assert run_cli("evaluate", run_dir, "--noise-sigma", "10", "--device", "cpu")[0] == 0
    rows = pd.read_csv(run_dir / "results.csv")
    assert sorted(rows["test_noise"].unique()) == [0.0, 10.0]
    clean = rows[(rows.test_noise == 0) & (rows.metric == "mpjpe") & (rows.slice == "action_mean")].value.item()
    noisy = rows[(rows.test_noise == 10) & (rows.metric == "mpjpe") & (rows.slice == "action_mean")].value.item()
    assert noisy != clean


def test_training_again_skips(trained_runs, run_cli, tmp_path):
    out = trained_runs["mlp"].parent.parent
    code, stdout, _ = run_cli("train", "mlp", "--data", "tiny", "--epochs", "2", "--device", "cpu", "--out", out,
                              "--set", "batch_size=16", "--set", "hidden_size=16")
    assert code == 0 and "already complete" in stdout


def _one_clean_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, (code, err)
    text = " ".join(err.split())
    assert "Traceback" not in err
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("args,needles", [
    (["train", "seq2sq"], ["Unknown lifter 'seq2sq'", "Did you mean: seq2seq"]),
    (["train", "mlp", "--set", "hiden_size=3"], ["unknown key 'hiden_size'", "Valid keys"]),
    (["train", "mlp", "--set", "hidden_size=big"], ["hidden_size", "must be int"]),
    (["train", "mlp", "--set", "novalue"], ["--set expects key=value"]),
    (["train", "mlp", "--data", "nosuch"], ["Unknown dataset 'nosuch'", "Available"]),
    (["train", "mlp", "--device", "cuda:3"], ["--device cuda:3", "use --device cpu"]),
    (["train", "mlp", "--config", "/nonexistent/x.toml"], ["/nonexistent/x.toml", "does not exist"]),
    (["evaluate", "/nonexistent/run"], ["/nonexistent/run", "does not exist"]),
    (["evaluate", ".", "--noise-sigma", "-1"], ["--noise-sigma must be a finite number >= 0"]),
    (["data", "info", "nosuch"], ["Unknown dataset 'nosuch'"]),
    (["noise", "--sigma", "20..5"], ["--sigma"]),
    (["run", "nosuch-suite"], ["nosuch-suite"]),
    (["run", "ablation", "--pack", "0"], ["--pack must be >= 1"]),
    (["run", "ablation", "--seeds", "0"], ["--seeds must be"]),
])
def test_bad_input_is_one_line_exit_2(run_cli, args, needles):
    code, _, err = run_cli(*args)
    _one_clean_line(code, err, *needles)


def test_bad_toml_names_the_file(run_cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    code, _, err = run_cli("train", "mlp", "--config", bad)
    _one_clean_line(code, err, str(bad), "not valid TOML")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[training]\nepochs = 3\n")
    code, _, err = run_cli("train", "mlp", "--config", wrong)
    _one_clean_line(code, err, "unknown section(s) training")


def test_corrupt_checkpoint_is_refused(trained_runs, run_cli, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_runs["mlp"], broken)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli("evaluate", broken, "--device", "cpu")
    _one_clean_line(code, err, "checkpoint.pt")


def test_version_and_help(run_cli):
    from liftbench import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and __version__ in out
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("data", "models", "train", "evaluate", "run", "noise", "seqlen", "jitter", "status", "report",
                    "check", "bench", "baselines", "compare"):
        assert command in out, command
