"""Many models in bounded memory: which models stay loaded, and which one goes next (issue 15).

With ``max_loaded_models`` or ``max_loaded_bytes`` set, a library loads models on first use
and, before a model loads, closes the least recently used loaded ones until it fits. The
:class:`Residency` keeps the books; the loader does the loading and the closing.

* **Size.** A model counts ``memory_bytes()`` (measured after ``_load``), else its asset's
  size on disk. Before its first load only the disk size is known, so that is what a load
  reserves; once loaded, the real size replaces it and more models are evicted if needed.
* **Pins.** The models listed in ``required_models``, the dependencies of every model that
  is loaded, loading or closing, and a model while its ``aget`` is in progress are never
  evicted.
* **Concurrency.** Loads of different models reserve their room and then run at once; a
  load that does not fit beside the others' reservations waits for one of them (or a
  closing model) to finish, instead of failing. A load fails only if the model cannot fit
  at all: bigger than the budget on its own, or beside pinned models alone.
* **In-flight predictions.** An evicted model is detached at once (no new caller gets it),
  then closed when its last running prediction returns; until then it still counts.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._errors import LoadError
from ._values import format_size

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from pathlib import Path

__all__ = ["Residency", "asset_size"]


class Residency:
    """The loaded, loading and closing models of one library, against one budget.

    Args:
        max_models: at most this many models counted at once, or None.
        max_bytes: at most this many bytes counted at once, or None.
        pinned: keys never evicted (the library's ``required_models``).
        evict: detaches a loaded model at once, then closes it once idle; awaited.

    Example:
        >>> async def evict(key: str) -> None:
        ...     print("closing", key)
        >>> async def main() -> list[str]:
        ...     books = Residency(max_models=2, max_bytes=None, pinned=(), evict=evict)
        ...     for key in "abc":
        ...         await books.reserve(key, 0)
        ...         books.admit(key, 0)
        ...     return books.loaded()
        >>> anyio.run(main)
        closing a
        ['b', 'c']
    """

    def __init__(
        self,
        *,
        max_models: int | None,
        max_bytes: int | None,
        pinned: Iterable[str],
        evict: Callable[[str], Awaitable[None]],
    ) -> None:
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._pinned = frozenset(pinned)
        self._evict = evict
        self._resident: dict[str, int] = {}  # key -> size, least recently used first
        self._reserved: dict[str, int] = {}  # loads in progress
        self._closing: dict[object, int] = {}  # evicted, waiting for their predictions
        self._pins: Counter[str] = Counter()  # by the loaded dependents of a model
        self._held: Counter[str] = Counter()  # by callers until their aget returns
        self._changed = anyio.Event()

    def budget(self) -> str:
        """The budget in words, for error messages."""
        parts = []
        if self.max_models is not None:
            parts.append(f"max_loaded_models={self.max_models}")
        if self.max_bytes is not None:
            parts.append(f"max_loaded_bytes={format_size(self.max_bytes)}")
        return ", ".join(parts)

    def loaded(self) -> list[str]:
        """The loaded keys, least recently used first."""
        return list(self._resident)

    def pin(self, key: str) -> None:
        """Keep ``key`` loaded until a matching :meth:`unpin`."""
        self._pins[key] += 1

    def unpin(self, key: str) -> None:
        """Undo one :meth:`pin`."""
        self._pins[key] -= 1
        if self._pins[key] <= 0:
            del self._pins[key]
            self._signal()

    def hold(self, key: str) -> None:
        """Keep ``key`` loaded while a caller waits for it; a load that finds every other
        model held waits for the hold to end instead of failing."""
        self._held[key] += 1

    def unhold(self, key: str) -> None:
        """Undo one :meth:`hold`."""
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]
            self._signal()

    def touch(self, key: str) -> None:
        """Mark ``key`` as the most recently used, if it is loaded."""
        size = self._resident.pop(key, None)
        if size is not None:
            self._resident[key] = size

    def check_alone(self, key: str, size: int, *, asset: str | None = None) -> None:
        """Refuse a model bigger than the whole budget.

        Raises:
            LoadError: naming the model, its size and the budget.
        """
        if self.max_bytes is not None and size > self.max_bytes:
            raise LoadError(
                f"model {key!r} needs {format_size(size)}, more than the whole budget "
                f"({self.budget()})",
                model=key,
                asset=asset,
            )

    async def reserve(self, key: str, size: int, *, asset: str | None = None) -> None:
        """Make room for ``key`` (``size`` bytes), evicting the least recently used
        unpinned models, then count it as loading. Cancelled while waiting, it reserves
        nothing; an eviction it started still completes (the close is shielded).

        Raises:
            LoadError: the model cannot fit, even once every unpinned model is closed.
        """
        self.check_alone(key, size, asset=asset)
        while not self._fits(key, size):
            victim = self._victim()
            if victim is not None:
                await self._close(victim)
                # The close is shielded: a caller cancelled meanwhile stops here, not later.
                await anyio.lowlevel.checkpoint_if_cancelled()
            elif self._reserved or self._closing or any(k in self._held for k in self._resident):
                await self._wait()  # a load, a close or a caller in progress will move on
            else:
                raise LoadError(
                    f"model {key!r} ({format_size(size)}) does not fit beside the pinned "
                    f"models {sorted(self._resident)} ({self.budget()})",
                    model=key,
                    asset=asset,
                )
        self._reserved[key] = size

    async def settle(self, key: str, size: int) -> None:
        """Replace ``key``'s reservation with its measured size and evict the least
        recently used unpinned models until the budget holds again, as far as possible:
        it never waits for other loads, so a model bigger than its asset may overshoot
        the budget until the next load."""
        self._reserved[key] = size
        while not self._fits(key, size) and (victim := self._victim()) is not None:
            await self._close(victim)

    def admit(self, key: str, size: int) -> None:
        """``key`` loaded: count it as loaded, most recently used."""
        self._reserved.pop(key, None)
        self._resident[key] = size
        self._signal()

    def release(self, key: str) -> None:
        """``key``'s load ended without it (failed or cancelled)."""
        if self._reserved.pop(key, None) is not None:
            self._signal()

    # -- the books --------------------------------------------------------------------------

    def _fits(self, key: str, size: int) -> bool:
        others = [s for k, s in self._reserved.items() if k != key]
        others += self._resident.values()
        others += self._closing.values()
        if self.max_models is not None and len(others) + 1 > self.max_models:
            return False
        return self.max_bytes is None or sum(others) + size <= self.max_bytes

    def _victim(self) -> str | None:
        for key in self._resident:
            if key not in self._pinned and not self._pins[key] and not self._held[key]:
                return key
        return None

    async def _close(self, key: str) -> None:
        token = object()
        self._closing[token] = self._resident.pop(key)
        try:
            with anyio.CancelScope(shield=True):
                await self._evict(key)
        finally:
            del self._closing[token]
            self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait(self) -> None:
        await self._changed.wait()


async def asset_size(path: Path | None) -> int:
    """The bytes of an asset on disk (a file, or every file under a directory); 0 if none."""

    def measure() -> int:
        if path is None:
            return 0
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    return await anyio.to_thread.run_sync(measure)
