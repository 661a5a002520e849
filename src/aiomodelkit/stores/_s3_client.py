"""Opening :class:`~aiomodelkit.stores.S3Store`'s clients: botocore, tuned, and an aiohttp session.

Everything here runs once per store, on entry; the constructor does no I/O. Choices that
differ from aiobotocore's defaults, and why:

* **No botocore retries** (``total_max_attempts=1``; beware, botocore's ``max_attempts``
  counts retries, so ``max_attempts=1`` means two tries). Our fetcher retries itself,
  with backoff, and can also resume a broken body, which botocore cannot (its retries cover
  only the request). Two retry layers would multiply attempts and delay failing fast.
* **Response checksums only when required.** The default validation costs CPU on every
  full GET and fails on servers that send whole-object checksums on ranged replies; assets
  are verified against our own SHA-256 anyway. Uploads still send botocore's CRC32.
* **Less botocore work per request.** botocore spends about a sixth of its ~1 ms of CPU per
  GET on work an asset fetcher does not need: rebuilding the User-Agent header twice per
  request from a dozen components (we send a fixed ``aiomodelkit/... botocore/...`` string),
  parsing ``Last-Modified`` with dateutil's general parser (HTTP dates and ISO 8601 have
  fast exact parsers in the standard library) and validating parameters that S3Store
  builds itself. Thousands of small objects are bound by this CPU, not by the network.
* **Path-style addressing** for IP and ``localhost`` endpoints, which have no DNS for
  ``<bucket>.<host>``.
* **Object GETs get an aiohttp session of their own** (see ``_s3_direct``), with the same
  pool size, timeouts and CA bundle as botocore's.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import platform
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiobotocore  # type: ignore[import-untyped]
import aiohttp
import anyio
import anyio.to_thread
import botocore  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import AioSession  # type: ignore[import-untyped]
from botocore.configprovider import ConfiguredEndpointProvider  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from botocore.loaders import JSONFileLoader  # type: ignore[import-untyped]

from aiomodelkit._errors import ConfigError
from aiomodelkit._version import __version__

from ._s3_direct import DirectGetter, parse_timestamp, ssl_context
from ._s3_errors import describe, map_s3_errors

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping, Sequence

    from types_aiobotocore_s3 import S3Client

    from ._base import StoreOptions

__all__ = ["USER_AGENT", "PlainJSONFileLoader", "open_client"]

#: Sent as the whole User-Agent header (botocore would rebuild its own twice per request).
USER_AGENT = (
    f"aiomodelkit/{__version__} aiobotocore/{aiobotocore.__version__} "
    f"botocore/{botocore.__version__} Python/{platform.python_version()}"
)

#: What botocore loads to create an S3 client (see ``open_client``).
_BOTOCORE_DATA = ("_retry", "endpoints", "partitions", "sdk-default-configuration")
_BOTOCORE_S3_MODELS = ("service-2", "endpoint-rule-set-1")


async def open_client(
    *,
    endpoint_url: str | None,
    region_name: str | None,
    credentials: Mapping[str, str | None],
    options: StoreOptions,
    store_url: str,
    secrets: Sequence[str],
) -> tuple[AsyncExitStack, S3Client, DirectGetter]:
    """The S3 client and the direct GETs' session, both entered on the returned stack.

    Args:
        endpoint_url: an S3-compatible server, or None for botocore's own resolution.
        region_name: the region, or None for botocore's own resolution.
        credentials: ``aws_access_key_id``, ``aws_secret_access_key`` and
            ``aws_session_token``, each None when not given (then the AWS chain applies).
        options: pool size and timeouts.
        store_url: the credential-free URL of the store, for error messages.
        secrets: strings to blank out of every message.

    If opening fails, whatever was opened is closed again before the error propagates.
    """
    stack = AsyncExitStack()
    try:
        session, config, tls = await anyio.to_thread.run_sync(_prepare, endpoint_url, options)
        # botocore parses its JSON models with the GIL held (~40 ms for S3 in all with
        # PlainJSONFileLoader), which stalls the event loop even from a worker thread: one
        # file per hop, so that the loop runs between them (the longest parse, of
        # endpoints.json, is then ~17 ms).
        loader = session.get_component("data_loader")
        for name in _BOTOCORE_DATA:
            await anyio.to_thread.run_sync(loader.load_data_with_path, name)
        for name in _BOTOCORE_S3_MODELS:
            await anyio.to_thread.run_sync(_load_s3_model, loader, name)
        with map_s3_errors(key=None, store_url=store_url, secrets=secrets):
            try:
                client = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=endpoint_url,
                        region_name=region_name,
                        config=config,
                        **{k: v for k, v in credentials.items() if v is not None},
                    )
                )
            except ValueError as exc:  # botocore: "Invalid endpoint: ..."
                raise ConfigError(
                    "invalid S3 endpoint URL (endpoint_url, AWS_ENDPOINT_URL or the AWS "
                    f"config files): {describe(exc, secrets)}",
                    store_url=store_url,
                ) from None
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=options.max_connections, ssl=tls if tls is not None else True
                ),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=options.connect_timeout,
                    sock_read=options.read_timeout,
                ),
                headers={"User-Agent": USER_AGENT},
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,  # the object's bytes, whatever its Content-Encoding
            )
        )
        signing: Any = None
        if credentials["aws_access_key_id"] is not None:
            signing = Credentials(
                credentials["aws_access_key_id"],
                credentials["aws_secret_access_key"],
                credentials["aws_session_token"],
            )
        else:  # the chain create_client used (the session caches what it found)
            with map_s3_errors(key=None, store_url=store_url, secrets=secrets):
                signing = await session.get_credentials()
        direct = DirectGetter(client, http, signing)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await stack.aclose()
        raise
    return stack, client, direct


def _load_s3_model(loader: Any, type_name: str) -> None:
    """Load one S3 model in every call shape ``create_client`` uses (blocking).

    botocore caches ``load_service_model`` by its exact arguments, positional and keyword
    apart, and never caches a miss: a shape not warmed here would look again, on the event
    loop, for the absent ``*.sdk-extras.json`` files (``os.stat`` calls each time a store
    opens). The JSON itself is parsed once, whatever the shape.
    """
    loader.load_service_model("s3", type_name, api_version=None)  # botocore/client.py
    if type_name == "service-2":  # aiobotocore/session.py, get_service_data
        loader.load_service_model("s3", type_name=type_name, api_version=None)


def _prepare(
    endpoint_url: str | None, options: StoreOptions
) -> tuple[Any, Any, ssl.SSLContext | None]:
    # Runs in a worker thread: botocore reads its config files and JSON models
    # synchronously, and the event loop must not wait on disk.
    session = AioSession()
    session.get_component("data_loader").file_loader = PlainJSONFileLoader()
    endpoint = (
        endpoint_url
        or ConfiguredEndpointProvider(
            full_config=session.full_config,
            scoped_config=session.get_scoped_config(),
            client_name="s3",
        ).provide()
    )
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    extra: dict[str, Any] = {}
    if endpoint and _needs_path_style(endpoint):
        extra["s3"] = {"addressing_style": "path"}
    config = AioConfig(
        max_pool_connections=options.max_connections,
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        response_checksum_validation="when_required",
        parameter_validation=False,  # every request is built by S3Store, typed
        # botocore presigns S3 URLs with SigV2 unless told otherwise; AWS refuses SigV2
        # in every region opened since 2014 and for every bucket made since mid-2020.
        signature_version="s3v4",
        user_agent=USER_AGENT,
        **extra,
    )
    tls = None
    if not endpoint or endpoint.startswith("https:"):
        tls = ssl_context(session.get_config_variable("ca_bundle"))
    return session, config, tls


class PlainJSONFileLoader(JSONFileLoader):  # type: ignore[misc]  # botocore is untyped
    """botocore's model file loader, parsing into plain dicts: twice as fast.

    botocore parses every model with ``object_pairs_hook=OrderedDict``, which doubles the
    parse time of the ~3 MB of JSON an S3 client needs (~75 ms of CPU with the GIL held,
    ~40 ms without the hook). Plain dicts keep insertion order too, and botocore reads
    models only as mappings. Same files, same order of preference (``.json``, then
    ``.json.gz``), same result otherwise.
    """

    def load_file(self, file_path: str) -> Any:
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            path = file_path + extension
            if os.path.isfile(path):
                with opener(path, "rb") as handle:
                    return json.loads(handle.read())  # UTF-8, as botocore reads it
        return None


def _needs_path_style(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
