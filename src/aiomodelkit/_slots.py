"""One model's place in a library: its mutable state, its gate, and how it is closed.

The :class:`~aiomodelkit._loader.Loader` keeps one :class:`Slot` per configured model; the
library reads their statuses. Closing a model (at the end, or on eviction) never raises and
never hangs the library: ``close()`` gets :data:`CLOSE_TIMEOUT` seconds, shielded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import LoadError
from ._status import ModelState, ModelStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._graph import ModelConfiguration
    from ._model import Model
    from ._overrides import AssetPlan

__all__ = [
    "CLOSE_TIMEOUT",
    "Slot",
    "await_dependency_assets",
    "close_model",
    "initial_status",
    "release",
]

logger = logging.getLogger("aiomodelkit")
#: A model's close() gets this long (seconds) before the library moves on.
CLOSE_TIMEOUT = 30.0


def initial_status(key: str, conf: ModelConfiguration, plan: AssetPlan) -> ModelStatus:
    """The status of a model nothing has happened to yet."""
    return ModelStatus(
        key=key,
        model_type=conf.model_type,
        state=ModelState.PENDING,
        dependencies=tuple(conf.model_dependencies.values()),
        asset=plan.spec,
    )


@dataclass(slots=True, eq=False)
class Slot:
    """One model's mutable state inside a library."""

    key: str
    conf: ModelConfiguration
    plan: AssetPlan
    status: ModelStatus
    model: Model[Any, Any] | None = None
    running: anyio.Event | None = None  # set when the attempt in flight ends
    located: anyio.Event | None = None  # the gate: set once the next attempt has located


async def close_model(key: str, model: Model[Any, Any]) -> None:
    """Await ``model.close()`` under a timeout; errors are logged, not raised."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT) as scope:
        try:
            await model.close()
        except Exception:
            logger.exception("closing model %r failed", key)
    if scope.cancelled_caught:
        logger.error("closing model %r took over %.0f s", key, CLOSE_TIMEOUT)


def load_error(exc: Exception, key: str, what: str, asset: str | None) -> LoadError:
    """``exc`` as the one :class:`LoadError` of model ``key`` (``what`` failed), its cause
    chained; a LoadError of that model already says what happened and is kept as is."""
    if isinstance(exc, LoadError) and exc.model == key:
        return exc
    error = LoadError(f"{what} failed: {type(exc).__name__}: {exc}", model=key, asset=asset)
    error.__cause__ = exc
    return error


def release(slot: Slot) -> None:
    """Open ``slot``'s gate: its asset is located, or will not be by this attempt."""
    located, slot.located = slot.located, None
    if located is not None:
        located.set()


async def await_dependency_assets(slot: Slot, slots: Mapping[str, Slot]) -> None:
    """Wait until the assets of ``slot``'s dependencies are located (assets are fetched
    dependencies first: see :mod:`._loader`). Only gated dependencies are waited for; each
    gate opens when its model's attempt has located the asset or ended."""
    for target in slot.conf.model_dependencies.values():
        located = slots[target].located
        if located is not None:
            await located.wait()
