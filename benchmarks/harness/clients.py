"""What each Python peer does in one run, inside ``python -m benchmarks.harness.runner``.

``ours`` (``AssetsManager.fetch_many`` / ``ModelLibrary``), ``limit`` (raw concurrent GETs of
the same requests as ours, bytes discarded), ``boto3`` (``download_file`` per object,
default TransferConfig), ``boto3-tm`` (one s3transfer manager, every object submitted at
once), ``aiobotocore-seq`` (one GET after another, written to disk) and ``obstore``
(concurrent ``get_async`` streams written to disk). Each returns what it counted itself.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .measure import MiB, simulate_load
from .records import ClientReport, Job

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["ASYNC_CLIENTS", "SYNC_CLIENTS", "ours_library"]


# -- aiomodelkit ------------------------------------------------------------------------


def _our_store(job: Job) -> Any:
    from aiomodelkit.stores import AzureStore, GCSStore, S3Store

    if job.store == "azure":
        # Path-style, as Azurite serves it: <endpoint>/<account>/<container>/<blob>.
        return AzureStore(
            job.bucket,
            job.prefix,
            account_url=f"{job.endpoint}/{job.access_key}",
            account_key=job.secret_key,
        )
    if job.store == "s3":
        return S3Store(
            job.bucket,
            job.prefix,
            endpoint_url=job.endpoint,
            aws_access_key_id=job.access_key,
            aws_secret_access_key=job.secret_key,
            region_name="us-east-1",
        )
    return GCSStore(job.bucket, job.prefix, api_root=job.endpoint)


async def _ours_fetch(job: Job) -> ClientReport:
    from aiomodelkit import AssetsManager, BytesReceived, Event, Settings
    from aiomodelkit.testing import InstrumentedStore

    received = 0

    def on_event(event: Event) -> None:
        nonlocal received
        if isinstance(event, BytesReceived):
            received += event.size

    store = InstrumentedStore(_our_store(job))
    settings = Settings(assets_dir=Path(job.dest), **job.settings)
    async with AssetsManager(storage=store, settings=settings, on_event=on_event) as am:
        fetched = await am.fetch_many(list(job.specs))
    return ClientReport(
        bytes=received,
        requests_self=store.requests,
        from_cache=all(f.from_cache for f in fetched),
    )


def _model_classes(job: Job) -> list[Any]:
    from aiomodelkit import Model

    configurations = job.model_configurations()

    class BenchModel(Model[Any, Any]):
        CONFIGURATIONS = configurations

        def _load(self) -> None:
            assert self.asset_path is not None
            simulate_load(self.asset_path, self.model_settings["load_s"])

        def _predict(self, item: Any) -> Any:
            return item

    return [BenchModel]


async def ours_library(job: Job) -> ClientReport:
    """Ours on a library workload: ``ModelLibrary`` over an ``AssetsManager``, timed."""
    from aiomodelkit import (
        AssetsManager,
        BytesReceived,
        Event,
        ModelEvent,
        ModelLibrary,
        Settings,
    )
    from aiomodelkit.testing import InstrumentedStore

    models = _model_classes(job)
    store = InstrumentedStore(_our_store(job))
    settings = Settings(assets_dir=Path(job.dest), offline=job.offline, **job.settings)
    start = time.perf_counter()
    # Every library and asset event but BytesReceived, in seconds from the clock's start.
    events: list[tuple[str, str, float]] = []
    lifecycle: dict[str, float] = {}

    def now() -> float:
        return round(time.perf_counter() - start, 4)

    def on_event(event: Event | ModelEvent) -> None:
        if not isinstance(event, BytesReceived):
            who = event.model if isinstance(event, ModelEvent) else event.asset
            events.append((who, type(event).__name__, now()))

    async with AssetsManager(storage=store, settings=settings, on_event=on_event) as am:
        lifecycle["manager_open"] = now()
        async with ModelLibrary(
            models, settings=settings, assets_manager=am, on_event=on_event
        ) as library:
            lifecycle["library_ready"] = now()
            assert library.ready
            count = len(library.status())
        lifecycle["library_closed"] = now()
    lifecycle["manager_closed"] = now()
    return ClientReport(
        requests_self=store.requests,
        models=count,
        # The first event of each kind, and the lifecycle: where the time before the first
        # load goes.
        timeline_s={kind: t for _, kind, t in reversed(events)} | lifecycle,
        events=tuple(events),
    )


# -- the limit and the other asyncio peers ----------------------------------------------


def _plan(job: Job) -> list[tuple[str, int, int | None]]:
    """The requests aiomodelkit makes for the data: whole GETs, or ranges for big objects."""
    threshold = job.settings.get("range_threshold", 64 * MiB)
    part = job.settings.get("range_part_size", 16 * MiB)
    plan: list[tuple[str, int, int | None]] = []
    for obj in job.objects:
        if obj.size >= threshold:
            plan += [
                (obj.key, offset, min(part, obj.size - offset))
                for offset in range(0, obj.size, part)
            ]
        else:
            plan.append((obj.key, 0, None))
    return plan


def _aio_session_client(job: Job, *, tuned: bool) -> Any:
    from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
    from aiobotocore.session import AioSession  # type: ignore[import-untyped]

    config = None
    if tuned:  # the same client settings as aiomodelkit's S3Store
        config = AioConfig(
            max_pool_connections=job.settings.get("max_connections", 64),
            retries={"total_max_attempts": 1, "mode": "standard"},
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        )
    return AioSession().create_client(
        "s3",
        endpoint_url=job.endpoint,
        region_name="us-east-1",
        aws_access_key_id=job.access_key,
        aws_secret_access_key=job.secret_key,
        config=config,
    )


async def _limit(job: Job) -> ClientReport:
    plan = _plan(job)
    limiter = anyio.CapacityLimiter(job.settings.get("max_connections", 64))
    received = 0
    if job.store == "azure":
        received = await _limit_azure(job, plan)
    elif job.store == "s3":
        async with _aio_session_client(job, tuned=True) as client:

            async def get(key: str, offset: int, length: int | None) -> None:
                nonlocal received
                params: dict[str, Any] = {"Bucket": job.bucket, "Key": key}
                if length is not None:
                    params["Range"] = f"bytes={offset}-{offset + length - 1}"
                async with limiter:
                    response = await client.get_object(**params)
                    body = response["Body"]
                    try:
                        while chunk := await body.read(MiB):
                            received += len(chunk)
                    finally:
                        body.close()

            async with anyio.create_task_group() as tg:
                for item in plan:
                    tg.start_soon(get, *item)
    else:
        from urllib.parse import quote

        import aiohttp

        connector = aiohttp.TCPConnector(limit=limiter.total_tokens)  # type: ignore[arg-type]
        async with aiohttp.ClientSession(connector=connector) as session:

            async def gcs_get(key: str, offset: int, length: int | None) -> None:
                nonlocal received
                url = (
                    f"{job.endpoint}/download/storage/v1/b/{job.bucket}/o/"
                    f"{quote(key, safe='')}?alt=media"
                )
                headers = {}
                if length is not None:
                    headers["Range"] = f"bytes={offset}-{offset + length - 1}"
                async with limiter, session.get(url, headers=headers) as response:
                    response.raise_for_status()
                    while chunk := await response.content.read(MiB):
                        received += len(chunk)

            async with anyio.create_task_group() as tg:
                for item in plan:
                    tg.start_soon(gcs_get, *item)
    return ClientReport(bytes=received, requests_self=len(plan))


async def _limit_azure(job: Job, plan: list[tuple[str, int, int | None]]) -> int:
    """Raw GETs of the same blobs as ours, authorised like ours (a container SAS)."""
    from datetime import UTC, datetime, timedelta
    from urllib.parse import quote

    import aiohttp
    from azure.storage.blob import generate_container_sas

    sas = generate_container_sas(
        job.access_key,
        job.bucket,
        account_key=job.secret_key,
        permission="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    base = f"{job.endpoint}/{job.access_key}/{job.bucket}/"
    limiter = anyio.CapacityLimiter(job.settings.get("max_connections", 64))
    received = 0
    connector = aiohttp.TCPConnector(limit=int(limiter.total_tokens))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(key: str, offset: int, length: int | None) -> None:
            nonlocal received
            headers = {"x-ms-version": "2025-01-05"}
            if length is not None:
                headers["x-ms-range"] = f"bytes={offset}-{offset + length - 1}"
            url = f"{base}{quote(key, safe='/~')}?{sas}"
            async with limiter, session.get(url, headers=headers) as response:
                response.raise_for_status()
                while chunk := await response.content.read(MiB):
                    received += len(chunk)

        async with anyio.create_task_group() as tg:
            for item in plan:
                tg.start_soon(get, *item)
    return received


async def _aiobotocore_sequential(job: Job) -> ClientReport:
    # A plain loop at aiobotocore's defaults: one GET after another, 1 MiB reads, plain
    # (blocking) file writes.
    async with _aio_session_client(job, tuned=False) as client:
        for obj in job.objects:
            path = obj.target(Path(job.dest))
            path.parent.mkdir(parents=True, exist_ok=True)
            response = await client.get_object(Bucket=job.bucket, Key=obj.key)
            with path.open("wb") as out:  # blocking, as a naive loop does
                async for chunk in response["Body"].iter_chunks(MiB):
                    out.write(chunk)
    return ClientReport(requests_self=len(job.objects))


async def _obstore(job: Job) -> ClientReport:
    # A bench-only dependency, absent from the typecheck environment: typed Any.
    obstore: Any = importlib.import_module("obstore")
    store = importlib.import_module("obstore.store").S3Store(
        job.bucket,
        endpoint=job.endpoint,
        access_key_id=job.access_key,
        secret_access_key=job.secret_key,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    limiter = anyio.CapacityLimiter(job.settings.get("max_connections", 64))

    async def one(key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        async with limiter:
            response = await obstore.get_async(store, key)
            with path.open("wb") as out:  # blocking, as a plain user would
                async for chunk in response.stream():
                    out.write(chunk)

    async with anyio.create_task_group() as tg:
        for obj in job.objects:
            tg.start_soon(one, obj.key, obj.target(Path(job.dest)))
    return ClientReport(requests_self=len(job.objects))


# -- boto3 (threads) --------------------------------------------------------------------


def _boto3_client(job: Job) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=job.endpoint,
        region_name="us-east-1",
        aws_access_key_id=job.access_key,
        aws_secret_access_key=job.secret_key,
    )


def _boto3(job: Job) -> ClientReport:
    client = _boto3_client(job)
    for obj in job.objects:
        path = obj.target(Path(job.dest))
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(job.bucket, obj.key, str(path))
    return ClientReport()


def _boto3_tm(job: Job) -> ClientReport:
    from boto3.s3.transfer import (  # type: ignore[import-untyped]
        TransferConfig,
        create_transfer_manager,
    )

    client = _boto3_client(job)
    with create_transfer_manager(client, TransferConfig()) as manager:
        futures = []
        for obj in job.objects:
            path = obj.target(Path(job.dest))
            path.parent.mkdir(parents=True, exist_ok=True)
            futures.append(manager.download(job.bucket, obj.key, str(path)))
        for future in futures:
            future.result()
    return ClientReport()


#: The asyncio peers (``ours`` on a fetch workload; :func:`ours_library` otherwise).
ASYNC_CLIENTS: dict[str, Callable[[Job], Awaitable[ClientReport]]] = {
    "ours": _ours_fetch,
    "limit": _limit,
    "aiobotocore-seq": _aiobotocore_sequential,
    "obstore": _obstore,
}
#: The peers that run in threads.
SYNC_CLIENTS: dict[str, Callable[[Job], ClientReport]] = {"boto3": _boto3, "boto3-tm": _boto3_tm}
