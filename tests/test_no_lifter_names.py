"""No code outside the model files asks for a built-in lifter by name (issue 16 §1, §3).

Shared code (trainer, evaluator, packing, bench, report, CLI, ...) must ask the registry and the
lifter's contract / speed path instead, so a plug-in lifter gets every command without touching it.
Allowed: ``liftbench/models/`` (where lifters register their names) and the shipped configs (TOML, not
scanned). ``liftbench/fast/`` is scanned too: its per-lifter modules import their model CLASS, never a
name string. Docstrings and comments may mention lifters; only string constants that ARE a name or
alias (what code would compare against or pass to ``create_lifter``) are flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import liftbench
from liftbench.models import LIFTERS

PACKAGE = Path(liftbench.__file__).parent
ALLOWED = (PACKAGE / "models",)


def builtin_names() -> set[str]:
    """Every name and alias of the lifters liftbench itself registers (plug-ins excluded)."""
    return {name for name in LIFTERS.names(include_aliases=True)
            if LIFTERS.get(name).__module__.startswith("liftbench.models.")}


def quoted_names(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every string constant equal to one of ``names`` (case-insensitive)."""
    tree = ast.parse(source)
    lowered = {n.lower() for n in names}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in lowered]


def test_the_scanner_finds_names_and_ignores_prose():
    names = {"mlp", "hossain"}
    src = 'x = "mlp"\nif m == \'Hossain\': pass\n"""The mlp and hossain lifters."""\n# "mlp"\ny = "mlp2"\n'
    assert quoted_names(src, names) == [(1, "mlp"), (2, "Hossain")]


def test_builtin_names_include_aliases():
    names = builtin_names()
    canonical = {n for n in LIFTERS.names() if LIFTERS.get(n).__module__.startswith("liftbench.models.")}
    assert canonical and canonical < names  # names and (at least one) alias


def test_no_builtin_lifter_name_outside_the_model_files():
    names = builtin_names()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path.is_relative_to(a) for a in ALLOWED):
            continue
        for line, name in quoted_names(path.read_text(encoding="utf-8"), names):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}")
    assert not offenders, "built-in lifter names outside liftbench/models/ (ask the registry):\n" + "\n".join(offenders)
