"""Progress events: what the fetcher and the publisher report, and nothing prints by itself.

Pass a callback (``on_event=``) to receive them; the CLI turns them into rich progress
bars. Callbacks run on the event loop and must be quick. Inside, one :class:`Emitter` per
manager is handed down to whatever reports (the fetch, the transfer of each object, the
retry policy), so events never travel inside configuration values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AssetPublished",
    "AssetResolved",
    "BytesReceived",
    "CacheHit",
    "DownloadStarted",
    "Emitter",
    "Event",
    "EventCallback",
    "ObjectDownloaded",
    "ObjectUploaded",
    "Retrying",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every progress event.

    Attributes:
        asset: the asset name the event concerns.
    """

    asset: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetResolved(Event):
    """A spec was resolved to an exact version."""

    spec: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheHit(Event):
    """The version was already complete in the cache: nothing was downloaded."""

    version: str
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadStarted(Event):
    """Downloading a version began."""

    version: str
    objects: int
    total_bytes: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BytesReceived(Event):
    """A chunk of an object arrived."""

    key: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectDownloaded(Event):
    """One object was fully downloaded and verified."""

    key: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetPublished(Event):
    """A downloaded version was moved into its final place in the cache."""

    version: str
    path: Path
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrying(Event):
    """A transient error interrupted an object (or one range of it); it will be retried.

    Attributes:
        key: the object.
        attempt: the attempt that failed (1 for the first).
        delay: seconds until the next attempt.
        error: what went wrong (never credentials).
    """

    key: str
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectUploaded(Event):
    """One object of a publication was uploaded."""

    key: str
    size: int


EventCallback = Callable[[Event], None]


class Emitter:
    """Delivers events to one callback, or drops them when there is none.

    Example:
        >>> from pathlib import Path
        >>> seen = []
        >>> Emitter(seen.append).emit(CacheHit(asset="a", version="1.0", path=Path(".")))
        >>> [type(event).__name__ for event in seen]
        ['CacheHit']
    """

    __slots__ = ("_callback",)

    def __init__(self, callback: EventCallback | None = None) -> None:
        self._callback = callback

    @property
    def active(self) -> bool:
        """Whether anyone listens (hot loops skip building events when not)."""
        return self._callback is not None

    def emit(self, event: Event) -> None:
        """Deliver ``event``, if anyone listens."""
        if self._callback is not None:
            self._callback(event)
