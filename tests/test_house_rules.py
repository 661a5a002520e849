"""The guards every test runs under (tests/conftest.py and pytest's addopts) do guard.

Our code blocking the event loop fails a test; the test's own blocking setup does not; code
off the loop is never checked; sockets reach loopback only.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import anyio
import pytest
from blockbuster import BlockingError
from pytest_socket import SocketConnectBlockedError

from aiomodelkit import LockFile

if TYPE_CHECKING:
    from pathlib import Path


def _lock_file(tmp_path: Path) -> Path:
    path = tmp_path / "assets.lock"
    path.write_bytes(LockFile().dump())  # the test's own write: allowed on the loop
    return path


async def test_our_code_blocking_the_loop_fails(tmp_path: Path) -> None:
    path = _lock_file(tmp_path)
    with pytest.raises(BlockingError, match="read"):
        LockFile.load(path)  # documented as blocking: callers run it in a worker thread


async def test_our_code_in_a_worker_thread_passes(tmp_path: Path) -> None:
    path = _lock_file(tmp_path)
    assert await anyio.to_thread.run_sync(LockFile.load, path) == LockFile()


def test_our_blocking_code_off_the_loop_passes(tmp_path: Path) -> None:
    assert LockFile.load(_lock_file(tmp_path)) == LockFile()


async def test_a_test_may_block_its_own_loop(tmp_path: Path) -> None:
    path = tmp_path / "setup.bin"
    path.write_bytes(b"small setup")
    assert path.read_bytes() == b"small setup"


def test_sockets_reach_loopback_only() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with socket.create_connection(("localhost", port), timeout=5):
            pass
    # pytest-socket warns too, which filterwarnings turns into an error of its own.
    with (
        socket.socket() as sock,
        pytest.warns(UserWarning, match=r"192\.0\.2\.1"),
        pytest.raises(SocketConnectBlockedError),
    ):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed


async def test_the_loop_reaches_loopback_only() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port):
            pass
    with (
        pytest.warns(UserWarning, match=r"192\.0\.2\.1"),
        pytest.raises(ExceptionGroup) as info,  # anyio's happy eyeballs
    ):
        await anyio.connect_tcp("192.0.2.1", 80)
    assert info.group_contains(SocketConnectBlockedError)


def test_unix_sockets_stay_allowed(tmp_path: Path) -> None:
    left, right = socket.socketpair()  # what an asyncio loop wakes itself up with
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(str(tmp_path / "s"))
        server.listen()
        client.connect(str(tmp_path / "s"))
