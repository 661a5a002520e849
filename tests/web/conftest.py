"""Real server processes for the web tests: started on a free 127.0.0.1 port, always stopped.

The fixtures are synchronous and hold no task group or cancel scope: each test polls and
talks to its server with an aiohttp client inside its own body.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiohttp
import anyio
import pytest

from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[2]  # the repository: `examples` imports from here


@dataclass(frozen=True)
class ServerProcess:
    """A server subprocess; its stdout and stderr go to ``log``."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")

    async def wait_ready(self, session: aiohttp.ClientSession) -> list[int]:
        """Poll ``/ready`` until it answers 200; return every status seen (503s first)."""
        seen: list[int] = []
        with anyio.fail_after(10):
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.output()}")
                try:
                    async with session.get(f"{self.url}/ready") as response:
                        seen.append(response.status)
                        if response.status == 200:
                            return seen
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await anyio.sleep(0.02)

    def stop(self, signum: int, timeout: float = 10) -> int:
        """Send ``signum`` and wait for the exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


class StartServer(Protocol):
    """Starts ``python ARGS`` in the repository, ``{port}`` in ARGS replaced by a free port."""

    def __call__(self, args: Sequence[str], env: Mapping[str, str]) -> ServerProcess: ...


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(args: Sequence[str], env: Mapping[str, str]) -> ServerProcess:
        port = free_port()
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, *(arg.format(port=port) for arg in args)],
                cwd=ROOT,
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    """The environment of the example apps: a local store holding the example assets (put
    there by ``python -m examples.models``), an empty cache, slow loads, a close log."""
    store = tmp_path / "store"
    store.mkdir()
    env = {
        **os.environ,  # noqa: TID251 - the server process inherits the test's (isolated) env
        "AIOMODELKIT_STORAGE": store.as_uri(),
        "AIOMODELKIT_ASSETS_DIR": str(tmp_path / "cache"),
        "EXAMPLE_LOAD_DELAY": "0.4",  # each of the two levels: /ready is 503 for 0.8 s or more
        "EXAMPLE_CLOSE_LOG": str(tmp_path / "closed.log"),
    }
    subprocess.run(
        [sys.executable, "-m", "examples.models"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env
