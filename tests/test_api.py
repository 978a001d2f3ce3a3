"""The Python API mirrors the CLI: configure, train, evaluate, check, all without the shell."""

from __future__ import annotations

import pytest

import liftbench


def test_lazy_public_api_names():
    names = liftbench.list_lifters()
    assert {"mlp", "seq2seq"} <= set(names) and names == sorted(names)  # built-ins (and any newer ones), sorted
    assert liftbench.create_lifter("martinez").__class__.__name__ == "MLPLifter"
    assert callable(liftbench.metrics.mpjpe)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        liftbench.nosuch  # noqa: B018


def test_train_evaluate_check_from_python(tmp_path):
    cfg = liftbench.load_config("mlp", options={"data.name": "tiny", "train.epochs": 1},
                                overrides={"hidden_size": 16, "batch_size": 16})
    run = liftbench.train_run(cfg, out_dir=tmp_path, device="cpu")
    assert run.state.finished and (run.run_dir / "checkpoint.pt").is_file()
    res = liftbench.evaluate_run(run.run_dir, device="cpu")
    assert res.card["frames"]["test_scored"] == res.card["frames"]["test_expected"]
    results = run.run_dir / "results.csv"
    verdicts, code = liftbench.check_results(results, results)
    assert code == 0 and verdicts and all(v.verdict == "same" for v in verdicts)
    specs = liftbench.expand_suite("ablation", "smoke")
    assert [s.variant for s in specs][-1] == "mlp" and len(specs) == 7
