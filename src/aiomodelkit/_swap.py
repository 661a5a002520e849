"""Zero-downtime swaps: a new instance of a loaded model replaces the one in service.

One swap is one transaction over a model and its loaded dependents:

1. build and load a new instance of the model on its new asset, then a new instance of each
   loaded dependent against the new instances, in dependency order, while the old ones
   keep serving (under a memory budget, the models involved are pinned meanwhile);
2. if any of those loads fails or is cancelled, close the new instances: nothing changed;
3. otherwise put every new instance in service at once (no ``await`` in between, so no
   caller ever sees a mix), then let the predictions already running on each old instance
   finish on it and close it, dependents first.

Both instances are in memory during a swap: a budget counts the new size from step 3.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._residency import asset_size
from ._slots import close_model, load_error
from ._status import ModelSwapFailed, ModelSwapped

if TYPE_CHECKING:
    from pathlib import Path

    from ._loader import Loader
    from ._model import Model
    from ._overrides import LocatedAsset
    from ._slots import Slot

__all__ = ["record_failure", "swap"]

logger = logging.getLogger("aiomodelkit")


@dataclass(slots=True)
class _Change:
    slot: Slot
    old: Model[Any, Any]
    path: Path | None
    located: LocatedAsset | None  # None: a dependent, reloaded on its own asset
    new: Model[Any, Any] | None = None
    size: int | None = None


def _affected(loader: Loader, key: str) -> list[str]:
    """``key`` and every loaded model depending on it, directly or not, dependencies first."""
    changed = {key}
    for other in loader.graph.order:
        slot = loader.slots[other]
        if other not in changed and slot.model is not None:
            if any(t in changed for t in slot.conf.model_dependencies.values()):
                changed.add(other)
    return [k for k in loader.graph.order if k in changed]


async def swap(
    loader: Loader, key: str, located: LocatedAsset, *, started: float
) -> list[ModelSwapped]:
    """Put a new instance of ``key`` on ``located`` in service, with its loaded dependents.

    ``key`` must be loaded and not loading; ``started`` (on the loader's clock) is when the
    fetch began, for the events' ``seconds``.

    Raises:
        Exception: the error of the load that failed; nothing changed then.
        RuntimeError: ``key`` or a dependent was evicted or replaced meanwhile.
    """
    changes = []
    for name in _affected(loader, key):
        slot = loader.slots[name]
        assert slot.model is not None
        mine = name == key
        path = located.path if mine else slot.status.asset_path
        changes.append(_Change(slot, slot.model, path, located if mine else None))
    books = loader.residency
    for change in changes:
        if books is not None:
            books.pin(change.slot.key)  # not evicted while its successor loads
    try:
        await _build(loader, changes)
    finally:
        for change in changes:
            if books is not None:
                books.unpin(change.slot.key)
    return await _commit(loader, changes, key=key, started=started)


async def _build(loader: Loader, changes: list[_Change]) -> None:
    built: dict[str, Model[Any, Any]] = {}
    try:
        for change in changes:
            slot = change.slot
            targets = slot.conf.model_dependencies
            dependencies: dict[str, Model[Any, Any]] = {}
            for local, target in targets.items():
                dependency = built[target] if target in built else loader.slots[target].model
                assert dependency is not None  # loaded dependents pin their dependencies
                dependencies[local] = dependency
            model = change.new = loader.instance(slot, change.path, dependencies)
            built[slot.key] = model
            await loader.load_instance(model)
            if loader.residency is not None:
                measured = model.memory_bytes()
                change.size = measured if measured is not None else await asset_size(change.path)
        if loader.closed:  # a reload that outlived its library
            raise RuntimeError("the library closed during the swap")
        for change in changes:
            if change.slot.model is not change.old:
                raise RuntimeError(f"model {change.slot.key!r} changed while its successor loaded")
    except BaseException:
        with anyio.CancelScope(shield=True):
            for change in reversed(changes):
                if change.new is not None and change.new.loaded:
                    await close_model(change.slot.key, change.new)
        raise


async def _commit(
    loader: Loader, changes: list[_Change], *, key: str, started: float
) -> list[ModelSwapped]:
    now = loader.now()
    events = []
    for change in changes:  # no await in this loop: every instance changes at once
        slot, located = change.slot, change.located
        slot.model = change.new
        old_version = slot.status.asset_version
        fields: dict[str, Any] = {}
        if located is not None:
            fields = {"asset_version": located.version, "asset_path": located.path}
            fields["asset_source"] = located.source
        if change.size is not None:
            fields["size_bytes"] = change.size
            assert loader.residency is not None
            loader.residency.admit(slot.key, change.size)
        loader.update(
            slot,
            **fields,
            swap_count=slot.status.swap_count + 1,
            swapped_at=now,
            failed_version=None,
            swap_error=None,
            load_count=slot.status.load_count + 1,
            last_used=now,
        )
        events.append(
            ModelSwapped(
                model=slot.key,
                at=now,
                old_version=old_version,
                new_version=slot.status.asset_version,
                dependency=None if located is not None else key,
                seconds=now - started,
            )
        )
    for event in events:
        loader.emit(event)
        # One audit record per swapped model (as per fetch): which version served when.
        record = {
            "event": "swap",
            "model": event.model,
            "old_version": event.old_version,
            "new_version": event.new_version,
            "dependency": event.dependency,
            "duration_s": round(event.seconds, 6),
        }
        logger.info(
            "model %r swapped from version %s to %s in %.3f s%s",
            event.model,
            event.old_version,
            event.new_version,
            event.seconds,
            f" (dependency {event.dependency!r} swapped)" if event.dependency else "",
            extra={"aiomodelkit": record},
        )
    with anyio.CancelScope(shield=True):  # the old instances close whatever happens
        for change in reversed(changes):
            await change.old._drained()
            await close_model(change.slot.key, change.old)
            change.old._loaded = False  # a caller still holding it gets a clear error
    return events


def record_failure(loader: Loader, key: str, version: str, exc: Exception) -> ModelSwapFailed:
    """Note on ``key``'s status that swapping to ``version`` failed; the old instance
    serves on. Logged as a warning, emitted as a :class:`ModelSwapFailed`."""
    slot = loader.slots[key]
    spec = slot.plan.spec
    asset = str(spec.with_version(version)) if spec is not None else None
    error = load_error(exc, key, f"swapping to version {version}", asset)
    loader.update(slot, failed_version=version, swap_error=error)
    logger.warning("%s; version %s keeps serving", error, slot.status.asset_version)
    event = ModelSwapFailed(
        model=key,
        at=loader.now(),
        version=slot.status.asset_version,
        failed_version=version,
        error=error,
    )
    loader.emit(event)
    return event
