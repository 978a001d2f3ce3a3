"""Every ``liftbench ...`` command shown in README.md and docs/*.md runs as written (issue 21 §4).

The fenced shell blocks (```bash, ```sh, ```shell, ```console or a plain ```) of every page are parsed; each
line (after an optional ``$ `` prompt, ``\\`` continuations joined) is split at ``&&``, ``||``, ``;`` and ``|``,
and every piece that starts with ``liftbench`` (after optional ``VAR=value`` words) is checked: its command
path must exist (``liftbench <path> --help`` exits 0, run in-process through ``liftbench.cli.main``) and every
option it uses (``--foo``, ``--foo=value``, ``-k``) must appear in that command's help text, so a renamed or
removed command or option fails here. The docs' relative links must point at existing pages and headings, and
docs/results.md must describe every ``results.csv`` column.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from liftbench.cli import app, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["concepts", "cli", "configuration", "data", "lifters", "real-world", "protocol", "results", "scale-out",
         "performance", "development"]  # the docs/ pages issue 21 §4 asks for
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
REDIRECT = re.compile(r"^\d?[<>]{1,2}")  # >, >>, 2>, 2>&1, < ... (the rest of the piece is not liftbench's)


@dataclass(frozen=True)
class DocCommand:
    source: str  # "<file>:<line>" of the command's first line
    argv: tuple[str, ...]  # the words after "liftbench"

    def __str__(self) -> str:
        return f"{self.source}: liftbench {shlex.join(self.argv)}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the first line, lines) of every fenced block whose info string is a shell or empty."""
    blocks: list[tuple[int, list[str]]] = []
    fence: str | None = None
    keep = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if match:
                fence, keep = match.group(1), match.group(2).lower() in SHELL_FENCES
                if keep:
                    blocks.append((number + 1, []))
        elif stripped.startswith(fence) and not stripped[len(fence):].strip():
            fence = None
        elif keep:
            blocks[-1][1].append(line)
    return blocks


def logical_lines(lines: list[str], first: int) -> list[tuple[int, str]]:
    """Join ``\\`` continuations and drop ``$ `` prompts; (line number, text) per logical line."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if pending is None:
            line = line[2:] if line.startswith("$ ") else line
            pending = (first + offset, "")
        text = pending[1] + " " + line if pending[1] else line
        if text.endswith("\\"):
            pending = (pending[0], text[:-1].rstrip())
            continue
        out.append((pending[0], text))
        pending = None
    if pending is not None:
        out.append(pending)
    return out


def commands_in(text: str, name: str) -> list[DocCommand]:
    found: list[DocCommand] = []
    for first, lines in shell_blocks(text):
        for number, line in logical_lines(lines, first):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:  # an unbalanced quote in a shell block is a docs bug too
                raise AssertionError(f"{name}:{number}: cannot parse {line!r}: {exc}") from exc
            piece: list[str] = []
            for word in [*words, ";"]:
                if word not in SEPARATORS:
                    piece.append(word)
                    continue
                while piece and ENV_ASSIGNMENT.match(piece[0]):  # OMP_NUM_THREADS=2 liftbench ...
                    piece.pop(0)
                if piece and piece[0] == "liftbench":
                    cut = next((i for i, w in enumerate(piece) if REDIRECT.match(w)), len(piece))
                    found.append(DocCommand(f"{name}:{number}", tuple(piece[1:cut])))
                piece = []
    return found


def documented_commands() -> list[DocCommand]:
    return [cmd for path in doc_files() for cmd in commands_in(path.read_text(), path.relative_to(ROOT).as_posix())]


@functools.cache
def _command_tree():
    """The click command tree behind the Typer app (built once: it takes ~0.15 s)."""
    return typer.main.get_command(app)


_HELP: dict[tuple[str, ...], tuple[int, str]] = {}  # command path -> (exit code, help text): rendered once


def _help(path: list[str], capsys) -> tuple[int, str]:
    key = tuple(path)
    if key not in _HELP:
        capsys.readouterr()
        code = main([*path, "--help"])
        captured = capsys.readouterr()
        _HELP[key] = (code, captured.out + captured.err)
    return _HELP[key]


def problems(cmd: DocCommand, capsys) -> list[str]:
    """What is wrong with one documented command (empty: it runs as written, as far as --help can tell)."""
    node = _command_tree()
    path: list[str] = []
    options: dict[tuple[str, ...], list[str]] = {(): []}
    for word in cmd.argv:
        if word == "--":
            break
        if re.match(r"^--?[A-Za-z]", word):
            options[tuple(path)].append(word.split("=", 1)[0])
        elif hasattr(node, "commands") and not options[tuple(path)]:  # a group: the next word names a command
            if word not in node.commands:
                return [f"{cmd}: no command {' '.join(['liftbench', *path, word])!r}"]
            node = node.commands[word]
            path.append(word)
            options[tuple(path)] = []
    if hasattr(node, "commands") and not options[tuple(path)]:  # `liftbench --version` is fine, `liftbench data` not
        return [f"{cmd}: {' '.join(['liftbench', *path])!r} needs a command"]
    found = []
    for prefix, used in options.items():
        code, text = _help(list(prefix), capsys)
        if code != 0:
            found.append(f"{cmd}: 'liftbench {' '.join([*prefix, '--help'])}' exited {code}")
            continue
        for option in used:
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                found.append(f"{cmd}: option {option} is not in 'liftbench {' '.join([*prefix, '--help'])}'")
    return found


@pytest.fixture(autouse=True)
def _wide_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no option name is cut by a narrow panel
    monkeypatch.setenv("TERMINAL_WIDTH", "200")


def test_every_page_exists():
    missing = [page for page in PAGES if not (ROOT / "docs" / f"{page}.md").is_file()]
    assert not missing, f"docs pages missing: {missing}"


def test_every_documented_command_runs_as_written(capsys):
    commands = documented_commands()
    assert len(commands) >= 30, f"only {len(commands)} documented commands found: is the parser broken?"
    covered = {cmd.source.split(":")[0] for cmd in commands}
    assert "README.md" in covered and "docs/cli.md" in covered, covered
    bad = [problem for cmd in commands for problem in problems(cmd, capsys)]
    assert not bad, "documented commands that do not run as written:\n" + "\n".join(bad)


def test_readme_test_command_is_what_ci_runs():
    """.ci/run stage 1 runs the README's set-up + tests command verbatim."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = [line for _, lines in shell_blocks((ROOT / "README.md").read_text()) for line in lines]
    tests = [line for line in readme if line.startswith("python3 -m venv") and line.endswith("python -m pytest -q")]
    assert len(tests) == 1, tests
    assert tests[0] in ci


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^]]*)]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", path.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*$", text, flags=re.M)}


def test_relative_links_resolve():
    bad = []
    for path in doc_files():
        text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", path.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.name}: link to missing {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{path.name}: link to missing heading {target}")
    assert not bad, "\n".join(bad)


# --- the checker itself must be able to fail ---

PLANTED = """
Some prose with `liftbench inline --ignored` code.

```python
liftbench.train_run(cfg)
```

```bash
$ liftbench train mlp --epochs 3 --seed 1 \\
    --set hidden_size=64 --out results   # a comment --nonsense
pip install x && OMP_NUM_THREADS=1 liftbench run ablation --preset smoke > log.txt 2>&1
liftbench tran mlp
liftbench train mlp --epoch 3
liftbench data prepar mocap-mini
liftbench data verify mocap-mini -k gt --keypoint gt
liftbench data
liftbench --version
```

~~~
liftbench check results.csv --tol mpjpe:0.5mm --show=changed
~~~
"""


def test_parser_finds_commands_in_shell_fences_only():
    commands = commands_in(PLANTED, "planted.md")
    assert [c.argv for c in commands] == [
        ("train", "mlp", "--epochs", "3", "--seed", "1", "--set", "hidden_size=64", "--out", "results"),
        ("run", "ablation", "--preset", "smoke"),
        ("tran", "mlp"),
        ("train", "mlp", "--epoch", "3"),
        ("data", "prepar", "mocap-mini"),
        ("data", "verify", "mocap-mini", "-k", "gt", "--keypoint", "gt"),
        ("data",),
        ("--version",),
        ("check", "results.csv", "--tol", "mpjpe:0.5mm", "--show=changed"),
    ]
    assert commands[0].source == "planted.md:9" and commands[-1].source == "planted.md:21"


def test_checker_rejects_planted_wrong_commands(capsys):
    verdicts = {" ".join(c.argv): problems(c, capsys) for c in commands_in(PLANTED, "planted.md")}
    for good in ["train mlp --epochs 3 --seed 1 --set hidden_size=64 --out results", "run ablation --preset smoke",
                 "check results.csv --tol mpjpe:0.5mm --show=changed"]:
        assert verdicts[good] == [], verdicts[good]
    assert "no command 'liftbench tran'" in verdicts["tran mlp"][0]
    assert "option --epoch is not in" in verdicts["train mlp --epoch 3"][0]  # --epochs exists, --epoch does not
    assert "no command 'liftbench data prepar'" in verdicts["data prepar mocap-mini"][0]
    assert ["--keypoint" in v for v in verdicts["data verify mocap-mini -k gt --keypoint gt"]] == [True]
    assert "needs a command" in verdicts["data"][0]
    assert verdicts["--version"] == []


def test_results_page_documents_every_row_column():
    from liftbench.results import ROW_COLUMNS

    text = (ROOT / "docs" / "results.md").read_text()
    missing = [col for col in ROW_COLUMNS if f"`{col}`" not in text]
    assert not missing, f"docs/results.md does not describe these results.csv columns: {missing}"
