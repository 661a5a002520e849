"""Version watch: partial specs re-resolved while serving, newer versions swapped in.

Every ``watch_interval`` seconds at most (each wait is drawn between 85 % and 100 % of it,
so that a fleet does not read in step and a new version is seen within one interval), the
watcher reads the ``.versions`` index of each asset name that a loaded, watchable model uses
(a partial spec such as ``name`` or ``name:1``, not covered by a lock file, fetched through
a store): one conditional request per name, however many models share it. An unchanged
index costs that one request and nothing else; a changed one is resolved for each of those
models, and a model whose newest matching version is newer than the one in service is
fetched through the manager (same engine, same budget) and swapped (:mod:`._swap`), one model
after another in dependency order.

A failed swap leaves the old instance serving and its status naming the failed version. That
version is tried again only once the index changes again and, after ``n`` failures in a
row, not before ``interval * 2**n`` seconds (at most :data:`MAX_BACKOFF`). A store that
cannot be read is logged and tried at the next interval. :meth:`Watcher.check` with
``force`` (what ``ModelLibrary.reload`` calls) reads unconditionally and ignores the backoff.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio

from ._errors import AssetNotFoundError, ModelkitError
from ._overrides import LocatedAsset
from ._swap import record_failure, swap
from ._trace import span

if TYPE_CHECKING:
    from collections.abc import Collection

    from ._fetch import FetchedAsset
    from ._loader import Loader
    from ._resolve import IndexSnapshot
    from ._spec import AssetSpec
    from ._status import ModelEvent
    from ._versioning import VersioningSystem

__all__ = ["MAX_BACKOFF", "Source", "Watcher"]

logger = logging.getLogger("aiomodelkit")
#: The longest wait (seconds) before a failed version is tried again.
MAX_BACKOFF = 600.0


class Source(Protocol):
    """What the watch needs of an :class:`~aiomodelkit.AssetsManager`."""

    @property
    def versioning(self) -> VersioningSystem: ...

    def watches(self, spec: AssetSpec) -> bool: ...

    async def versions_since(self, name: str, token: str | None) -> IndexSnapshot | None: ...

    async def release(self, name: str, version: str) -> None: ...

    async def fetch(self, spec: AssetSpec) -> FetchedAsset: ...


@dataclass(slots=True)
class _IndexState:
    token: str | None = None  # of the last index acted on
    failures: int = 0  # failed swaps in a row
    retry_at: float = 0.0  # on the loader's clock


class Watcher:
    """Watches the indexes of one library's partial specs and swaps newer versions in.

    Args:
        loader: the library's loader (its slots are what is swapped).
        manager: reads the indexes and fetches the new versions.
        interval: seconds between checks for :meth:`run`, or None (then only
            :meth:`check` runs, on demand).
    """

    def __init__(self, loader: Loader, manager: Source, *, interval: float | None) -> None:
        self._loader = loader
        self._manager = manager
        self.interval = interval
        self._indexes: dict[str, _IndexState] = {}
        self._lock = anyio.Lock()

    def watched(self) -> dict[str, list[str]]:
        """The loaded models whose version may change, by asset name, dependencies first."""
        names: dict[str, list[str]] = {}
        for key in self._loader.graph.order:
            slot = self._loader.slots[key]
            spec = slot.plan.spec
            if spec is None or slot.plan.path is not None or slot.model is None:
                continue
            # Located in the override dir: not the store's to change.
            if slot.running is None and slot.status.asset_source in ("cache", "store"):
                if self._manager.watches(spec):
                    names.setdefault(spec.name, []).append(key)
        return names

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        assert self.interval is not None
        while True:
            await anyio.sleep(self.interval * random.uniform(0.85, 1.0))
            try:
                await self.check()
            except Exception:  # a bug here must not stop the models serving
                logger.exception("version watch: the check failed; next in %s s", self.interval)

    async def check(
        self, keys: Collection[str] | None = None, *, force: bool = False
    ) -> list[ModelEvent]:
        """Read the indexes (of ``keys``' assets, or all) and swap in what is newer.

        Returns:
            the :class:`ModelSwapped` and :class:`ModelSwapFailed` events of this check.
        """
        async with self._lock:  # one check at a time: swaps never interleave
            watched = every = self.watched()
            if keys is not None:
                watched = {n: [k for k in ks if k in keys] for n, ks in watched.items()}
                watched = {n: ks for n, ks in watched.items() if ks}
            snapshots: dict[str, IndexSnapshot | None] = {}

            async def read(name: str) -> None:
                snapshots[name] = await self._read(name, force=force)

            async with anyio.create_task_group() as tg:
                for name in watched:
                    tg.start_soon(read, name)
            events: list[ModelEvent] = []
            for name, models in watched.items():
                snapshot = snapshots.get(name)
                if snapshot is not None:
                    # The token is kept only when every model of the name was considered:
                    # after reload(key), the others still see the index as changed.
                    whole = len(models) == len(every[name])
                    events += await self._apply(name, models, snapshot, force=force, whole=whole)
            return events

    async def _read(self, name: str, *, force: bool) -> IndexSnapshot | None:
        state = self._indexes.setdefault(name, _IndexState())
        try:
            return await self._manager.versions_since(name, None if force else state.token)
        except ModelkitError as exc:
            logger.warning("version watch: cannot read the versions of %r: %s", name, exc)
            return None

    async def _apply(
        self, name: str, keys: list[str], snapshot: IndexSnapshot, *, force: bool, whole: bool
    ) -> list[ModelEvent]:
        loader, state = self._loader, self._indexes[name]
        versioning = self._manager.versioning
        events: list[ModelEvent] = []
        deferred = False
        for key in keys:
            slot = loader.slots[key]
            spec, current = slot.plan.spec, slot.status.asset_version
            assert spec is not None
            try:
                newest = versioning.resolve(snapshot.versions, spec.version, asset=name)
            except AssetNotFoundError:
                continue  # nothing matches any more: keep what serves
            newer = current is None or versioning.sort_key(newest) > versioning.sort_key(current)
            if not newer:
                continue
            if newest == slot.status.failed_version and not force and loader.now() < state.retry_at:
                deferred = True  # the index is read in full again until the backoff ends
                continue
            if slot.model is None or slot.running is not None:
                continue  # evicted or loading meanwhile: its next load resolves afresh
            started = loader.now()
            try:
                with span("aiomodelkit.model.swap", model=key, version=newest):
                    fetched = await self._manager.fetch(spec.with_version(newest))
                    located = LocatedAsset(
                        fetched.path, fetched.version, "cache" if fetched.from_cache else "store"
                    )
                    events += await swap(loader, key, located, started=started)
            except Exception as exc:  # reported on the status: serving goes on
                events.append(record_failure(loader, key, newest, exc))
                state.failures += 1
                backoff = (self.interval or 1.0) * 2**state.failures
                state.retry_at = loader.now() + min(backoff, MAX_BACKOFF)
            else:
                state.failures = 0
                if current is not None and not self._serves(name, current):
                    await self._manager.release(name, current)  # prunable again
        if whole and not deferred:
            state.token = snapshot.token
        return events

    def _serves(self, name: str, version: str) -> bool:
        """Whether a loaded model still uses version ``version`` of asset ``name``."""
        return any(
            slot.model is not None
            and slot.plan.spec is not None
            and slot.plan.spec.name == name
            and slot.status.asset_version == version
            for slot in self._loader.slots.values()
        )
