"""Issue 13, item 7: SIGTERM (``docker stop``, Kubernetes) stops a command as Ctrl-C does.

A real ``aiomodelkit assets fetch`` process downloads from moto's S3 server through a
bandwidth-capped loopback link, is signalled once its staging copy exists, and must exit
promptly with status 128 + the signal, one ``error: interrupted`` line, no traceback, and no
staging copy left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from aiomodelkit import AssetsManager, Settings
from aiomodelkit._values import MiB
from aiomodelkit.stores import S3Store
from aiomodelkit.testing import ThreadedLatencyProxy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from aiomodelkit.testing import MotoServer

SIZE = 24 * MiB
RATE_MBIT = 40.0  # 24 MiB take ~5 s: time to signal mid-download, not long enough to finish


@pytest.fixture
async def published(moto_server: MotoServer, tmp_path: Path) -> str:
    """A 24 MiB asset ``models/big:0.0`` in moto's bucket ``signals``."""
    moto_server.reset()
    moto_server.create_bucket("signals")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(SIZE))
    store = S3Store(
        "signals",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    settings = Settings(assets_dir=tmp_path / "unused", pushed_by="test")
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.new(weights, "models/big")
    return moto_server.endpoint_url


@pytest.fixture
def slow_link(published: str) -> Iterator[str]:
    host, port = published.removeprefix("http://").split(":")
    with ThreadedLatencyProxy((host, int(port)), rtt=0.002, rate_mbit=RATE_MBIT) as proxy:
        yield proxy.url


def _staging(cache: Path) -> list[Path]:
    folder = cache / "models" / "big"
    return [path for path in folder.iterdir() if path.name != "0.0"] if folder.exists() else []


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signalled_fetch_removes_its_staging_and_says_interrupted(
    slow_link: str, tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    cache = tmp_path / "cache"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child needs a PATH
        "HOME": str(tmp_path),
        "AIOMODELKIT_STORAGE": "s3://signals",
        "AIOMODELKIT_ASSETS_DIR": str(cache),
        "AWS_ENDPOINT_URL": slow_link,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if "PYTHONPATH" in os.environ:  # noqa: TID251 - the child imports what this test imports
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # noqa: TID251
    process = subprocess.Popen(
        [sys.executable, "-m", "aiomodelkit", "assets", "fetch", "models/big:0.0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _staging(cache):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        time.sleep(0.3)  # well into the download
        signalled = time.monotonic()
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=20)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, stderr
    assert took < 3.0, f"took {took:.1f} s to stop"
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in stderr
    assert stdout == ""
    assert _staging(cache) == []
    assert not (cache / "models" / "big" / "0.0").exists()


def test_a_system_exit_inside_a_command_ends_the_process(tmp_path: Path) -> None:
    """rich raises SystemExit when stdout is a closed pipe (``aiomodelkit ... | head``):
    raised in the command's task, after a worker thread ran, it must not hang the exit."""
    code = """
import anyio.to_thread
from aiomodelkit._cli._output import run

async def command() -> None:
    await anyio.to_thread.run_sync(lambda: None)
    raise SystemExit(3)

run(command)
"""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}  # noqa: TID251
    if "PYTHONPATH" in os.environ:  # noqa: TID251 - the child imports what this test imports
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # noqa: TID251
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
