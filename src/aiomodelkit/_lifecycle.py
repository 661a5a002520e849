"""One lifecycle for every async resource: ``async with``, idempotent ``aclose()``, a guard.

Stores, the assets manager and the test servers all hold something that must be opened
before use and released after (a client, a connection pool, a listening socket). Each
subclass writes two hooks and inherits the rest::

    class Client(AsyncResource):
        async def _aopen(self) -> None:      # acquire; on failure, release what it took
            self._session = await connect()

        async def _aclose(self) -> None:     # release; runs shielded from cancellation
            await self._session.close()

Entering a resource that is already open raises :class:`RuntimeError` (two owners would
close it under each other); after :meth:`AsyncResource.aclose` it may be entered again.
A resource with nothing to hold (an in-memory or local-directory store) sets
``_shareable = True``: it may then be entered by several owners at once, and its hooks do
nothing.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar, Self

import anyio

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["AsyncResource", "ResourceState"]


class ResourceState(enum.Enum):
    """Where a resource is in its life."""

    UNOPENED = "unopened"
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class AsyncResource:
    """Base of our async context managers (see the module docstring)."""

    #: Nothing to open: any number of owners may enter it at once.
    _shareable: ClassVar[bool] = False
    # A class-level default, so that subclasses need not call ``super().__init__()``.
    _resource_state: ResourceState = ResourceState.UNOPENED

    @property
    def resource_state(self) -> ResourceState:
        """Unopened, opening, open, closing or closed."""
        return self._resource_state

    async def _aopen(self) -> None:
        """Acquire what the resource holds; release anything taken before raising."""

    async def _aclose(self) -> None:
        """Release what :meth:`_aopen` acquired (runs shielded from cancellation)."""

    async def __aenter__(self) -> Self:
        if self._shareable:
            return self
        if self._resource_state in (ResourceState.OPENING, ResourceState.OPEN):
            raise RuntimeError(f"{self!r} is already open")
        self._resource_state = ResourceState.OPENING
        try:
            await self._aopen()
        except BaseException:
            self._resource_state = ResourceState.CLOSED
            raise
        self._resource_state = ResourceState.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the resource; idempotent, and safe on one that never opened."""
        if self._shareable or self._resource_state is not ResourceState.OPEN:
            return
        self._resource_state = ResourceState.CLOSING
        try:
            with anyio.CancelScope(shield=True):
                await self._aclose()
        finally:
            self._resource_state = ResourceState.CLOSED
