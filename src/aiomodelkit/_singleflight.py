"""Single-flight and batching: concurrent callers share one execution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread

__all__ = ["Batcher", "Memo", "SingleFlight"]

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


class _Round:
    __slots__ = ("calls", "done", "error", "outcomes")

    def __init__(self) -> None:
        self.calls: list[Callable[[], Any]] = []
        self.done = anyio.Event()
        self.outcomes: list[tuple[bool, Any]] | None = None
        self.error: BaseException | None = None


class Batcher:
    """Runs the small blocking calls made in one pass of the event loop in one worker thread.

    The first caller leads a round: it yields once, so that the tasks started alongside it
    (one per model, say) add their calls, then runs them all, in order, in one
    worker-thread hop; each caller gets its own result or exception. Fifty warm-start
    lookups thus cost one hop (and at most one new thread) instead of fifty. A round holds
    at most ``MAX_CALLS`` calls; the next caller leads another. If a leader is cancelled
    before its round ran, each waiter tries again; a call that ran returns to its caller
    even if that caller was cancelled meanwhile (which it then sees at its next await).
    """

    #: Calls per round: enough for a warm start, few enough that slow disks still overlap.
    MAX_CALLS = 64

    def __init__(self) -> None:
        self._open: _Round | None = None

    async def run(self, fn: Callable[[], V]) -> V:
        """``fn()`` in a worker thread, in a round with its neighbours."""
        while True:
            current = self._open
            if current is None or len(current.calls) >= self.MAX_CALLS:
                return cast("V", await self._lead(fn))
            index = len(current.calls)
            current.calls.append(fn)
            # Shielded, as anyio.to_thread.run_sync is: a call that runs delivers its
            # outcome (a lock it took, say) before the caller sees its cancellation.
            with anyio.CancelScope(shield=True):
                await current.done.wait()
            if current.outcomes is not None:
                return cast("V", _unwrap(current.outcomes[index]))
            error = current.error
            assert error is not None  # a round ends with outcomes or an error
            if not isinstance(error, anyio.get_cancelled_exc_class()):
                raise error

    async def _lead(self, fn: Callable[[], Any]) -> Any:
        current = _Round()
        current.calls.append(fn)
        self._open = current
        try:
            try:
                await anyio.lowlevel.checkpoint()
            finally:
                if self._open is current:
                    self._open = None  # later callers start the next round
            current.outcomes = await anyio.to_thread.run_sync(_run_all, current.calls)
        except BaseException as exc:
            current.error = exc
            raise
        finally:
            current.done.set()
        return _unwrap(current.outcomes[0])


def _run_all(calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for fn in calls:
        try:
            outcomes.append((True, fn()))
        except Exception as exc:  # delivered to the call's own caller
            outcomes.append((False, exc))
    return outcomes


def _unwrap(outcome: tuple[bool, Any]) -> Any:
    ok, value = outcome
    if not ok:
        raise value
    return value
