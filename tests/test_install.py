"""A non-editable install carries the shipped baselines and configs inside the package (issue 15, item 9).

Builds the wheel from a copy of the source tree (the repository itself stays untouched), checks that its
file list holds every file of ``baselines/`` and ``configs/`` under ``liftbench/_shipped/``, installs it
into a fresh directory and runs the commands that need those files from outside the repository.
The CI stage in ``.ci/run`` does the same with a fresh virtual environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _repo_files(top: str) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / top).rglob("*")
            if p.is_file()
            and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(ROOT).parts)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "liftbench-src"

    def skip(directory: str, names: list[str]) -> set[str]:  # the checkout minus VCS, envs, outputs, caches
        top = Path(directory).resolve() == ROOT
        return {n for n in names
                if n.startswith(".") or n in ("__pycache__", "_shipped") or n.endswith((".pyc", ".egg-info"))
                or (top and n in ("results", "build", "dist", "tests", "venv"))}

    shutil.copytree(ROOT, src, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    # offline with this environment's setuptools when it can build wheels, else pip's isolated build env
    isolation = ["--no-build-isolation"] if _local_setuptools_builds_wheels() else []
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                           "--disable-pip-version-check", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("liftbench-*.whl")
    return whl


def _local_setuptools_builds_wheels() -> bool:
    """setuptools >= 70.1 builds wheels itself; pyproject.toml asks for >= 68 (+ wheel before 70.1)."""
    try:
        import setuptools
        import setuptools.command.bdist_wheel  # noqa: F401
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


@pytest.mark.slow
def test_wheel_holds_every_baseline_and_config_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("baselines", "configs"):
        expected = {f"liftbench/_shipped/{rel}" for rel in _repo_files(top)}
        assert expected and expected <= names, sorted(expected - names)
        assert {n for n in names if n.startswith(f"liftbench/_shipped/{top}/")} == expected  # nothing stale
    for must in ("liftbench/_shipped/baselines/reference/results.csv",
                 "liftbench/_shipped/baselines/reference/results.toml",
                 "liftbench/_shipped/configs/suites/ablation.toml", "liftbench/_shipped/configs/suites/reference.toml"):
        assert must in names
    assert not any(".data/data/share" in n for n in names)  # the old sys.prefix data-files mechanism is gone


@pytest.mark.slow
def test_installed_wheel_finds_baselines_suites_and_reference_outside_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFTBENCH_")}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS="1")
    reference = target / "liftbench" / "_shipped" / "baselines" / "reference" / "results.csv"
    script = f"""
import liftbench, pathlib, sys
from liftbench import resources
from liftbench.cli import main
assert pathlib.Path(liftbench.__file__).resolve().is_relative_to(pathlib.Path({str(target)!r}).resolve()), \
liftbench.__file__
assert not resources.from_source_tree()
codes = [main(["baselines"]), main(["run", "--list"]), main(["compare", {str(reference)!r}, "--paper", "hossain2018"]),
         main(["check", {str(reference)!r}, "--show", "changed"])]
from liftbench.suites import expand, load_suite
assert len(expand(load_suite("reference"), "ci")) == 2
print("CODES", codes)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CODES [0, 0, 0, 0]" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "hossain2018" in out and "ablation" in out and "PASS" in out
    assert str(ROOT) not in out.replace("\n", "")  # nothing was read from the checkout
