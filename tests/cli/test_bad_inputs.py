"""Issue 13: every command, given a bad input, prints one line and changes nothing.

The rows are in ``_cases.py`` (bad specs and versions; missing, unreadable, read-only and
file-instead-of-directory paths; unknown schemes; contradictory flags; usage errors; missing
credentials; unreachable endpoints; missing lock files). Each runs in-process through
typer's runner, and must end with its exit status, exactly one ``error:`` line on stderr
(after the notes the row allows), nothing on stdout, no exception, and the store, the cache
and the output directory exactly as they were. A few rows run again as real processes, to
prove the real status and stderr; signals are sent to real processes waiting for a store
that never answers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import traceback
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from aiomodelkit._cli import app

from ._cases import CASES, SUBPROCESS_CASES, Case

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ._world import World

runner = CliRunner()


def _error_line(stderr: str, notes: int = 0) -> str:
    """The one ``error:`` line, after ``notes`` other lines and before nothing."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == notes + 1, stderr
    assert lines[-1].startswith("error: "), stderr
    return lines[-1]


def _argv(world: World, case: Case) -> list[str]:
    for need in case.needs:
        if need in world.missing:
            pytest.skip(f"no {need} here: {world.missing[need]}")
    return [world.fill(arg) for arg in case.argv]


def _rows(cases: list[Case]) -> list[Any]:
    """One ``pytest.param`` per row, strictly expected to fail where the row says why."""
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for case in cases
    ]


@pytest.mark.parametrize("case", _rows(CASES))
def test_a_bad_input_is_one_line_and_changes_nothing(world: World, case: Case) -> None:
    argv = _argv(world, case)
    before = world.snapshot()
    result = runner.invoke(app, argv, env=world.fill_env(case.env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        pytest.fail("".join(traceback.format_exception(*result.exc_info)))
    line = _error_line(result.stderr, case.notes)
    assert world.fill(case.says) in line
    assert result.exit_code == case.status, line
    assert result.stdout == ""
    if case.hides is not None:
        assert case.hides not in result.output
    assert world.snapshot() == before


def _child_env(env: Mapping[str, str | None]) -> dict[str, str]:
    """This test's (isolated) environment, with ``env`` applied."""
    child = dict(os.environ)  # noqa: TID251 - the child inherits the test's isolated environment
    for name, value in env.items():
        if value is None:
            child.pop(name, None)
        else:
            child[name] = value
    return child


@pytest.mark.parametrize("case", _rows(SUBPROCESS_CASES))
def test_a_real_process_has_the_status_and_the_line(world: World, case: Case) -> None:
    argv = _argv(world, case)
    before = world.snapshot()
    done = subprocess.run(
        [sys.executable, "-m", "aiomodelkit", *argv],
        env=_child_env(world.fill_env(case.env)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = _error_line(done.stderr, case.notes)
    assert world.fill(case.says) in line
    assert done.returncode == case.status, done.stderr
    assert done.stdout == ""
    assert world.snapshot() == before


@contextmanager
def _silent_server() -> Iterator[tuple[str, socket.socket]]:
    """A loopback server that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(30)
        yield f"http://127.0.0.1:{server.getsockname()[1]}", server


_S3 = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SIGNAL_CASES = [
    ("versions", "assets versions models/c --storage s3://bucket", signal.SIGTERM, _S3),
    ("fetch", "assets fetch models/d --storage s3://bucket", signal.SIGINT, _S3),
    ("new", "assets new {src} models/e --yes --storage s3://bucket", signal.SIGTERM, _S3),
    ("lock", "assets lock models/c -o {out}/x.lock --storage s3://bucket", signal.SIGINT, _S3),
    ("download-assets", "download-assets {models} --storage s3://bucket", signal.SIGTERM, _S3),
    ("list-gs", "assets list --storage gs://bucket", signal.SIGTERM, {}),
]


@pytest.mark.parametrize(
    ("command", "signum", "env"),
    [(command, signum, env) for _, command, signum, env in SIGNAL_CASES],
    ids=[f"{name}-{signum.name}" for name, _, signum, _ in SIGNAL_CASES],
)
def test_a_signal_while_the_store_does_not_answer(
    world: World, command: str, signum: signal.Signals, env: dict[str, str]
) -> None:
    before = world.snapshot()
    with _silent_server() as (endpoint, server):
        child_env = _child_env(
            {
                **env,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": "us-east-1",
                "STORAGE_EMULATOR_HOST": endpoint,
            }
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "aiomodelkit", *world.fill(command).split()],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            connection, _ = server.accept()  # the command now waits for an answer
            with connection:
                process.send_signal(signum)
                stdout, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 128 + signum, stderr
    assert _error_line(stderr) == "error: interrupted"
    assert stdout == ""
    assert world.snapshot() == before
