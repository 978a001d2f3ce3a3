"""Shared fixtures. Test data built in code lives in ``tests/fixtures/`` (``fixtures.tiny`` registers the
'tiny' dataset on import, which this file does for every test process)."""

from __future__ import annotations

import pytest
from fixtures.tiny import make_tiny_dataset

from liftbench.data import PoseDataset


@pytest.fixture
def tiny_dataset() -> PoseDataset:
    return make_tiny_dataset()


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from liftbench.cli import main

    def _run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
