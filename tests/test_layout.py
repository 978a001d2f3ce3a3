"""The package's import rules, read from the source with ``ast`` (every import, including those inside
functions and ``if TYPE_CHECKING`` blocks):

* nothing under ``liftbench/`` imports ``liftbench.cli`` (but ``__main__``, its ``python -m`` entry);
* ``models/`` and ``data/`` import no wing, nor ``train`` or ``pipeline``;
* the wings (``runner``, ``papers``, ``wild``, ``perf``, ``report``) do not import each other, except
  ``report`` -> ``papers``;
* the core and ``fast`` import no wing;
* ``liftbench/__init__.py`` imports nothing from the package;
* intra-package imports sit at the top of a module (outside ``cli/``, whose command bodies import
  lazily so ``liftbench --help`` stays fast);
* there is no import circle anywhere.

Also: ``import liftbench`` loads no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import liftbench

PACKAGE = Path(liftbench.__file__).parent
WINGS = ("runner", "papers", "wild", "perf", "report")
ALLOWED_WING_IMPORTS = {("report", "papers")}
UPPER_CORE = ("liftbench.train", "liftbench.pipeline")  # what models/ and data/ never import


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported liftbench module, at module top level, line) of every import in ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:  # ``from pkg import name``: the module that holds name
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name:
                found.append((target, id(node) in top, node.lineno))
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer(module: str) -> str:
    """'cli', a wing name, 'models', 'data', 'fast', 'init' or 'core'."""
    parts = module.split(".")
    if module == "liftbench":
        return "init"
    if module == "liftbench.__main__":  # ``python -m liftbench``: the command line's second entry point
        return "cli"
    return parts[1] if len(parts) > 2 or parts[1] in (*WINGS, "cli", "models", "data", "fast") else "core"


def violations() -> list[str]:
    out = []
    for module, deps in GRAPH.items():
        mine = layer(module)
        for target, at_top, line in deps:
            theirs = layer(target)
            where = f"{module}:{line} imports {target}"
            if mine == "init":
                out.append(f"{where}: __init__.py imports nothing from the package")
            elif theirs == "cli" and mine != "cli":
                out.append(f"{where}: nothing outside cli/ imports cli")
            elif mine in ("models", "data") and (theirs in WINGS or target in UPPER_CORE):
                out.append(f"{where}: models/ and data/ import no wing, train or pipeline")
            elif mine in ("core", "fast", "models", "data") and theirs in WINGS:
                out.append(f"{where}: the core imports no wing")
            elif mine in WINGS and theirs in WINGS and mine != theirs and (mine, theirs) not in ALLOWED_WING_IMPORTS:
                out.append(f"{where}: wings do not import each other (only report -> papers)")
            if not at_top and mine != "cli":
                out.append(f"{where}: intra-package imports go at the top of the module")
    return out


def cycles() -> list[list[str]]:
    edges = {m: {t for t, _, _ in deps} for m, deps in GRAPH.items()}
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_import_rules_hold():
    assert violations() == []


def test_no_import_circle():
    assert cycles() == []


def test_the_checker_sees_what_it_must_refuse(tmp_path, monkeypatch):
    """The rules catch a planted upward import, a lazy import and a circle (so the tests above can fail)."""
    graph = dict(GRAPH)
    graph["liftbench.models.base"] = [*GRAPH["liftbench.models.base"], ("liftbench.runner.suite", True, 1)]
    graph["liftbench.papers.claims"] = [*GRAPH["liftbench.papers.claims"], ("liftbench.wild.predict", False, 2)]
    graph["liftbench.errors"] = [("liftbench.registry", True, 3)]  # registry imports errors: a circle
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", graph)
    found = violations()
    assert any("liftbench.models.base:1" in v and "models/ and data/" in v for v in found)
    assert any("liftbench.papers.claims:2" in v and "wings do not import" in v for v in found)
    assert any("at the top" in v for v in found)
    assert any({"liftbench.errors", "liftbench.registry"} <= set(c) for c in cycles())


@pytest.mark.parametrize("module", ["liftbench", "liftbench.cli.app"])
def test_importing_loads_no_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
