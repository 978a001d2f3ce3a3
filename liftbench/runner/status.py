"""Suite status from run directories alone (no coordinator needed, so it works during a run)."""

from __future__ import annotations

from pathlib import Path

from liftbench.errors import DataError
from liftbench.locks import describe_owner, lock_age_s, read_lock
from liftbench.runner.manifest import read_manifest
from liftbench.runner.trial import ERROR_FILE, trial_status
from liftbench.suites import RunSpec


def _specs_from_manifest(path: Path) -> tuple[str, Path, list[RunSpec]]:
    """Title, suite directory and trials of a manifest (malformed: one-line ``DataError`` naming it)."""
    manifest, specs = read_manifest(path)
    title = f"{manifest.get('suite') or path.parent.name} ({manifest.get('preset', '')}) — {path.parent}"
    return title, path.parent, specs


def trial_note(run_dir: Path, state: str) -> str:
    """Where a running trial runs (host, pid) or why a failed one failed (its one-line reason)."""
    try:
        if state == "running":
            age = lock_age_s(run_dir)
            beat = "" if age is None else f", lock refreshed {age:.0f} s ago"
            return f"{describe_owner(read_lock(run_dir))}{beat}"
        if state == "failed":
            return (run_dir / ERROR_FILE).read_text().strip()
    except (OSError, ValueError):
        pass  # the trial just finished or started: the state is still right
    return ""


def suite_status(directory: str | Path) -> list[tuple[str, list[dict]]]:
    """Per suite manifest under ``directory``: (title, one row per trial with its state and a note)."""
    directory = Path(directory)
    manifests = ([directory / "manifest.json"] if (directory / "manifest.json").exists()
                 else sorted(directory.glob("*/manifest.json")))
    if not manifests:
        raise DataError(f"No suite manifest in {directory}: pass a suite directory (results/<suite>-<preset>-<data>) "
                        "or the results root after running a suite.")
    out = []
    for m in manifests:
        title, suite_dir, specs = _specs_from_manifest(m)
        root = suite_dir.parent
        rows = []
        for s in specs:
            state = trial_status(s, root)
            rows.append({"run_id": s.run_id, "variant": s.variant, "seed": s.seed,
                         "axis": f"{s.axis_key.split('.')[-1]}={s.axis_value}" if s.axis_key else "",
                         "state": state, "note": trial_note(root / "runs" / s.run_id, state)})
        out.append((title, rows))
    return out
