"""Build hook: copy the repository's ``baselines/`` and ``configs/`` into the wheel as
``liftbench/_shipped/`` so an installed (non-editable) liftbench finds them with importlib.resources
(see liftbench/resources.py). All project metadata lives in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED_DIRS = ("baselines", "configs")  # liftbench.resources.SHIPPED_DIRS (not importable at build time)


def _shipped_files() -> list[Path]:
    """Every regular, non-hidden file under the shipped directories, relative to the repository."""
    files = []
    for top in SHIPPED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                files.append(rel)
    return files


class BuildPyWithShipped(build_py):
    """build_py, then a fresh copy of the shipped directories into ``<build_lib>/liftbench/_shipped``.
    An editable install skips the copy: it reads the repository directories themselves."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "liftbench" / "_shipped"
        shutil.rmtree(target, ignore_errors=True)  # a stale build/ must not keep deleted files
        for rel in _shipped_files():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, dest)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        target = Path(self.build_lib) / "liftbench" / "_shipped"
        return outputs + [str(target / rel) for rel in _shipped_files()]


setup(cmdclass={"build_py": BuildPyWithShipped})
