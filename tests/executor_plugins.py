"""A dataset registered by test code, not by liftbench: workers must import this module to know it.

``exploding`` fails inside the trial with an exception that is not a ``LiftbenchError`` (a stand-in
for a bug), so the executors' "any exception becomes one error line" path is exercised in a worker.
"""

from __future__ import annotations

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
