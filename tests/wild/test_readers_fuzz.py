"""Fuzz every reader of user files besides ``.npz`` archives (issue 22 §3): keypoint files (COCO, AlphaPose,
OpenPose folders, MMPose, npz, npy, CSV) through ``liftbench predict``, prediction files through
``liftbench score`` and ``show``'s loader, run config TOML and suite TOML. Inputs are real-format files
generated here, mutated structurally (a value replaced by a hostile one: NaN, 1e308, 0.5, 2**63, a list,
text, deep nesting...) or byte by byte.

Each load runs in its own process, forked from a "zygote" that imported liftbench once (a fresh
interpreter per example would spend most of the time importing torch): the child runs under an
address-space limit (its size + 1 GiB) and a 30 s alarm, and reports its peak RSS growth. The outcome
must be success, or exit 2 (3: a coverage error of ``score``) with exactly one line on stderr naming the
file: never a traceback, a signal, a numpy warning line, or memory beyond 64 MB + 20 x the file's size.
About 80 examples, derandomised, so CI stays fast and reproducible.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures.mutation import mutate_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parents[1]
RSS_MARGIN_KB = 64 * 1024  # reading only (config, suite, show's loader)
COMMAND_MARGIN_KB = 192 * 1024  # a whole command: loading the run, the model, scoring (a fixed cost, not the file)
RSS_PER_FILE_BYTE = 20  # parsed JSON takes ~10 x its text in Python objects
SETTINGS = settings(derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# The zygote reads one JSON request per line, forks a child per request and answers with its wait status.
_ZYGOTE = r"""
import json, os, resource, signal, sys, traceback, warnings
import fixtures.tiny  # registers --data tiny
import torch
from liftbench.cli import main
# what liftbench.cli.main silences: numpy's floating-point warnings (any other warning fails the test)
_NUMPY_FP_WARNINGS = r"(overflow|invalid value|divide by zero|underflow) encountered|Mean of empty slice"
from liftbench.config import resolve_config
from liftbench.errors import LiftbenchError, one_line
from liftbench.suites import expand, load_suite
from liftbench.wild.show import load_clip
torch.set_num_threads(1)

def status_kb(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))

def library(fn):
    try:
        with warnings.catch_warnings():  # as liftbench.cli.main does
            warnings.filterwarnings("ignore", message=_NUMPY_FP_WARNINGS, category=RuntimeWarning)
            fn()
        print("OK")
        return 0
    except LiftbenchError as exc:
        print(one_line(exc), file=sys.stderr)
        return exc.exit_code

JOBS = {
    "cli": lambda req: main(req["argv"]),
    "config": lambda req: library(lambda: resolve_config("mlp", req["path"])),
    "suite": lambda req: library(lambda: expand(load_suite(req["path"]))),
    "show": lambda req: library(lambda: load_clip(req["path"])),
}

def child(req):
    for fd, name in ((1, "out"), (2, "err")):
        os.dup2(os.open(req[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    limit = status_kb("VmSize") * 1024 + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.alarm(30)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS, so the peak below is this child's own
    except OSError:
        pass
    base = status_kb("VmRSS")
    code = JOBS[req["job"]](req)
    with open(req["stats"], "w") as fh:
        fh.write(f"{base} {status_kb('VmHWM')}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            child(req)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status}), flush=True)
"""


class Zygote:
    def __init__(self, workdir: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]), "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1"}
        env.pop("LIFTBENCH_DEBUG", None)
        self.dir = workdir
        self.proc = subprocess.Popen([sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=workdir)

    def run(self, job: str, path: Path, argv: list[str] | None = None) -> tuple[int, str, str, int]:
        """(exit code or -signal, stdout, stderr, peak RSS growth in KB) of one load in a forked child."""
        names = {k: str(self.dir / f"child.{k}") for k in ("out", "err", "stats")}
        Path(names["stats"]).unlink(missing_ok=True)
        request = {"job": job, "path": str(path), "argv": [str(a) for a in argv or []], **names}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        status = json.loads(self.proc.stdout.readline())["status"]
        code = os.waitstatus_to_exitcode(status)
        stats = Path(names["stats"])
        base, peak = map(int, stats.read_text().split()) if stats.exists() else (0, 0)
        return code, Path(names["out"]).read_text(), Path(names["err"]).read_text(), peak - base

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    z = Zygote(tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny finished MLP run to lift keypoints with (trained in this process, not in the zygote)."""
    from liftbench.cli import main

    out = tmp_path_factory.mktemp("fuzzrun")
    assert main(["train", "mlp", "--data", "tiny", "--epochs", "1", "--device", "cpu", "--out", str(out),
                 "--set", "batch_size=32", "--set", "hidden_size=8"]) == 0
    (found,) = [d for d in out.rglob("mlp-*") if (d / "run.json").is_file()]
    return found


def check_outcome(result: tuple[int, str, str, int], path: Path, codes=(0, 2), margin_kb: int = RSS_MARGIN_KB) -> None:
    """Success, or one line naming the file; never a traceback, a warning line, a signal or runaway memory."""
    code, out, err, grew_kb = result
    context = f"rc={code}\nstdout={out[-1500:]}\nstderr={err[-3000:]}"
    assert code in codes, context  # 1: an uncaught exception; negative: a signal (the alarm: a hang)
    assert "Traceback" not in err and "Warning" not in err, context
    if code != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], context
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.iterdir())
    assert grew_kb <= margin_kb + RSS_PER_FILE_BYTE * size // 1024, context


# ------------------------------------------------------------------ mutations

def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [float("nan"), float("inf"), -float("inf"), -1, 0, 0.5, 1.5, 1e308, -1e308, 1e-300, 10**30, 2**63,
           2**63 - 1, -(2**63) - 1, True, None, "", "1000", "frame_99999999999999999999999", "x" * 300, [], {},
           [1], [[1, 2], [3]], {"a": 1}, [float("nan")] * 51, _deep(120), "\n\x1b[31mPASS"]
JSON_EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, len(HOSTILE) - 1), st.booleans()),
                      min_size=1, max_size=3)
BYTE_EDITS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "cut", "repeat"]),
                                st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)), min_size=1, max_size=3)


def _slots(doc) -> list[tuple[object, object]]:
    """Every (container, key or index) of a JSON document, iteratively, in a stable order."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for k in keys:
            out.append((node, k))
            if isinstance(node[k], (dict, list)):
                stack.append(node[k])
    return out


def mutate_json(doc, edits) -> object:
    """Replace (or delete) the values at chosen slots with hostile ones."""
    doc = json.loads(json.dumps(doc))
    for where, which, delete in edits:
        slots = _slots(doc)
        if not slots:
            return HOSTILE[which]
        node, key = slots[where % len(slots)]
        if delete and isinstance(node, dict):
            del node[key]
        else:
            node[key] = HOSTILE[which]
    return doc




# ------------------------------------------------------------------ real-format keypoint files

RNG = np.random.default_rng(11)


def _flat(n_points: int) -> list[float]:
    xy = RNG.uniform(200, 800, size=(n_points, 2)).round(1)
    return np.concatenate([xy, RNG.uniform(0.5, 1, (n_points, 1)).round(2)], axis=1).reshape(-1).tolist()


def _json_docs() -> dict[str, object]:
    frames = range(6)
    return {
        "coco": [{"image_id": f, "category_id": 1, "keypoints": _flat(17), "score": 0.9} for f in frames],
        "coco_dataset": {"images": [{"id": f, "width": 1000, "height": 1000, "file_name": f"{f:06d}.jpg"}
                                    for f in frames],
                         "annotations": [{"image_id": f, "keypoints": _flat(17), "id": f} for f in frames]},
        "halpe": [{"image_id": f"{f}.jpg", "category_id": 1, "keypoints": _flat(26), "score": 2.5, "idx": [0.0]}
                  for f in frames],
        "mmpose": [{"frame_id": f, "instances": [{"keypoints": RNG.uniform(200, 800, (17, 2)).round(1).tolist(),
                                                  "keypoint_scores": [0.9] * 17}]} for f in frames],
    }


JSON_DOCS = _json_docs()
OPENPOSE_FRAME = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": _flat(25)}]}
SIZE_ARGS = ["--width", "1000", "--height", "1000"]


@settings(SETTINGS, max_examples=12)
@given(kind=st.sampled_from(sorted(JSON_DOCS)), edits=JSON_EDITS)
def test_mutated_detector_json(zygote, run_dir, tmp_path, kind, edits):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(mutate_json(JSON_DOCS[kind], edits)))
    out = tmp_path / "out.npz"
    size = [] if kind == "coco_dataset" else SIZE_ARGS
    check_outcome(zygote.run("cli", path, ["predict", run_dir, path, "--out", out, *size]), path,
                  margin_kb=COMMAND_MARGIN_KB)


@settings(SETTINGS, max_examples=6)
@given(kind=st.sampled_from(sorted(JSON_DOCS)), edits=BYTE_EDITS)
def test_detector_json_with_byte_mutations(zygote, run_dir, tmp_path, kind, edits):
    path = tmp_path / "in.json"
    path.write_bytes(mutate_bytes(json.dumps(JSON_DOCS[kind]).encode(), edits))
    result = zygote.run("cli", path, ["predict", run_dir, path, "--out", tmp_path / "o.npz", *SIZE_ARGS])
    check_outcome(result, path, margin_kb=COMMAND_MARGIN_KB)


@settings(SETTINGS, max_examples=6)
@given(edits=JSON_EDITS, victim=st.integers(0, 3),
       name=st.sampled_from(["frame_{:012d}", "{}", "x", "99999999999999999999{}"]))
def test_mutated_openpose_folders(zygote, run_dir, tmp_path, edits, victim, name):
    folder = tmp_path / "openpose"
    shutil.rmtree(folder, ignore_errors=True)  # tmp_path is shared by the examples of one test
    folder.mkdir()
    for f in range(4):
        doc = mutate_json(OPENPOSE_FRAME, edits) if f == victim else OPENPOSE_FRAME
        (folder / f"{name.format(f)}_keypoints.json").write_text(json.dumps(doc))
    check_outcome(zygote.run("cli", folder, ["predict", run_dir, folder, "--format", "openpose", "--out",
                                             tmp_path / "o.npz", *SIZE_ARGS]), folder,
                  margin_kb=COMMAND_MARGIN_KB)


HOSTILE_ARRAYS = [np.array(np.nan), np.array(-5.0), np.array(1e-300), np.array("1000"), np.array([1.0, 2.0]),
                  np.ones((3, 4)), np.array([0.5, 1.5]), np.full((6, 17, 2), 1e308), np.full((6, 17, 2), 3e38),
                  np.zeros((0, 17, 2)), np.array([True]), np.arange(6) * 2.0**62, np.array(["coco17", "x"]),
                  np.zeros((6, 17, 5)), np.zeros((2, 6, 17, 3)), np.array(2**63 - 1, dtype=np.uint64)]
NPZ_KEYS = ["keypoints", "width", "height", "scores", "frames", "layout"]


@settings(SETTINGS, max_examples=10)
@given(replace=st.lists(st.tuples(st.sampled_from(NPZ_KEYS), st.integers(0, len(HOSTILE_ARRAYS) - 1)),
                        min_size=1, max_size=2), as_npy=st.booleans(), byte_edits=st.one_of(st.none(), BYTE_EDITS))
def test_mutated_keypoint_arrays(zygote, run_dir, tmp_path, replace, as_npy, byte_edits):
    arrays = {"keypoints": RNG.uniform(200, 800, (6, 17, 2)), "width": np.array(1000.0), "height": np.array(1000.0),
              "scores": np.ones((6, 17)), "frames": np.arange(6)}
    for key, which in replace:
        arrays[key] = HOSTILE_ARRAYS[which]
    buf = io.BytesIO()
    if as_npy:
        np.save(buf, arrays["keypoints"])
    else:
        np.savez(buf, **arrays)
    path = tmp_path / ("k.npy" if as_npy else "k.npz")
    path.write_bytes(mutate_bytes(buf.getvalue(), byte_edits) if byte_edits else buf.getvalue())
    result = zygote.run("cli", path, ["predict", run_dir, path, "--out", tmp_path / "o.npz", *SIZE_ARGS])
    check_outcome(result, path, margin_kb=COMMAND_MARGIN_KB)


CSV_CELLS = ["nan", "inf", "1e308", "-1e308", "", "x", "1,5", "\ufeff1", "1" * 400, '"', "0x10", "1e-300"]


@settings(SETTINGS, max_examples=6)
@given(cells=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 33), st.integers(0, len(CSV_CELLS) - 1)),
                      max_size=3), bom=st.booleans(), header=st.booleans(), byte_edits=st.one_of(st.none(), BYTE_EDITS))
def test_mutated_csv(zygote, run_dir, tmp_path, cells, bom, header, byte_edits):
    table = [[f"{v:.1f}" for v in RNG.uniform(200, 800, 34)] for _ in range(6)]
    for row, col, which in cells:
        table[row][col] = CSV_CELLS[which]
    lines = ([",".join(f"{a}{j}" for j in range(17) for a in "xy")] if header else []) + [",".join(r) for r in table]
    data = ("\ufeff" if bom else "").encode() + "\n".join(lines).encode() + b"\n"
    path = tmp_path / "k.csv"
    path.write_bytes(mutate_bytes(data, byte_edits) if byte_edits else data)
    result = zygote.run("cli", path, ["predict", run_dir, path, "--out", tmp_path / "o.npz", *SIZE_ARGS])
    check_outcome(result, path, margin_kb=COMMAND_MARGIN_KB)


# ------------------------------------------------------------------ prediction files (score, show)

def _tiny_predictions() -> dict[str, np.ndarray]:
    """Predictions covering the tiny dataset's test split (S9, 4 actions x 2 cameras)."""
    from fixtures.tiny import make_tiny_dataset

    test = make_tiny_dataset().split("test")
    rows = [(s.subject, s.action, s.camera, f) for s in test for f in range(s.n_frames)]
    poses = np.concatenate([s.joints_3d for s in test]).astype(np.float32)
    return {"subject": np.array([r[0] for r in rows]), "action": np.array([r[1] for r in rows]),
            "camera": np.array([r[2] for r in rows], np.int64), "frame": np.array([r[3] for r in rows], np.int64),
            "pred": poses, "target": poses}


PRED_KEYS = ["subject", "action", "camera", "frame", "pred", "target"]
HOSTILE_MEMBERS = HOSTILE_ARRAYS + [np.array(["S9"]), np.full((3, 17, 3), 1e300), np.array(3)]


def _write_npz(path: Path, arrays: dict, byte_edits) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(mutate_bytes(buf.getvalue(), byte_edits) if byte_edits else buf.getvalue())
    return path


@settings(SETTINGS, max_examples=10)
@given(replace=st.lists(st.tuples(st.sampled_from(PRED_KEYS), st.integers(0, len(HOSTILE_MEMBERS) - 1)), max_size=2),
       byte_edits=st.one_of(st.none(), BYTE_EDITS), drop=st.one_of(st.none(), st.sampled_from(PRED_KEYS)))
def test_mutated_prediction_files_for_score(zygote, tmp_path, replace, byte_edits, drop):
    arrays = _tiny_predictions()
    for key, which in replace:
        arrays[key] = HOSTILE_MEMBERS[which]
    arrays.pop(drop, None)
    path = _write_npz(tmp_path / "p.npz", arrays, byte_edits)
    result = zygote.run("cli", path, ["score", path, "--data", "tiny", "--units", "mm", "--out", tmp_path / "s"])
    check_outcome(result, path, codes=(0, 2, 3), margin_kb=COMMAND_MARGIN_KB)


PREDICT_OUTPUT_KEYS = ["poses_3d", "keypoints_2d", "frames", "filled", "meta"]


@settings(SETTINGS, max_examples=8)
@given(replace=st.lists(st.tuples(st.sampled_from(PREDICT_OUTPUT_KEYS + PRED_KEYS),
                                  st.integers(0, len(HOSTILE_MEMBERS) - 1)), min_size=1, max_size=2),
       which=st.booleans(), byte_edits=st.one_of(st.none(), BYTE_EDITS))
def test_mutated_files_for_show(zygote, tmp_path, replace, which, byte_edits):
    n = 6
    arrays = ({"poses_3d": RNG.normal(size=(n, 17, 3)) * 300, "keypoints_2d": RNG.uniform(0, 999, (n, 17, 2)),
               "frames": np.arange(n), "filled": np.zeros((n, 17), bool), "meta": np.array(json.dumps({"fps": 50}))}
              if which else _tiny_predictions())
    for key, k in replace:
        arrays[key] = HOSTILE_MEMBERS[k]
    path = _write_npz(tmp_path / "p.npz", arrays, byte_edits)
    check_outcome(zygote.run("show", path), path)


# ------------------------------------------------------------------ config and suite TOML

CONFIG = """[model]
name = "mlp"
hidden_size = 8
dropout = 0.5

[train]
epochs = 1
lr = 0.001
batch_size = 16
seed = 3

[data]
name = "tiny"
subset = 1.0
train_subjects = ["S1", "S5"]
"""
SUITE = """name = "fuzz"
version = 1
description = "a small suite"
test_noise = [0.0, 5.0]

[[variants]]
name = "base"
model = "mlp"
params = { hidden_size = 8 }

[[variants]]
name = "no_dropout"
model = "mlp"
params = { hidden_size = 8, dropout = 0.0 }
train = { lr = 0.002 }

[axis]
key = "train.seed"
values = [0, 1]

[presets.smoke.all.train]
epochs = 1
[presets.smoke.all.data]
name = "tiny"
"""
TOML_VALUES = ["nan", "inf", "-inf", "1e400", "9" * 400, "-" + "9" * 30, '"text"', "[1, 2]", "{ a = 1 }",
               "[" * 200 + "]" * 200, "true", "-1", "0", '"../../x"', '"a\\nb"', '"' + "x" * 5000 + '"', "0.5",
               '"\\u001b[31mPASS"', "[[1], [2, [3]]]", "1979-05-27T07:32:00Z"]


def mutate_toml(text: str, edits, byte_edits) -> bytes:
    lines = text.splitlines()
    for where, which in edits:
        assignments = [i for i, line in enumerate(lines) if "=" in line]
        i = assignments[where % len(assignments)]
        lines[i] = lines[i].split("=", 1)[0] + "= " + TOML_VALUES[which]
    data = ("\n".join(lines) + "\n").encode()
    return mutate_bytes(data, byte_edits) if byte_edits else data


TOML_EDITS = st.lists(st.tuples(st.integers(0, 100), st.integers(0, len(TOML_VALUES) - 1)), min_size=1, max_size=3)


@settings(SETTINGS, max_examples=12)
@given(edits=TOML_EDITS, byte_edits=st.one_of(st.none(), BYTE_EDITS))
def test_mutated_config_toml(zygote, tmp_path, edits, byte_edits):
    path = tmp_path / "run.toml"
    path.write_bytes(mutate_toml(CONFIG, edits, byte_edits))
    check_outcome(zygote.run("config", path), path)


@settings(SETTINGS, max_examples=12)
@given(edits=TOML_EDITS, byte_edits=st.one_of(st.none(), BYTE_EDITS))
def test_mutated_suite_toml(zygote, tmp_path, edits, byte_edits):
    path = tmp_path / "suite.toml"
    path.write_bytes(mutate_toml(SUITE, edits, byte_edits))
    check_outcome(zygote.run("suite", path), path)


def test_unmutated_inputs_succeed(zygote, run_dir, tmp_path):
    """The generators start from valid files: each loads (so the mutations above start from real formats)."""
    for kind, doc in JSON_DOCS.items():
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(doc))
        size = [] if kind == "coco_dataset" else SIZE_ARGS
        result = zygote.run("cli", path, ["predict", run_dir, path, "--out", tmp_path / f"{kind}.npz", *size])
        assert result[0] == 0, (kind, result)
    preds = _write_npz(tmp_path / "p.npz", _tiny_predictions(), None)
    assert zygote.run("cli", preds, ["score", preds, "--data", "tiny", "--out", tmp_path / "s"])[0] == 0
    assert zygote.run("show", preds)[:2] == (0, "OK\n")
    for job, text in (("config", CONFIG), ("suite", SUITE)):
        (tmp_path / f"{job}.toml").write_text(text)
        assert zygote.run(job, tmp_path / f"{job}.toml")[:2] == (0, "OK\n"), job
    with zipfile.ZipFile(preds) as z:
        assert sorted(n[:-4] for n in z.namelist()) == sorted(PRED_KEYS)
