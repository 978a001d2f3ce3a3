"""A third-party lifter, installed the way a user's package is (an entry point in ``liftbench.models``),
goes through every command without touching shared code: it has no ``hidden_size``, no dropout, reads
all 17 joints with a centred 3-frame window and predicts the root too."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pandas as pd
import pytest

from liftbench.models import LIFTERS

PLUGIN = textwrap.dedent('''
    """Toy plug-in lifter (tests only): a linear map from a centred 3-frame window to one 3D pose."""
    from dataclasses import dataclass

    import torch
    from torch import nn

    from liftbench.data.normalize import Representation
    from liftbench.data.windows import WindowSpec
    from liftbench.models.base import LIFTERS, Contract, Lifter


    @LIFTERS.register("toyplug")
    class ToyPlugLifter(Lifter):
        @dataclass(frozen=True)
        class Config:
            width: int = 16

        train_defaults = {"lr": 1e-3, "batch_size": 32, "epochs": 2}
        toggles = ("width",)

        @classmethod
        def contract_for(cls, config):
            return Contract(representation=Representation("h36m17", "zscore", "all17", "zscore"),
                            window=WindowSpec(3, "centred", "padded", "aligned"), label="Toy plug-in")

        def __init__(self, config=None):
            super().__init__(config or self.Config())
            self.net = nn.Sequential(nn.Linear(3 * 34, self.config.width), nn.ReLU(), nn.Linear(self.config.width, 51))

        def forward(self, x):  # (B, 3, 34) -> (B, 1, 51)
            return self.net(x.reshape(x.shape[0], -1)).unsqueeze(1)
''')


@pytest.fixture
def plugin_installed(tmp_path, monkeypatch):
    """Install ``toyplug`` as a distribution with an entry point (importlib.metadata finds it on sys.path)."""
    site = tmp_path / "site"
    (site / "toyplug_pkg").mkdir(parents=True)
    (site / "toyplug_pkg" / "__init__.py").write_text("")
    (site / "toyplug_pkg" / "lifter.py").write_text(PLUGIN)
    info = site / "toyplug_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[liftbench.models]\ntoyplug = toyplug_pkg.lifter\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setattr(LIFTERS, "_plugins_loaded", False)  # let the registry look at entry points again
    yield site
    LIFTERS._entries.pop("toyplug", None)
    sys.modules.pop("toyplug_pkg.lifter", None)
    sys.modules.pop("toyplug_pkg", None)


def test_plugin_is_discovered_through_its_entry_point(plugin_installed, run_cli):
    assert "toyplug" not in LIFTERS._entries
    code, out, _ = run_cli("models", "--json")
    assert code == 0 and '"toyplug"' in out
    contract = LIFTERS.get("toyplug").contract_for(LIFTERS.get("toyplug").Config())
    assert contract.window.alignment == "centred" and contract.representation.input_dim == 34


def test_plugin_trains_evaluates_and_runs_a_suite(plugin_installed, run_cli, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "toyplug", "--data", "tiny", "--out", runs, "--device", "cpu")
    assert code == 0, err
    run_dir = next(runs.rglob("run.json")).parent
    code, out, err = run_cli("evaluate", run_dir, "--device", "cpu")
    assert code == 0, err
    rows = pd.read_csv(run_dir / "results.csv")
    ok = rows[(rows.metric == "mpjpe") & (rows.slice == "action_mean")]
    assert len(ok) == 1 and ok["alignment"].iloc[0] == "centred" and ok["seq_len"].iloc[0] == 3
    assert ok["n_frames"].iloc[0] == ok["n_frames_expected"].iloc[0]  # every test frame exactly once

    suite = tmp_path / "toy_suite.toml"
    suite.write_text(textwrap.dedent('''
        name = "toysuite"
        version = 1
        description = "plug-in lifter beside the built-in MLP"
        default_preset = "tiny"
        test_noise = [0.0]
        [[variants]]
        name = "toy"
        model = "toyplug"
        [[variants]]
        name = "toy-wide"
        model = "toyplug"
        params = { width = 24 }
        [presets.tiny.all.train]
        epochs = 1
        [presets.tiny.all.data]
        name = "tiny"
    '''))
    out_dir = tmp_path / "suite-out"
    code, out, err = run_cli("run", suite, "--out", out_dir, "--device", "cpu")
    assert code == 0, err
    results = next(p for p in out_dir.rglob("results.csv") if "runs" not in p.parts)  # the suite's merged file
    rows = pd.read_csv(results)
    assert set(rows["variant"]) == {"toy", "toy-wide"} and (rows["status"] == "ok").all()
    code, out, err = run_cli("report", results.parent)
    assert code == 0, err


def test_plugin_is_benchmarked_like_a_built_in(plugin_installed, run_cli, tmp_path):
    """`liftbench bench --model toyplug` measures its readable path against the production path (the
    trainer's own step and the evaluator), with FLOP fields left empty where the lifter declares none."""
    csv = tmp_path / "bench.csv"
    code, out, err = run_cli("bench", "--model", "toyplug", "--reps", "1", "--batch", "8", "--eval-batch", "64",
                             "--device", "cpu", "--csv", csv)
    assert code == 0, err
    rows = pd.read_csv(csv)
    assert set(rows["model"]) == {"toyplug"} and set(rows["path"]) == {"plain", "production"}
    assert (rows["train_median_ms"] > 0).all() and (rows["eval_frames_per_s"] > 0).all()
