"""Where the demo's assets live: an embedded S3 server if the test extras are installed.

Nothing to install: with ``moto[server]`` (the ``test`` dependency group) and the ``s3``
extra, the demo starts moto's S3 server as a subprocess on a free loopback port and puts a
:class:`~aiomodelkit.testing.LatencyProxy` in front of it, a real TCP link with a round-trip
time that counts HTTP requests on the wire. Without them (or if moto does not start), a
local folder sits behind :class:`~aiomodelkit.testing.InstrumentedStore`, which adds the
same round-trip time to each request in process.

Either way the assets are published straight to the store (no latency: the publishing is
not what the demo measures) and fetched across the link.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.to_thread

from ._errors import ConfigError
from .stores._local import LocalStore
from .testing import InstrumentedStore, LatencyProxy, MotoServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from ._values import StoreOptions
    from .stores._base import Store
    from .stores._s3 import S3Store

__all__ = ["Remote", "RemoteKind", "open_remote"]

RemoteKind = Literal["auto", "moto", "local"]
"""``auto``: moto if it is installed, else the local folder; or force one of them."""

BUCKET = "aiomodelkit-demo"
#: What to install for the embedded S3 server, in messages.
MOTO_HINT = "pip install 'moto[server]' 'aiomodelkit[s3]'"


@dataclass(frozen=True, slots=True)
class Remote:
    """A store to publish to and a link to fetch across.

    Attributes:
        description: what it is, for the user (``embedded S3 (moto 5.2.5) ...``).
        detail: how the link works, or why there is no embedded S3 server.
        rtt: the link's round-trip time, in seconds.
        direct: a new, unopened store without the link (for publishing).
        linked: a new, unopened store across the link (for fetching).
        requests: requests sent across the link so far (by every ``linked`` store).
    """

    description: str
    detail: str
    rtt: float
    direct: Callable[[], Store]
    linked: Callable[[], Store]
    requests: Callable[[], int]


@asynccontextmanager
async def open_remote(
    root: Path, *, rtt: float, kind: RemoteKind, options: StoreOptions
) -> AsyncIterator[Remote]:
    """Start the demo's store; stop it (and any server process) on exit, even when cancelled.

    Args:
        root: an empty directory for the local folder store (unused with moto).
        rtt: the link's round-trip time, in seconds.
        kind: ``auto``, ``moto`` or ``local``.
        options: client tuning for the stores.

    Raises:
        ConfigError: ``kind`` is ``moto`` and moto or the ``s3`` extra is missing, or moto
            did not start.
    """
    # Imports and package metadata read files: off the event loop.
    found = "not requested" if kind == "local" else await anyio.to_thread.run_sync(_find_moto)
    if isinstance(found, str):
        why_not = found
    else:
        server = MotoServer()
        try:
            try:
                await anyio.to_thread.run_sync(_start, server)
            except RuntimeError as exc:  # moto is installed but would not run
                why_not = f"moto did not start: {str(exc).splitlines()[0]}"
            else:
                async with _moto_link(server, *found, rtt, options) as remote:
                    yield remote
                return
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(server.stop)
    if kind == "moto":
        raise ConfigError(f"the embedded S3 server is unavailable ({why_not}): {MOTO_HINT}")
    await anyio.Path(root).mkdir(parents=True, exist_ok=True)
    yield _local_link(root, rtt, options, why_not)


def _find_moto() -> tuple[str, type[S3Store]] | str:
    """moto's version and the S3 store class, or why they cannot be used."""
    if importlib.util.find_spec("moto") is None:
        return "moto is not installed"
    try:
        module = importlib.import_module("aiomodelkit.stores._s3")
    except ImportError:
        return "the s3 extra is not installed"
    s3_store: type[S3Store] = module.S3Store
    return importlib.metadata.version("moto"), s3_store


def _start(server: MotoServer) -> None:
    server.start()
    server.create_bucket(BUCKET)


@asynccontextmanager
async def _moto_link(
    server: MotoServer, version: str, s3_store: type[S3Store], rtt: float, options: StoreOptions
) -> AsyncIterator[Remote]:
    endpoint = server.endpoint_url  # http://127.0.0.1:PORT
    async with LatencyProxy(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])), rtt=rtt) as proxy:

        def store(endpoint_url: str) -> Store:
            return s3_store(
                BUCKET,
                endpoint_url=endpoint_url,
                # moto takes any credentials; explicit ones keep the user's own out of it.
                aws_access_key_id="demo",
                aws_secret_access_key="demo-secret",
                region_name="us-east-1",
                options=options,
            )

        yield Remote(
            description=f"embedded S3 (moto {version}) behind a {rtt * 1000:g} ms RTT link",
            detail=(
                f"moto's S3 server runs at {endpoint}, behind a loopback TCP proxy that adds "
                "the round trips and counts the HTTP requests (moto closes every connection, "
                "so each request also pays for a TCP handshake)"
            ),
            rtt=rtt,
            direct=lambda: store(endpoint),
            linked=lambda: store(proxy.url),
            requests=lambda: proxy.stats.total_requests,
        )


def _local_link(root: Path, rtt: float, options: StoreOptions, why_not: str) -> Remote:
    linked: list[InstrumentedStore] = []  # every store the demo opened over the link

    def link() -> InstrumentedStore:
        linked.append(InstrumentedStore(LocalStore(root, options=options), rtt=rtt))
        return linked[-1]

    return Remote(
        description=f"local folder behind a simulated {rtt * 1000:g} ms RTT",
        detail=(
            f"each request waits one round trip in process (no embedded S3 server: "
            f"{why_not}; {MOTO_HINT} for one)"
        ),
        rtt=rtt,
        direct=lambda: LocalStore(root, options=options),
        linked=link,
        requests=lambda: sum(store.requests for store in linked),
    )
