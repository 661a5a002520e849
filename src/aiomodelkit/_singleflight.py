"""Single-flight: concurrent callers asking for the same key share one execution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

__all__ = ["Memo", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Call(Generic[V]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """Runs ``fn`` once per key at a time; callers that arrive meanwhile wait and share.

    If the running call is cancelled (its caller went away), a waiter takes over and runs
    it again instead of inheriting the cancellation. Errors are shared.
    """

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """Run ``fn`` for ``key``, or wait for the run already in progress."""
        while True:
            call = self._calls.get(key)
            if call is None:
                return await self._lead(key, fn)
            await call.done.wait()
            if call.error is None:
                return call.value  # type: ignore[return-value]
            if not isinstance(call.error, anyio.get_cancelled_exc_class()):
                raise call.error

    async def _lead(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        call: _Call[V] = _Call()
        self._calls[key] = call
        try:
            call.value = await fn()
            return call.value
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            del self._calls[key]
            call.done.set()


class Memo(Generic[K, V]):
    """Single-flight plus a memory of successful results: each key succeeds at most once."""

    def __init__(self) -> None:
        self._flight: SingleFlight[K, V] = SingleFlight()
        self._results: dict[K, V] = {}

    async def get(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """The result for ``key``, computing it once."""
        if key in self._results:
            return self._results[key]

        async def compute() -> V:
            value = await fn()
            self._results[key] = value
            return value

        return await self._flight.run(key, compute)
