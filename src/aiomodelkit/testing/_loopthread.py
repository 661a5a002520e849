"""An async resource held open on its own event loop in a daemon thread, for sync callers.

The proxies are asyncio servers. ``async with`` runs one on the caller's loop; a sync test
(or one that wants the proxy off the loop under test) uses ``with``, which runs it here:
:class:`LoopThread` opens the resource on a private loop (``asyncio.run`` in a daemon
thread), keeps it open until :meth:`LoopThread.stop`, then closes it on that same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from aiomodelkit._lifecycle import AsyncResource

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Runs one :class:`~aiomodelkit._lifecycle.AsyncResource` on a loop in a daemon thread.

    Args:
        resource: what to open (entered on the thread's loop, closed there on stop).
        name: the thread's name.
    """

    def __init__(self, resource: AsyncResource, *, name: str) -> None:
        self._resource = resource
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        """Whether the thread holds the resource open."""
        return self._thread is not None

    def start(self, timeout: float) -> None:
        """Open the resource on a new thread's loop; returns once it is open.

        Raises:
            RuntimeError: it is already running, did not open within ``timeout`` seconds, or
                failed to open (chained from the cause).
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=lambda: asyncio.run(self._main(ready, failure)), name=self._name, daemon=True
        )
        thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"{self._name} did not start within {timeout} s")
        if failure:
            thread.join()
            raise RuntimeError(f"{self._name} could not start: {failure[0]!r}") from failure[0]
        self._thread = thread

    async def _main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            await self._resource.__aenter__()
        except Exception as exc:  # reported by start(), in the caller's thread
            failure.append(exc)
            ready.set()
            return
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._resource.aclose()

    def call(self, function: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Run ``function()`` on the thread's loop and return its result.

        Raises:
            RuntimeError: the thread is not running.
            TimeoutError: it took longer than ``timeout`` seconds.
        """
        if self._loop is None or self._thread is None:
            raise RuntimeError(f"{self._name} is not running")
        return asyncio.run_coroutine_threadsafe(function(), self._loop).result(timeout)

    def stop(self) -> None:
        """Close the resource and end the thread; idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        self._thread = self._loop = self._stopping = None
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
