"""Datasets registered by test code, not by liftbench: workers must import this module to know them.

``exploding`` fails inside the trial with an exception that is not a ``LiftbenchError`` (a stand-in
for a bug), so the executors' "any exception becomes one error line" path is exercised in a worker;
``crashing`` kills the worker process itself (a stand-in for the out-of-memory killer).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from liftbench.data import DATASETS, DatasetSource, PoseDataset

if "exploding" not in DATASETS:
    @DATASETS.register("exploding")
    class ExplodingSource(DatasetSource):
        name = "exploding"
        description = "raises ZeroDivisionError on load (tests only)"

        def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
            return 1 // 0  # a bug, not a user error

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "exploding: nothing to prepare"


if "crashing" not in DATASETS:
    @DATASETS.register("crashing")
    class CrashingSource(DatasetSource):
        name = "crashing"
        description = "kills its own process on load (tests only)"

        def load(self, data_dir: Path | None, keypoints: str) -> PoseDataset:
            os.kill(os.getpid(), signal.SIGKILL)

        def verify(self, data_dir, keypoints):
            return []

        def prepare(self, data_dir, force=False):
            return "crashing: nothing to prepare"
