"""The processes the harness runs beside the peers, and how it samples them.

:class:`Backends` (SeaweedFS for S3, fake-gcs-server for GCS, Azurite for Azure, through
``aiomodelkit.testing``), :class:`ProxyProcess` (the latency proxy, :mod:`.proxy`, as a
child process) and :class:`Bystander` (an idle ticker, ``runner --bystander``); CPU seconds
of any of them by pid.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiomodelkit.stores import AzureStore, GCSStore, S3Store, Store
from aiomodelkit.testing import AzuriteServer, FakeGCSServer, SeaweedFSServer
from benchmarks.workloads import PREFIX

from .peers import clean_env
from .records import LagSummary, ProxyCounts

if TYPE_CHECKING:
    from contextlib import ExitStack

    from .matrix import Condition

__all__ = ["BUCKET", "Backends", "Bystander", "ProxyProcess", "cpu_seconds", "window_lag"]

# Bench-only dependency, absent from the typecheck environment: imported by name, typed Any.
psutil: Any = importlib.import_module("psutil")

REPO = Path(__file__).resolve().parents[2]
BUCKET = "bench"


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _child_pid(part: str) -> int | None:
    for child in psutil.Process().children(recursive=True):
        try:
            if part in child.name():
                return int(child.pid)
        except psutil.Error:
            continue
    return None


class Backends:
    """The object-store servers, and how to reach them directly."""

    def __init__(self, stack: ExitStack, work: Path, stores: list[str]) -> None:
        self.endpoints: dict[str, str] = {}
        self.pids: dict[str, int | None] = {}
        self.weed: SeaweedFSServer | None = None
        self.azurite: AzuriteServer | None = None
        if "s3" in stores:
            weed = stack.enter_context(SeaweedFSServer(work / "seaweedfs"))
            weed.create_bucket(BUCKET)
            self.weed = weed
            self.endpoints["s3"] = weed.endpoint_url
            self.pids["s3"] = _child_pid("weed")
        if "gcs" in stores:
            gcs = stack.enter_context(FakeGCSServer())
            gcs.create_bucket(BUCKET)
            self.endpoints["gcs"] = gcs.endpoint_url
            self.pids["gcs"] = _child_pid("fake-gcs")
        if "azure" in stores:
            azurite = stack.enter_context(AzuriteServer())
            azurite.create_container(BUCKET)
            self.azurite = azurite
            self.endpoints["azure"] = azurite.endpoint_url
            self.pids["azure"] = _child_pid("node")

    @property
    def credentials(self) -> tuple[str, str]:
        """SeaweedFS's access key and secret."""
        assert self.weed is not None
        return self.weed.access_key, self.weed.secret_key

    def credentials_of(self, kind: str) -> tuple[str, str]:
        """What a peer of ``kind`` signs with: S3's key and secret, Azure's account and key
        (GCS: none)."""
        if kind == "s3":
            return self.credentials
        if kind == "azure":
            assert self.azurite is not None
            return self.azurite.account, self.azurite.account_key
        return "", ""

    def store(self, kind: str) -> Store:
        """An unopened store of ``kind`` (``s3``, ``gcs`` or ``azure``), straight to the server."""
        if kind == "azure":
            account, key = self.credentials_of("azure")
            return AzureStore(
                BUCKET,
                PREFIX,
                account_url=f"{self.endpoints['azure']}/{account}",
                account_key=key,
            )
        if kind == "s3":
            key, secret = self.credentials
            return S3Store(
                BUCKET,
                PREFIX,
                endpoint_url=self.endpoints["s3"],
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                region_name="us-east-1",
            )
        return GCSStore(BUCKET, PREFIX, api_root=self.endpoints["gcs"])


class ProxyProcess:
    """The latency proxy as a child process (its CPU is measured apart from the client's)."""

    def __init__(self, upstream: str, condition: Condition) -> None:
        host_port = upstream.removeprefix("http://")
        command = [sys.executable, "-m", "benchmarks.harness.proxy", "--upstream", host_port]
        command += ["--rtt-ms", str(condition.rtt_ms), "--control"]
        if condition.rate_mbit is not None:
            command += ["--rate-mbit", str(condition.rate_mbit)]
        if condition.window is not None:
            command += ["--window", str(condition.window)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=clean_env(),
        )
        line = self._readline()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def _command(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._readline())
        return answer

    def reset(self) -> None:
        """Zero the proxy's counters."""
        self._command("reset")

    def counts(self) -> ProxyCounts:
        """What the proxy saw since the last :meth:`reset`."""
        stats = self._command("stats")
        return ProxyCounts(
            requests=stats["total_requests"],
            by_method=stats["requests"],
            connections=stats["connections"],
            bytes_down=stats["bytes_down"],
        )

    @property
    def pid(self) -> int:
        """The proxy process's pid."""
        return self.process.pid

    def stop(self) -> None:
        """Stop the proxy (terminate, then kill); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Bystander:
    """An idle asyncio process ticking beside a run (``runner --bystander``): the loop lag
    the machine's scheduling alone causes while the run's processes share the cores."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.harness.runner", "--bystander"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=clean_env(),
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "READY":
            self.process.kill()
            raise RuntimeError("the bystander ticker did not start")

    def stop(self) -> list[tuple[float, float]]:
        """Stop it; its samples, ``(epoch seconds, lag seconds)``."""
        try:
            out, _ = self.process.communicate("", timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return []
        lines = out.strip().splitlines()
        return [(t, lag) for t, lag in json.loads(lines[-1])] if lines else []


def window_lag(
    samples: list[tuple[float, float]], started: float | None, ended: float | None
) -> LagSummary | None:
    """The lag summary of the samples taken between ``started`` and ``ended`` (epoch
    seconds; every sample when either is unknown)."""
    if started is not None and ended is not None:
        samples = [s for s in samples if started <= s[0] <= ended]
    return LagSummary.of([lag for _, lag in samples])
