"""The store the fleet starts from: pods → latency proxy → fault proxy (throttle) → SeaweedFS.

* **SeaweedFS** (the harness's :class:`~benchmarks.harness.services.Backends`): the S3
  gateway, real credentials, every listener on 127.0.0.1.
* **FaultProxy** in front of it, on its own event loop in a thread of this process: its
  ``Throttle`` rule is the hot prefix (every request into the bucket, any method, shares one
  budget), and it counts every request it receives, admitted or refused.
* **The latency proxy** in front of that, in its own process (the harness's ``rtt20``: 20 ms
  RTT, a 4 MiB window per connection): the pods' endpoint.

Latency outermost, so that the wide-area link is the pods' own: each pod's new connection
pays the handshake's extra round trip, and a "slow down" answer costs a round trip as it
does from S3 (a throttle in front of the latency would answer at loopback speed, and
retries would cost nothing). The fault proxy's own connections to SeaweedFS are loopback
and unpooled (``limit=0``), so it adds no queue of its own. A request's throttle slot is
held until its response has been handed to the latency proxy, at most one window (4 MiB)
before the pod has it.
"""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING

import anyio

from aiomodelkit.testing import FaultProxy, ProxyRule, Throttle
from benchmarks.harness.matrix import CONDITIONS
from benchmarks.harness.services import Backends, ProxyProcess, cpu_seconds
from benchmarks.workloads import publish_asset

from .common import BUCKET

if TYPE_CHECKING:
    from contextlib import ExitStack
    from pathlib import Path

    from benchmarks.harness.records import ProxyCounts

    from .common import Library

__all__ = ["Chain"]


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Chain:
    """The servers and proxies, started on ``stack`` (stopped when it closes).

    Args:
        throttle: the hot prefix's budget; None for a store that never refuses.
    """

    def __init__(self, stack: ExitStack, work: Path, throttle: Throttle | None) -> None:
        self.backends = Backends(stack, work, ["s3"])
        self.fault = stack.enter_context(FaultProxy(self.backends.endpoints["s3"], api="s3"))
        self.latency = ProxyProcess(self.fault.endpoint_url, CONDITIONS["rtt20"])
        stack.callback(self.latency.stop)
        self.throttle = throttle
        self._rule: ProxyRule | None = None

    @property
    def endpoint(self) -> str:
        """Where the pods connect: the latency proxy."""
        return self.latency.url

    @property
    def credentials(self) -> tuple[str, str]:
        """SeaweedFS's access key and secret."""
        return self.backends.credentials

    def publish(self, libraries: list[Library], root: Path) -> None:
        """Publish every asset of ``libraries`` straight to SeaweedFS (version 0.0)."""

        async def publish_all() -> None:
            for library in libraries:
                for asset in library.assets:
                    await publish_asset(self.backends.store("s3"), asset, root)

        anyio.run(publish_all)

    def reset(self) -> None:
        """Zero both proxies' counts and put a fresh throttle in place (a full bucket, no
        request in flight): each run meets the same cold prefix."""
        self.fault.reset()
        self.latency.reset()
        self._rule = None
        if self.throttle is not None:
            rule = ProxyRule(self.throttle, method=None, bucket=BUCKET)
            self._rule = self.fault.add(rule)

    def requests(self) -> tuple[int, dict[str, int]]:
        """Requests the fault proxy received since :meth:`reset`: in all, and by method."""
        by_method: dict[str, int] = {}
        for (method, _), count in self.fault.counts().items():
            by_method[method] = by_method.get(method, 0) + count
        return sum(by_method.values()), dict(sorted(by_method.items()))

    def throttled(self) -> int:
        """ "Slow down" answers sent since :meth:`reset`."""
        return self.fault.fired(self._rule) if self._rule is not None else 0

    def carried(self) -> ProxyCounts:
        """What the latency proxy carried since :meth:`reset` (``bytes_down``: from the store
        to the pods)."""
        return self.latency.counts()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of SeaweedFS, the latency proxy and this process (the fault
        proxy's thread; the launcher's own work is a few pipe reads)."""
        return {
            "server": cpu_seconds(self.backends.pids.get("s3")),
            "latency_proxy": cpu_seconds(self.latency.pid),
            "fault_proxy": _own_cpu(),
        }

    def check(self) -> None:
        """Raise if the fault proxy failed in itself (a bug, not a fault it injected)."""
        if errors := self.fault.errors:
            raise RuntimeError(f"the fault proxy failed: {errors[0]!r}")
