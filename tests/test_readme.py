"""The README's code and shell blocks, and the commands of ``examples/``, run exactly as written.

What happens to each block:

* **Every fence is accounted for.** A block of README.md fenced as ``python``, ``bash``, ``sh``,
  ``shell`` or ``console`` runs; ``text`` is a diagram or a listing; any other fence, an
  unlabelled one included, fails :func:`test_every_readme_block_is_run_or_marked`, so no block
  escapes by accident. An HTML comment on the line right before a block may say
  ``<!-- not run: REASON -->`` (skipped; the reason is required), ``<!-- file: NAME -->`` (the
  python block is saved as NAME in the working directory, and a later shell block must use it)
  or ``<!-- excerpt of PATH -->`` (the block must appear verbatim in PATH, which other tests
  run: ``examples/fastapi_app.py`` runs under uvicorn in ``tests/web/test_fastapi.py``). Any
  other comment there fails, as does one of those words anywhere else.
* **In order, sharing state, as in one terminal.** The blocks run one after another in one
  temporary directory; the commands above the README's first section, for a fresh clone, stand
  alone and run in a directory of their own (a separate test, as ``aiomodelkit demo`` is
  slow). A shell block runs with ``bash -euo pipefail``; the variables it exports and the
  directory it ends in carry over to the later blocks. A python block runs as
  ``python FILE`` in that directory and environment. The environment starts isolated (the
  autouse fixture of ``conftest.py`` clears ``AIOMODELKIT_*`` and cloud variables and sets a
  temporary ``HOME``), with ``TMPDIR`` inside the test's directory and this venv's ``bin`` first
  on ``PATH``: the README sets up its own store and cache.
* **Install commands are checked, not run** (they would change this venv, reach PyPI, or, for
  ``nox``, run this suite inside itself). In the shell, ``pip``, ``python[3] -m pip``,
  ``python[3] -m venv`` and ``nox`` are functions that record their arguments; ``venv`` writes
  an empty ``activate`` script, so ``. .venv/bin/activate`` runs and the commands after it use
  this venv, where the project is installed in editable mode. Then each ``pip install`` must
  name pip, a package of a dependency group of ``pyproject.toml``, or this project (``.``: the
  temporary directory stands in for the clone) with extras that ``[project.optional-
  dependencies]`` defines; ``nox`` without arguments must run the ``tests``, ``lint`` and
  ``typecheck`` sessions (``nox.options.sessions`` in ``noxfile.py``).
* **Servers run for real, then get Ctrl-C.** A server command (``aiomodelkit serve``,
  ``uvicorn``, ``python -m examples.aiohttp_app``) starts in the background, as in a second
  terminal; the lines after it run once its ``/ready`` answers 200, with curl failing on an HTTP
  error status (``--fail-with-body``); then the server gets SIGINT and must exit. The docs use
  the default port 8000, as written, so each server run holds a lock file in the system's temp
  directory (pytest workers and parallel suites on one machine take turns), and the test fails
  if another program holds the port.
* **examples/**: the literal blocks (``::``) of the ``examples/__init__.py`` docstring run the
  same way, from the repository root, as that docstring says.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples" / "__init__.py"

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
RUN_LANGUAGES = SHELL_LANGUAGES | {"python"}
TEXT_LANGUAGES = frozenset({"text"})

FENCE = re.compile(r"^(?P<fence>`{3,})(?P<language>[^`\s]*)\s*$")
MARKER = re.compile(r"^<!--\s*(?P<body>.*?)\s*-->\s*$")
MARKER_WORDS = re.compile(r"<!--\s*(not run|file|excerpt)")
NOT_RUN = re.compile(r"^not run:\s*(?P<reason>.*)$")
FILE = re.compile(r"^file:\s*(?P<name>[\w.-]+)$")
EXCERPT = re.compile(r"^excerpt of\s+(?P<path>\S+)$")

#: A command that serves until Ctrl-C: started in the background, stopped after the block.
SERVER = re.compile(
    r"^(aiomodelkit\s+serve|uvicorn|python3?\s+-m\s+(examples\.aiohttp_app|uvicorn))\b"
)
#: The port of uvicorn, ``aiomodelkit serve`` and ``examples/aiohttp_app.py`` by default.
DEFAULT_PORT = 8000
#: Loopback only, whatever proxy the developer has configured.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: Each command of a block may take this long (`aiomodelkit demo` takes 10 to 30 s).
COMMAND_TIMEOUT = 120

#: Recorded arguments of the install commands are separated by this byte, one call a line.
SEPARATOR = "\x1f"
#: Defined before every shell block (see the module docstring). ``__readme_log`` is a shell
#: variable, not exported, so it never reaches the recorded environment.
PRELUDE = r"""
__readme_record() { local IFS=$'\x1f'; printf '%s\n' "$*" >> "$__readme_log"; }
pip() { __readme_record pip "$@"; }
pip3() { __readme_record pip "$@"; }
nox() { __readme_record nox "$@"; }
__readme_python() {
    local name=$1
    shift
    if [ "${1-}" = -m ] && [ "${2-}" = venv ]; then
        local dir=${@: -1}
        __readme_record venv "${@:3}"
        mkdir -p "$dir/bin"
        printf '# tests/test_readme.py: a stand-in; this venv is already active\n' \
            > "$dir/bin/activate"
    elif [ "${1-}" = -m ] && [ "${2-}" = pip ]; then
        __readme_record pip "${@:3}"
    else
        command "$name" "$@"
    fi
}
python() { __readme_python python "$@"; }
python3() { __readme_python python3 "$@"; }
curl() { command curl --fail-with-body --no-progress-meter "$@"; }
"""
#: Variables bash sets itself: never carried from one block to the next.
SHELL_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


@dataclass(frozen=True)
class Block:
    """A fenced block: where it starts, its language, its text and the marker before it."""

    where: str
    language: str
    text: str
    marker: str | None = None
    line: int = 0


def markdown_blocks(text: str, name: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown text, in order, and the problems found on the way.

    Problems: a marker comment that does not sit right before a fence, and an unclosed fence.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = FENCE.match(line)
        if opening is None:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if MARKER_WORDS.search(line) and not FENCE.match(following):
                problems.append(f"{name}:{index + 1}: a marker not right before a fence: {line}")
            index += 1
            continue
        fence = opening["fence"]
        marker = MARKER.match(lines[index - 1]) if index > 0 else None
        end = index + 1
        while end < len(lines) and not (
            lines[end].startswith(fence) and not lines[end].strip("`").strip()
        ):
            end += 1
        if end == len(lines):
            problems.append(f"{name}:{index + 1}: the fence is never closed")
        body = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(
            Block(
                f"{name}:{index + 1}",
                opening["language"],
                body,
                marker["body"] if marker else None,
                index + 1,
            )
        )
        index = end + 1
    return blocks, problems


def block_problems(blocks: list[Block]) -> list[str]:
    """Every block that would escape: unlabelled or unknown fences, unknown markers, a marker
    without its reason, a saved file no later block uses, an excerpt of a missing file."""
    problems: list[str] = []
    for position, block in enumerate(blocks):
        where = f"{block.where} ({block.language or 'no language'})"
        if block.language not in RUN_LANGUAGES | TEXT_LANGUAGES:
            problems.append(
                f"{where}: label the fence python, bash or console to run it, or text if it "
                "is not code"
            )
            continue
        if block.marker is None:
            continue
        if block.language in TEXT_LANGUAGES:
            problems.append(f"{where}: a text block needs no marker: {block.marker}")
        elif not_run := NOT_RUN.match(block.marker):
            if not not_run["reason"]:
                problems.append(f"{where}: 'not run:' needs its reason")
        elif saved := FILE.match(block.marker):
            later = "".join(b.text for b in blocks[position + 1 :] if b.language in SHELL_LANGUAGES)
            if block.language != "python":
                problems.append(f"{where}: only a python block can be saved as a file")
            elif saved["name"] not in later:
                problems.append(f"{where}: no later shell block uses {saved['name']}")
        elif excerpt := EXCERPT.match(block.marker):
            if not (ROOT / excerpt["path"]).is_file():
                problems.append(f"{where}: {excerpt['path']} does not exist")
        else:
            problems.append(f"{where}: unknown marker <!-- {block.marker} -->")
    return problems


def docstring_blocks(path: Path) -> list[Block]:
    """The literal blocks (a paragraph ending in ``::``, then indented lines) of a module's
    docstring, as shell blocks."""
    docstring = ast.get_docstring(ast.parse(path.read_text()), clean=True) or ""
    lines = docstring.splitlines()
    name = path.relative_to(ROOT).as_posix()
    blocks: list[Block] = []
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        end = index + 1
        while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
            end += 1
        body = textwrap.dedent("\n".join(lines[index + 1 : end])).strip("\n") + "\n"
        blocks.append(Block(f"{name} (docstring line {index + 2})", "bash", body))
    return blocks


def logical_lines(text: str) -> list[str]:
    """Shell lines with their ``\\`` continuations joined."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line + "\n"
        else:
            joined.append(pending + line)
            pending = ""
    if pending:
        joined.append(pending)
    return joined


def console_commands(text: str) -> str:
    """The commands of a console block: the ``$ `` lines (and their continuations)."""
    commands: list[str] = []
    for line in logical_lines(text):
        if line.startswith("$ "):
            commands.append(line[2:])
    return "\n".join(commands) + "\n"


@dataclass(frozen=True)
class Pyproject:
    """What the install commands may name."""

    extras: frozenset[str]
    packages: frozenset[str]
    default_sessions: frozenset[str]

    @classmethod
    def load(cls) -> Pyproject:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
        groups = project.get("dependency-groups", {})
        packages = {
            canonicalize_name(Requirement(entry).name)
            for entries in groups.values()
            for entry in entries
            if isinstance(entry, str)
        }
        return cls(
            frozenset(project["project"].get("optional-dependencies", {})),
            frozenset(packages | {"pip"}),
            frozenset(nox_default_sessions()),
        )


def nox_default_sessions() -> list[str]:
    """``nox.options.sessions`` of the noxfile, read without importing nox (the test
    session's venv need not have it)."""
    for node in ast.walk(ast.parse((ROOT / "noxfile.py").read_text())):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and ast.unparse(node.targets[0]) == "nox.options.sessions"
        ):
            sessions: list[str] = ast.literal_eval(node.value)
            return sessions
    return []


def check_install_command(call: list[str], pyproject: Pyproject) -> list[str]:
    """What is wrong with one recorded ``pip``, ``venv`` or ``nox`` call (nothing: ``[]``)."""
    tool, args = call[0], call[1:]
    if tool == "venv":
        return [] if args else ["python -m venv without a directory"]
    if tool == "nox":
        wanted = {"tests", "lint", "typecheck"}
        if args:
            return [f"nox {shlex.join(args)}: only a bare `nox` is checked"]
        if not wanted <= pyproject.default_sessions:
            return [f"`nox` runs {sorted(pyproject.default_sessions)}, not {sorted(wanted)}"]
        return []
    if not args or args[0] != "install":
        return [f"pip {shlex.join(args)}: only `pip install` is expected"]
    problems: list[str] = []
    for arg in args[1:]:
        if arg in ("-U", "--upgrade", "-e", "--editable", "-q", "--quiet"):
            continue
        if arg.startswith("-"):
            problems.append(f"pip install: option {arg} is not checked here")
        elif project := re.fullmatch(r"\.(?:\[(?P<extras>[^\]]*)\])?", arg):
            extras = {e.strip() for e in (project["extras"] or "").split(",") if e.strip()}
            if missing := extras - pyproject.extras:
                problems.append(f"pip install {arg}: no extra {sorted(missing)} in pyproject")
        elif canonicalize_name(Requirement(arg).name) not in pyproject.packages:
            problems.append(f"pip install {arg}: neither pip nor in a dependency group")
    return problems


class Terminal:
    """A reader's terminal: an environment and a directory that the blocks change in turn."""

    def __init__(self, tmp_path: Path, cwd: Path) -> None:
        self.tmp = tmp_path / "runner"
        self.tmp.mkdir()
        (tmp_path / "tmp").mkdir()
        self.cwd = cwd
        self.log = self.tmp / "install-commands.log"
        self.log.touch()
        self.checked = 0
        self.pyproject = Pyproject.load()
        self.count = 0
        env = dict(os.environ)  # noqa: TID251 - the blocks inherit the test's isolated env
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["TMPDIR"] = str(tmp_path / "tmp")
        for name in ("NO_PROXY", "no_proxy"):  # curl must reach the servers on loopback
            env[name] = ",".join(filter(None, [env.get(name), "localhost", "127.0.0.1", "::1"]))
        self.env = env

    def _script(self, body: str) -> Path:
        self.count += 1
        script = self.tmp / f"{self.count:02d}.sh"
        script.write_text(f"__readme_log={shlex.quote(str(self.log))}\n{PRELUDE}\n{body}")
        return script

    def run_python(self, block: Block) -> None:
        """Run a python block as ``python FILE`` in the terminal's directory."""
        self.count += 1
        path = self.tmp / f"{self.count:02d}_block.py"
        path.write_text(block.text)
        self._run(block, [sys.executable, str(path)], block.text)

    def run_shell(self, where: str, text: str) -> None:
        """Run shell lines with ``bash -euo pipefail``; keep the exported variables and the
        directory they leave."""
        state_env = self.tmp / "state.env"
        state_cwd = self.tmp / "state.cwd"
        state_env.unlink(missing_ok=True)
        trailer = f"\nenv -0 > {shlex.quote(str(state_env))}\npwd > {shlex.quote(str(state_cwd))}\n"
        script = self._script(text + trailer)
        self._run(Block(where, "bash", text), ["bash", "-euo", "pipefail", str(script)], text)
        assert state_env.exists(), f"{where}: the block exited before its end"
        self.env = {
            name: value
            for name, _, value in (
                item.partition("=") for item in state_env.read_text().split("\0") if item
            )
            if name not in SHELL_OWN
        }
        self.cwd = Path(state_cwd.read_text().strip())
        self._check_install_commands(where)

    def _run(self, block: Block, argv: list[str], text: str) -> None:
        """Run ``argv`` in the terminal; fail with its output unless it exits with 0."""
        result = subprocess.run(
            argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, (
            f"{block.where} failed with status {result.returncode}:\n{text}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )

    def _check_install_commands(self, where: str) -> None:
        calls = self.log.read_text().splitlines()
        new, self.checked = calls[self.checked :], len(calls)
        problems = [
            problem
            for call in new
            for problem in check_install_command(call.split(SEPARATOR), self.pyproject)
        ]
        assert not problems, f"{where}: " + "; ".join(problems)

    def run_shell_block(self, block: Block) -> None:
        """Run a shell block; a server in it runs in the background while the lines after
        it run, then gets Ctrl-C."""
        text = console_commands(block.text) if block.language == "console" else block.text
        lines = logical_lines(text)
        servers = [i for i, line in enumerate(lines) if SERVER.match(line)]
        assert len(servers) <= 1, f"{block.where}: one server per block, please"
        if not servers:
            self.run_shell(block.where, text)
            return
        (at,) = servers
        if before := "\n".join(lines[:at]).strip():
            self.run_shell(block.where, before + "\n")
        with self.server(block.where, lines[at]):
            self.run_shell(
                f"{block.where}, after `{lines[at].split('#')[0].strip()}`",
                "\n".join(lines[at + 1 :]) + "\n",
            )

    @contextmanager
    def server(self, where: str, command: str) -> Iterator[None]:
        """Start ``command`` in the background, wait until ``/ready`` answers 200, and stop it
        with SIGINT (Ctrl-C) on the way out."""
        found = re.search(r"--port[ =](\d+)", command)
        port = int(found[1]) if found else DEFAULT_PORT
        lock = FileLock(Path(tempfile.gettempdir()) / f"aiomodelkit-test-readme-port-{port}.lock")
        with lock.acquire(timeout=COMMAND_TIMEOUT):
            assert not listening(port), (
                f"{where}: port {port} is taken by another program; the documented commands need it"
            )
            log_path = self.tmp / f"server-{self.count + 1:02d}.log"
            script = self._script(f"exec {command}\n")
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    ["bash", "-euo", "pipefail", str(script)],
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_ready(process, port, lambda: f"{where}: {command}\n{log_path.read_text()}")
                yield
                process.send_signal(signal.SIGINT)
                status = process.wait(timeout=15)
                assert status in (0, 130, -signal.SIGINT), (
                    f"{where}: Ctrl-C stopped the server with status {status}:\n"
                    f"{log_path.read_text()}"
                )
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def listening(port: int) -> bool:
    """Whether a program accepts connections on ``127.0.0.1:PORT`` (connections of a server
    that has stopped may linger in TIME_WAIT; a new server may still bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(process: subprocess.Popen[bytes], port: int, output: Callable[[], str]) -> None:
    """Poll ``http://127.0.0.1:PORT/ready`` until it answers 200 (503 while loading)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with status {process.returncode}:\n{output()}")
        try:
            with OPENER.open(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or 503 while the models load
        time.sleep(0.05)
    pytest.fail(f"/ready never answered 200 within 30 s:\n{output()}")


def run_blocks(terminal: Terminal, blocks: list[Block]) -> list[str]:
    """Run (or check) every block in order; return what each did, for the test's report."""
    done: list[str] = []
    for block in blocks:
        start = time.monotonic()
        marker = block.marker or ""
        if block.language in TEXT_LANGUAGES:
            continue
        if not_run := NOT_RUN.match(marker):
            done.append(f"{block.where}: not run ({not_run['reason']})")
        elif excerpt := EXCERPT.match(marker):
            source = (ROOT / excerpt["path"]).read_text()
            assert block.text in source, f"{block.where}: not a verbatim excerpt of {excerpt[1]}"
            done.append(f"{block.where}: found in {excerpt['path']}")
        elif saved := FILE.match(marker):
            (terminal.cwd / saved["name"]).write_text(block.text)
            done.append(f"{block.where}: saved as {saved['name']}")
        elif block.language == "python":
            terminal.run_python(block)
            done.append(f"{block.where}: ran in {time.monotonic() - start:.1f} s")
        else:
            terminal.run_shell_block(block)
            done.append(f"{block.where}: ran in {time.monotonic() - start:.1f} s")
    return done


def test_every_readme_block_is_run_or_marked() -> None:
    blocks, problems = markdown_blocks(README.read_text(), "README.md")
    assert problems + block_problems(blocks) == []
    assert docstring_blocks(EXAMPLES), "examples/__init__.py documents no commands"


def test_a_block_cannot_escape() -> None:
    """The guard itself: an unlabelled fence, a marker without a reason or with a typo, a
    stray marker and a saved file nobody uses are all reported."""
    text = textwrap.dedent(
        """\
        ```
        echo unlabelled
        ```
        <!-- not run: -->
        ```bash
        echo no reason
        ```
        <!-- nto run: a typo -->
        ```bash
        echo typo
        ```
        <!-- not run: the marker must touch its fence -->

        ```python
        print("runs")
        ```
        <!-- file: unused.py -->
        ```python
        print("saved")
        ```
        """
    )
    blocks, problems = markdown_blocks(text, "X.md")
    assert problems == [
        "X.md:12: a marker not right before a fence: "
        "<!-- not run: the marker must touch its fence -->"
    ]
    assert block_problems(blocks) == [
        "X.md:1 (no language): label the fence python, bash or console to run it, or text if "
        "it is not code",
        "X.md:5 (bash): 'not run:' needs its reason",
        "X.md:9 (bash): unknown marker <!-- nto run: a typo -->",
        "X.md:18 (python): no later shell block uses unused.py",
    ]


def test_console_blocks_run_their_prompted_lines() -> None:
    text = "$ aiomodelkit assets list \\\n    --storage store\nmodels/clf 0.0\n$ echo done\ndone\n"
    assert console_commands(text) == "aiomodelkit assets list \\\n    --storage store\necho done\n"


def test_install_commands_are_checked() -> None:
    pyproject = Pyproject.load()
    assert {"s3", "gcs", "all", "fastapi"} <= pyproject.extras
    assert check_install_command(["pip", "install", "-e", ".[s3,fastapi]"], pyproject) == []
    assert check_install_command(["pip", "install", "-U", "pip", "nox"], pyproject) == []
    assert check_install_command(["pip", "install", "-e", ".[s4]"], pyproject) == [
        "pip install .[s4]: no extra ['s4'] in pyproject"
    ]
    assert check_install_command(["pip", "install", "left-pad"], pyproject) == [
        "pip install left-pad: neither pip nor in a dependency group"
    ]
    assert check_install_command(["nox"], pyproject) == []


def readme_parts() -> tuple[list[Block], list[Block]]:
    """The README's blocks: those above its first section (the commands for a fresh machine,
    which stand alone), and the others (which build on each other)."""
    text = README.read_text()
    blocks, problems = markdown_blocks(text, "README.md")
    assert problems + block_problems(blocks) == []
    first_section = next(
        number for number, line in enumerate(text.splitlines(), 1) if line.startswith("## ")
    )
    return (
        [block for block in blocks if block.line < first_section],
        [block for block in blocks if block.line > first_section],
    )


def test_readme_first_commands(tmp_path: Path) -> None:
    """The commands above the README's first section, in a directory of their own (a fresh
    clone): the install commands are checked, ``aiomodelkit demo`` runs as written."""
    first, _ = readme_parts()
    assert first, "the README no longer opens with its commands for a fresh machine"
    workdir = tmp_path / "clone"
    workdir.mkdir()
    print("\n".join(run_blocks(Terminal(tmp_path, workdir), first)))


def test_readme_blocks_run_in_order(tmp_path: Path) -> None:
    """Every other block of README.md, in order, in an empty directory (see the module
    docstring)."""
    _, blocks = readme_parts()
    workdir = tmp_path / "reader"
    workdir.mkdir()
    print("\n".join(run_blocks(Terminal(tmp_path, workdir), blocks)))


def test_examples_run_as_documented(tmp_path: Path) -> None:
    """The commands of the examples/__init__.py docstring, from the repository root."""
    print("\n".join(run_blocks(Terminal(tmp_path, ROOT), docstring_blocks(EXAMPLES))))
