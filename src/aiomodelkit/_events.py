"""Progress events: what the fetcher and the publisher report, and nothing prints by itself.

Pass a callback (``on_event=``) to receive them; the CLI turns them into rich progress
bars. Callbacks run on the event loop and must be quick. Inside, one :class:`Emitter` per
manager is handed down to whatever reports (the fetch, the transfer of each object, the
retry policy), so events never travel inside configuration values.

Process-wide observers (metrics, traces) :func:`subscribe` instead: they receive every event
of every manager and library, with the URL of the store it concerns. With none subscribed,
emitting costs one check of an empty tuple.
"""

from __future__ import annotations

import logging
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
    "FetchFinished",
    "ObjectDownloaded",
    "ObjectUploaded",
    "Retrying",
    "StoreRequest",
    "observed",
    "publish",
    "subscribe",
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
        reason: the kind of failure, one of a few words (``throttled``, ``server_error``,
            ``timeout``, ``truncated``, ``connection``): a metric label.
    """

    key: str
    attempt: int
    delay: float
    error: str
    reason: str = "connection"


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectUploaded(Event):
    """One object of a publication was uploaded."""

    key: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchFinished(Event):
    """A fetch returned: one per spec fetched, after its audit record.

    Attributes:
        spec: the spec asked for.
        version: the version it resolved to.
        source: where the version came from: ``store`` (downloaded by this fetch or one it
            shared), ``cache`` (already complete in the cache) or ``fallback`` (the store
            was unreachable: the newest cached match).
        size: the bytes downloaded (0 from the cache).
        objects: the objects delivered: downloaded (those of the whole version), or the
            files the spec names found in the cache (counted on disk, in a worker thread,
            only when someone listens).
        seconds: how long the fetch took.
        path: the local path, including the spec's sub-part.
        verified_with: the checksum the downloaded objects were verified with
            (``xxh3_128``, ``sha256``, ``md5``, ``size``, several joined by ``+``); None
            when nothing was downloaded.
        requests: the store requests sent for the asset during the fetch (retries
            included).
    """

    spec: str
    version: str
    source: str
    size: int
    objects: int
    seconds: float
    path: Path
    verified_with: str | None = None
    requests: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRequest:
    """One operation on a store ended: for process-wide listeners only (see :func:`subscribe`).

    Published by the store wrapper of every :class:`~aiomodelkit.AssetsManager`, and only
    while a listener is subscribed: with none, requests are not even timed. One operation
    is one HTTP request for reads (``GET``, including each range), ``HEAD`` and ``DELETE``;
    a ``LIST`` is one listing, however many pages it reads, and a ``PUT`` one upload,
    however many parts.

    Attributes:
        method: ``GET``, ``HEAD``, ``LIST``, ``PUT`` or ``DELETE``.
        key: the object key (the prefix for ``LIST``).
        outcome: how it ended: ``ok``, ``not_found``, ``not_modified``,
            ``precondition_failed``, ``throttled``, ``unavailable``, ``error`` or
            ``cancelled`` (see ``aiomodelkit.metrics``).
        seconds: from the request to its end (for ``GET``, the body's last byte).
    """

    method: str
    key: str
    outcome: str
    seconds: float


EventCallback = Callable[[Event], None]

Listener = Callable[[object, "str | None"], None]
"""A process-wide observer: called with every event (an :class:`Event`, a library's
``ModelEvent``...) and the URL of the store it concerns (None for library events)."""

_listeners: tuple[Listener, ...] = ()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Deliver every event of every manager and library in this process to ``listener``
    (on the event loop that emits it: keep it quick); returns the function that stops it.

    Example:
        >>> from pathlib import Path
        >>> seen = []
        >>> stop = subscribe(lambda event, store: seen.append(type(event).__name__))
        >>> publish(CacheHit(asset="a", version="1.0", path=Path(".")), None)
        >>> stop()
        >>> publish(CacheHit(asset="a", version="1.0", path=Path(".")), None)
        >>> seen
        ['CacheHit']
    """
    global _listeners  # the one process-wide registry, replaced whole
    _listeners = (*_listeners, listener)

    def stop() -> None:
        global _listeners
        _listeners = tuple(other for other in _listeners if other is not listener)

    return stop


def publish(event: object, store: str | None) -> None:
    """Hand ``event`` to the process-wide listeners, if any; a listener that raises is
    logged and skipped (observing must never break a fetch)."""
    for listener in _listeners:
        try:
            listener(event, store)
        except Exception:
            logging.getLogger("aiomodelkit").exception("event listener %r failed", listener)


def observed() -> bool:
    """Whether any process-wide listener is subscribed."""
    return bool(_listeners)


class Emitter:
    """Delivers events to one callback, or drops them when there is none.

    Example:
        >>> from pathlib import Path
        >>> seen = []
        >>> Emitter(seen.append).emit(CacheHit(asset="a", version="1.0", path=Path(".")))
        >>> [type(event).__name__ for event in seen]
        ['CacheHit']
    """

    __slots__ = ("_callback", "store")

    def __init__(self, callback: EventCallback | None = None, *, store: str | None = None) -> None:
        self._callback = callback
        self.store = store  # the URL of the store the events concern, for listeners

    @property
    def active(self) -> bool:
        """Whether anyone listens (hot loops skip building events when not)."""
        return self._callback is not None or bool(_listeners)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to the callback and the process-wide listeners, if any."""
        if self._callback is not None:
            self._callback(event)
        if _listeners:
            publish(event, self.store)
