"""Whether a store really honours conditional writes, and publishing safely when it does not.

Publishing is race-free only because every object is created with ``if_absent`` and the
index rewritten with ``if_match``. Several S3- and GCS-compatible servers (s3rver, pys3local,
gcp-storage-emulator, fake-gcs-server) accept those conditions and silently overwrite
anyway. So before the first publication to a store, :func:`conditions_honoured` probes it
once per process: a sentinel object written twice with ``if_absent`` must fail the second
time, and a write with a stale ``if_match`` token must fail while the current one succeeds;
the sentinel is removed afterwards. The answer is cached per store (type, URL, endpoint).

On a store that ignores conditions, publishing is refused with :class:`UnsafeStoreError`,
unless the user opts in (``allow_unsafe_publish``). Then a :class:`Lease` (an object beside
the asset's index naming its holder, best effort: two publishers starting in the same
instant may both believe they hold it) keeps well-behaved publishers apart, and a read-back
of the meta and the index after publishing detects an overwrite and says so.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio

from ._errors import (
    AssetNotFoundError,
    PreconditionFailedError,
    PublishConflictError,
    StoreError,
    StoreUnavailableError,
    UnsafeStoreError,
)
from .stores._base import read_small_object

if TYPE_CHECKING:
    from .stores._base import Store

__all__ = ["Lease", "conditions_honoured", "refuse_unsafe_store", "store_identity"]

logger = logging.getLogger("aiomodelkit")

#: Where the probe writes its sentinel, relative to the store prefix (removed afterwards).
PROBE_PREFIX = ".aiomodelkit-probe/"
#: How long a publishing lease holds when its holder never releases it (a crash).
LEASE_TTL = timedelta(minutes=10)
#: How long a publisher waits for another one's lease before giving up (seconds).
LEASE_WAIT = 120.0
#: The pause between writing the lease and reading it back (seconds).
LEASE_SETTLE = 0.1

_verdicts: dict[tuple[str, str, str], bool] = {}


def store_identity(store: Store) -> tuple[str, str, str]:
    """What identifies a store across instances: its type, URL and endpoint.

    Wrappers (``inner``) are looked through: a counted or lazy store is the store it wraps.
    """
    while (inner := getattr(store, "inner", None)) is not None:
        store = inner
    endpoint = getattr(store, "endpoint", None) or ""
    return type(store).__name__, store.url, str(endpoint)


async def conditions_honoured(store: Store) -> bool:
    """Whether ``store`` enforces ``if_absent`` and ``if_match`` (probed once per process).

    Raises:
        StoreUnavailableError: the store could not be asked (retry later).
        StorePermissionError: the store refuses writes.
    """
    if not store.supports_conditional_writes:
        return False
    identity = store_identity(store)
    if identity not in _verdicts:
        _verdicts[identity] = await _probe(store)
    return _verdicts[identity]


async def _probe(store: Store) -> bool:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        created = await store.put(key, b"probe", if_absent=True)
        honoured = True
        if await _accepted(store, key, if_absent=True):
            honoured = False
            logger.warning("%s accepts if-none-match writes but overwrites anyway", store.url)
        token = created.version_token
        if token is not None and await _accepted(store, key, if_match=_stale(token)):
            honoured = False
            logger.warning("%s accepts if-match writes with a stale token", store.url)
        return honoured
    except StoreUnavailableError:
        raise
    except PreconditionFailedError:
        return False  # even the first, unconditioned-in-effect create was refused: broken
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.delete(key)
            except StoreError as exc:  # never fail a publication over the sentinel
                logger.warning("could not remove the probe object %s: %s", key, exc)


async def _accepted(
    store: Store, key: str, *, if_absent: bool = False, if_match: str | None = None
) -> bool:
    try:
        await store.put(key, b"overwritten", if_absent=if_absent, if_match=if_match)
    except PreconditionFailedError:
        return False
    except StoreError as exc:
        if isinstance(exc, StoreUnavailableError):
            raise
        # The server refuses the condition itself (400, 501): it cannot enforce it either.
        logger.warning("%s refused a conditional write: %s", store.url, exc)
        return True
    return True


def _stale(token: str) -> str:
    """A token of the same form as ``token`` that cannot be current (generations are
    numbers, ETags are strings)."""
    return str(int(token) + 1) if token.isdigit() else f"{token}0"


def refuse_unsafe_store(store: Store, name: str) -> UnsafeStoreError:
    """The one error that explains why publishing to ``store`` is refused, and the way out."""
    return UnsafeStoreError(
        f"{store.url} accepts conditional writes but ignores them, so two publishers at once "
        "could overwrite each other's version: refusing to publish. To publish anyway, with a "
        "best-effort lease and a read-back that detects an overwrite, set allow_unsafe_publish "
        "(AIOMODELKIT_ALLOW_UNSAFE_PUBLISH=true, or --allow-unsafe-publish)",
        asset=name,
        store_url=store.url,
    )


@dataclass(frozen=True, slots=True)
class _Holder:
    id: str
    by: str
    expires: datetime

    def dump(self) -> bytes:
        data = {"id": self.id, "by": self.by, "expires": self.expires.isoformat()}
        return json.dumps(data).encode()

    @classmethod
    def load(cls, raw: bytes) -> _Holder | None:
        try:
            data = json.loads(raw)
            return cls(str(data["id"]), str(data["by"]), datetime.fromisoformat(data["expires"]))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as expired


class Lease:
    """A best-effort publishing lease on one asset: the object ``<name>.publishing``.

    Only for stores that ignore conditional writes, where nothing stronger exists. It keeps
    publishers that respect it apart, unless two take it in the same instant; the read-back
    after publishing catches what it lets through.

    Args:
        store: the store (conditional writes not enforced).
        name: the asset.
        holder: who publishes, for the message another publisher sees.
    """

    def __init__(self, store: Store, name: str, *, holder: str) -> None:
        self._store = store
        self._name = name
        self._key = f"{name}.publishing"
        self._me = _Holder(uuid.uuid4().hex, f"{holder}@{socket.gethostname()}", datetime.now(UTC))

    async def acquire(self, *, wait: float = LEASE_WAIT) -> None:
        """Take the lease, waiting up to ``wait`` seconds for another holder to let go.

        Raises:
            PublishConflictError: another publisher still holds it after ``wait`` seconds.
        """
        deadline = anyio.current_time() + wait
        pause = 0.05
        while True:
            current = await self._holder()
            if current is None or current.id == self._me.id or current.expires <= _now():
                self._me = _Holder(self._me.id, self._me.by, _now() + LEASE_TTL)
                await self._store.put(self._key, self._me.dump())
                # Last writer wins: let a publisher that read "free" with us write too,
                # then see whose lease survived.
                await anyio.sleep(LEASE_SETTLE)
                current = await self._holder()
                if current is not None and current.id == self._me.id:
                    return
            if anyio.current_time() + pause > deadline:
                raise self._held_by(current)
            logger.info("waiting for the publishing lease of %s", self._name)
            await anyio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def release(self) -> None:
        """Remove the lease if it is still ours (never raises: it expires anyway)."""
        with anyio.CancelScope(shield=True):
            try:
                current = await self._holder()
                if current is not None and current.id == self._me.id:
                    await self._store.delete(self._key)
            except StoreError as exc:
                logger.warning("could not release the publishing lease %s: %s", self._key, exc)

    async def _holder(self) -> _Holder | None:
        try:
            return _Holder.load(await read_small_object(self._store, self._key))
        except AssetNotFoundError:
            return None

    def _held_by(self, holder: _Holder | None) -> PublishConflictError:
        who = f"{holder.by} until {holder.expires:%Y-%m-%d %H:%M:%S} UTC" if holder else "another"
        return PublishConflictError(
            f"another publisher ({who}) is publishing {self._name!r}; retry later (a lease "
            f"left by a crash expires by itself, or delete {self._key!r} from the store)",
            asset=self._name,
            key=self._key,
            store_url=self._store.url,
        )


def _now() -> datetime:
    return datetime.now(UTC)
