"""The proxies share the AsyncResource lifecycle: one owner at a time, in every combination."""

from __future__ import annotations

import pytest

from aiomodelkit._lifecycle import ResourceState
from aiomodelkit.testing import FaultProxy, LatencyProxy

UPSTREAM = "http://127.0.0.1:9"  # never contacted: nothing is sent through the proxies here


async def test_fault_proxy_refuses_a_second_owner() -> None:
    proxy = FaultProxy(UPSTREAM)
    async with proxy:
        assert proxy.endpoint_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already open"):
            await proxy.__aenter__()
        with pytest.raises(RuntimeError, match="already running"):
            proxy.start()
    assert proxy.resource_state is ResourceState.CLOSED
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.endpoint_url
    async with proxy:  # a closed proxy may run again
        pass


def test_fault_proxy_in_a_thread_refuses_a_second_owner() -> None:
    with FaultProxy(UPSTREAM) as proxy:
        with pytest.raises(RuntimeError, match="already running"):
            proxy.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.endpoint_url


def test_proxies_refuse_an_upstream_off_loopback() -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        FaultProxy("http://192.0.2.1:9000")
    with pytest.raises(ValueError, match="not a loopback address"):
        LatencyProxy(("192.0.2.1", 9000), rtt=0.001)
