"""``aiomodelkit demo`` (issue 13): both stores, labelled output, a warm start with zero
requests, the ratio, and nothing left behind (temporary folder, server process), even on
Ctrl-C.

The runs use a 1 MiB asset and a 2 ms round trip: the output is the same, only faster.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from rich.console import Console
from typer.testing import CliRunner

from aiomodelkit import ConfigError
from aiomodelkit._cli import app
from aiomodelkit._demo import run_demo
from aiomodelkit._demo_models import Pipeline
from aiomodelkit._demo_output import Glyphs, _bar, critical_path
from aiomodelkit._demo_remote import open_remote
from aiomodelkit._spec import AssetSpec
from aiomodelkit._status import ModelState, ModelStatus
from aiomodelkit._values import StoreOptions
from aiomodelkit.stores import MemoryStore
from aiomodelkit.testing import InstrumentedStore, MotoServer

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
FAST = ["--size-mib", "1", "--rtt-ms", "2"]


@pytest.fixture
def demo_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory, for this test: where the demo makes its folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo finds no moto, as after ``pip install aiomodelkit`` alone."""
    monkeypatch.setattr("aiomodelkit._demo_remote._find_moto", lambda: "moto is not installed")


def _leftovers(tmp: Path) -> list[Path]:
    return list(tmp.glob("aiomodelkit-demo-*"))


def _requests(text: str, heading: str) -> int:
    found = re.search(rf"{re.escape(heading)}: \d+\.\d\d s, (\d+) requests? to the store", text)
    assert found, f"no {heading!r} line in:\n{text}"
    return int(found.group(1))


def _assert_demo_output(text: str, rtt: str = "2 ms RTT") -> None:
    """What the demo must print, whichever store it used."""
    lines = text.splitlines()
    # 80 columns, but for a word that cannot be broken (the temporary folder's path).
    too_long = [line for line in lines if len(line) > 80 and " " in line.strip()]
    assert too_long == []
    assert all(line == line.rstrip() for line in lines)
    # The timeline's two header lines: the names, then the units under them.
    at = next(index for index, line in enumerate(lines) if line.startswith("model "))
    assert lines[at - 1].split() == ["fetch", "load", "ready", "at"]
    assert lines[at].split() == ["model", "asset", "(ms)", "(ms)", "(ms)", "timeline"]
    rows = [line.split()[:2] for line in lines[at + 1 : at + 7]]
    assert rows[0] == ["tokenizer", "demo/tokenizer:0.0"]
    assert rows[-1] == ["pipeline", "-"]
    flat = " ".join(text.split())
    assert "░ fetching, · waiting for dependencies, █ loading" in flat
    assert "fetch, load: how long each took; ready at: when the model was ready" in flat
    assert _requests(text, "1. cold start, concurrent (aiomodelkit)") > 100
    assert _requests(text, "2. cold start, one by one, like modelkit") > 100
    assert re.search(rf"one by one \d+\.\d\d s: \d+\.\dx faster across a {rtt} link", flat)
    assert _requests(text, "3. warm start, same cache") == 0
    assert "no network, so the warm start time is the loads alone" in flat


def test_demo_runs_on_moto_and_cleans_up(demo_tmp: Path) -> None:
    result = runner.invoke(app, ["demo", *FAST])
    assert result.exit_code == 0, result.output
    assert "store: embedded S3 (moto 5." in result.stdout
    assert "behind a 2 ms RTT link" in result.stdout
    assert "counts the HTTP requests" in " ".join(result.stdout.split())
    _assert_demo_output(result.stdout)
    assert "demo/classifier:0.0" in result.stdout
    assert _leftovers(demo_tmp) == []


async def test_demo_falls_back_to_a_local_folder_without_moto(
    demo_tmp: Path, no_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A service's settings in the environment do not change what the demo does.
    monkeypatch.setenv("AIOMODELKIT_OFFLINE", "true")
    monkeypatch.setenv("AIOMODELKIT_LOCK_FILE", str(demo_tmp / "missing.lock"))
    monkeypatch.setenv("AIOMODELKIT_STORAGE", "s3://elsewhere")
    console = Console(file=io.StringIO(), width=80)
    report = await run_demo(console, size_mib=1, rtt_ms=2)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert report.store == "local folder behind a simulated 2 ms RTT"
    assert "store: local folder behind a simulated 2 ms RTT" in text
    assert "moto is not installed; pip install 'moto[server]' 'aiomodelkit[s3]'" in " ".join(
        text.split()
    )
    _assert_demo_output(text)
    # The shim counts every request, the same ones each cold start makes; none when warm.
    assert report.concurrent.requests == report.one_by_one.requests > 100
    assert report.warm.requests == 0
    assert report.one_by_one.seconds > report.concurrent.seconds
    assert not report.workdir.exists()
    assert _leftovers(demo_tmp) == []


async def test_a_cancelled_demo_removes_its_folder(demo_tmp: Path, no_moto: None) -> None:
    console = Console(file=io.StringIO(), width=80)
    with anyio.move_on_after(1.0) as scope:  # publishing or starting: before the end
        await run_demo(console, size_mib=1, rtt_ms=2)
    assert scope.cancelled_caught
    assert "3. warm start" not in console.file.getvalue()  # type: ignore[attr-defined]
    assert _leftovers(demo_tmp) == []


async def test_moto_when_asked_for_but_missing_is_a_config_error(
    demo_tmp: Path, no_moto: None
) -> None:
    with pytest.raises(ConfigError, match=r"moto is not installed.*pip install 'moto\[server\]'"):
        await run_demo(Console(file=io.StringIO()), size_mib=1, rtt_ms=2, remote="moto")
    assert _leftovers(demo_tmp) == []


async def test_moto_that_does_not_start_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: MotoServer) -> None:
        raise RuntimeError("moto server exited with 1:\nModuleNotFoundError: flask")

    monkeypatch.setattr(MotoServer, "start", fail)
    async with open_remote(tmp_path, rtt=0.0, kind="auto", options=StoreOptions()) as link:
        assert link.description == "local folder behind a simulated 0 ms RTT"
        assert "moto did not start: moto server exited with 1:" in link.detail


async def test_a_round_trip_per_request_waits_and_counts_each_request() -> None:
    inner = MemoryStore()
    async with inner:
        for index in range(1001):
            await inner.put(f"k/{index:04d}", b"x")
    store = InstrumentedStore(inner, rtt=0.01)
    start = time.perf_counter()
    async with store:
        await store.stat("k/0000")
        async with store.read("k/0001") as stream:
            assert b"".join([chunk async for chunk in stream]) == b"x"
        assert len([info async for info in store.list_objects("k/")]) == 1001  # two pages
        await store.put("new", b"y")
        await store.delete("new")
    assert store.requests == 6
    assert time.perf_counter() - start >= 6 * 0.01
    with pytest.raises(ValueError, match="rtt"):
        InstrumentedStore(inner, rtt=-1)


def _status(
    key: str,
    *,
    fetch: tuple[float, float] | None,
    load: tuple[float, float],
    deps: tuple[str, ...] = (),
) -> ModelStatus:
    return ModelStatus(
        key=key,
        model_type=Pipeline,
        state=ModelState.LOADED,
        dependencies=deps,
        asset=AssetSpec.parse(f"demo/{key}:0.0") if fetch is not None else None,
        fetch_started=fetch[0] if fetch is not None else None,
        fetch_finished=fetch[1] if fetch is not None else None,
        load_started=load[0],
        load_finished=load[1],
    )


def test_timeline_rows_and_glyphs() -> None:
    fetched = _status("a", fetch=(0.0, 0.5), load=(0.6, 1.0))
    assert _bar(fetched, 1.0, 10, Glyphs()) == "░░░░░·████"
    assert _bar(fetched, 1.0, 10, Glyphs.for_encoding("ascii")) == "-----.####"
    no_asset = _status("b", fetch=None, load=(0.8, 0.9))
    assert _bar(no_asset, 1.0, 10, Glyphs()) == "········█"  # waits from the start
    assert Glyphs.for_encoding("UTF-8") == Glyphs()


def test_critical_path_is_the_longest_chain_of_loads() -> None:
    statuses = {
        "a": _status("a", fetch=(0, 0), load=(0, 0.3)),
        "b": _status("b", fetch=(0, 0), load=(0, 0.1)),
        "c": _status("c", fetch=(0, 0), load=(0.3, 0.5), deps=("a", "b")),
        "d": _status("d", fetch=None, load=(0, 0.4)),
    }
    chain, seconds = critical_path(statuses)
    assert chain == ["a", "c"]
    assert seconds == pytest.approx(0.5)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


def test_ctrl_c_stops_the_server_and_removes_the_folder(tmp_path: Path) -> None:
    """A real ``aiomodelkit demo`` on moto, interrupted during the one-by-one start."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child needs a PATH
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    if "PYTHONPATH" in os.environ:  # noqa: TID251 - the child imports what this test imports
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # noqa: TID251
    process = subprocess.Popen(
        [sys.executable, "-m", "aiomodelkit", "demo", "--size-mib", "1", "--rtt-ms", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # printed once the concurrent start is over
            seen.append(line)
            if line.startswith("1. cold start"):
                break
        assert process.poll() is None, "".join(seen)
        found = re.search(r"S3 server runs at http://127\.0\.0\.1:(\d+)", "".join(seen))
        assert found, "".join(seen)
        moto_port = int(found.group(1))
        assert _answers(moto_port)
        assert len(_leftovers(tmp_path)) == 1
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    assert not _answers(moto_port)  # the server process is gone
    assert _leftovers(tmp_path) == []
