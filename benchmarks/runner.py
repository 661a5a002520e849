"""One benchmark run of one Python peer, in a fresh process (``python -m benchmarks.runner``).

The harness passes the path of a job (JSON); the last stdout line is the result (JSON). The
clock starts after imports and stops when every file is at its final path (aiomodelkit also
verified them by then; the harness checks every peer's files afterwards, off the clock).

Measured here: wall time, CPU seconds of this process (all threads, ``getrusage``), peak
RSS (``VmHWM``, imports included) and RSS when the clock started, and for asyncio peers
the event-loop lag seen by a 10 ms ticker task.

Peers: ``ours`` (``AssetsManager.fetch_many`` / ``ModelLibrary``), ``limit`` (raw concurrent
GETs of the same requests as ours, bytes discarded), ``boto3`` (``download_file`` per
object, default TransferConfig), ``boto3-tm`` (one s3transfer manager, every object
submitted at once), ``aiobotocore-seq`` (one GET after another, written to disk) and
``obstore`` (concurrent ``get_async`` streams written to disk).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ._proc import MiB, cpu_s, peak_rss_mib, rss_mib

_TICK = 0.010


class LagMonitor:
    """Samples how late a 10 ms ticker wakes up: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(_TICK)
            self.samples.append(max(0.0, time.perf_counter() - start - _TICK))

    def summary(self) -> dict[str, float] | None:
        return lag_summary(self.samples)


def lag_summary(samples: list[float]) -> dict[str, float] | None:
    """p50, p99 and max of lag samples (seconds), in milliseconds; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] * 1000}


async def _bystander() -> None:
    """An idle process's 10 ms ticker, until stdin closes; prints ``[[epoch, lag_s], ...]``.

    The harness runs one beside every run: its lag is what the machine's scheduling alone
    does to an event loop that has nothing else to do (two cores shared by the client, the
    server and the proxy), the baseline for every client's own loop lag.
    """
    samples: list[tuple[float, float]] = []

    async def tick() -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(_TICK)
            samples.append((time.time(), max(0.0, time.perf_counter() - start - _TICK)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        print("READY", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
        tg.cancel_scope.cancel()
    print(json.dumps(samples), flush=True)


def _wait_for_start(job: dict[str, Any]) -> None:
    start_at = job.get("start_at")
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))


# -- aiomodelkit ------------------------------------------------------------------------


def _our_store(job: dict[str, Any]) -> Any:
    from aiomodelkit.stores import GCSStore, S3Store

    if job["store"] == "s3":
        return S3Store(
            job["bucket"],
            job["prefix"],
            endpoint_url=job["endpoint"],
            aws_access_key_id=job["access_key"],
            aws_secret_access_key=job["secret_key"],
            region_name="us-east-1",
        )
    return GCSStore(job["bucket"], job["prefix"], api_root=job["endpoint"])


async def _ours_fetch(job: dict[str, Any], result: dict[str, Any]) -> None:
    from aiomodelkit import AssetsManager, BytesReceived, Event, Settings
    from aiomodelkit.testing import InstrumentedStore

    received = 0

    def on_event(event: Event) -> None:
        nonlocal received
        if isinstance(event, BytesReceived):
            received += event.size

    store = InstrumentedStore(_our_store(job))
    settings = Settings(assets_dir=Path(job["dest"]), **job.get("settings", {}))
    async with AssetsManager(storage=store, settings=settings, on_event=on_event) as am:
        fetched = await am.fetch_many(job["specs"])
    result["bytes"] = received
    result["requests_self"] = store.requests
    result["from_cache"] = all(f.from_cache for f in fetched)


def _model_classes(job: dict[str, Any]) -> list[Any]:
    from aiomodelkit import Model

    graph = job["models"]
    configurations = {
        m["key"]: {
            "asset": m["spec"],
            "model_dependencies": list(m["deps"]),
            "model_settings": {"load_s": m["load_s"]},
        }
        for m in graph
    }

    class BenchModel(Model[Any, Any]):
        CONFIGURATIONS = configurations

        def _load(self) -> None:
            # Like a real model: read the asset, then spend the declared time (I/O-like,
            # the GIL released, as numpy or torch loading mostly does).
            assert self.asset_path is not None
            with open(self.asset_path, "rb") as handle:
                while handle.read(MiB):
                    pass
            time.sleep(self.model_settings["load_s"])

        def _predict(self, item: Any) -> Any:
            return item

    return [BenchModel]


async def _ours_library(job: dict[str, Any], result: dict[str, Any]) -> None:
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
    settings = Settings(
        assets_dir=Path(job["dest"]), offline=job.get("offline", False), **job.get("settings", {})
    )
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
            result["models"] = len(library.status())
        lifecycle["library_closed"] = now()
    lifecycle["manager_closed"] = now()
    result["requests_self"] = store.requests
    # The first event of each kind, and the lifecycle: where the time before the first load
    # goes.
    result["timeline_s"] = {kind: t for _, kind, t in reversed(events)} | lifecycle
    result["events"] = events


# -- the limit and the other asyncio peers ----------------------------------------------


def _plan(job: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    """The requests aiomodelkit makes for the data: whole GETs, or ranges for big objects."""
    settings = job.get("settings", {})
    threshold = settings.get("range_threshold", 64 * MiB)
    part = settings.get("range_part_size", 16 * MiB)
    plan: list[tuple[str, int, int | None]] = []
    for obj in job["objects"]:
        if obj["size"] >= threshold:
            plan += [
                (obj["key"], offset, min(part, obj["size"] - offset))
                for offset in range(0, obj["size"], part)
            ]
        else:
            plan.append((obj["key"], 0, None))
    return plan


def _aio_session_client(job: dict[str, Any], *, tuned: bool) -> Any:
    from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
    from aiobotocore.session import AioSession  # type: ignore[import-untyped]

    config = None
    if tuned:  # the same client settings as aiomodelkit's S3Store
        config = AioConfig(
            max_pool_connections=job.get("settings", {}).get("max_connections", 64),
            retries={"total_max_attempts": 1, "mode": "standard"},
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        )
    return AioSession().create_client(
        "s3",
        endpoint_url=job["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=job["access_key"],
        aws_secret_access_key=job["secret_key"],
        config=config,
    )


async def _limit(job: dict[str, Any], result: dict[str, Any]) -> None:
    plan = _plan(job)
    limiter = anyio.CapacityLimiter(job.get("settings", {}).get("max_connections", 64))
    received = 0
    if job["store"] == "s3":
        async with _aio_session_client(job, tuned=True) as client:

            async def get(key: str, offset: int, length: int | None) -> None:
                nonlocal received
                params: dict[str, Any] = {"Bucket": job["bucket"], "Key": key}
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
                    f"{job['endpoint']}/download/storage/v1/b/{job['bucket']}/o/"
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
    result["bytes"] = received
    result["requests_self"] = len(plan)


def _target(job: dict[str, Any], obj: dict[str, Any]) -> Path:
    base = Path(job["dest"]) / str(obj["final"])
    return base / obj["rel"] if obj["rel"] else base


async def _aiobotocore_sequential(job: dict[str, Any], result: dict[str, Any]) -> None:
    # A plain loop at aiobotocore's defaults: one GET after another, 1 MiB reads, plain
    # (blocking) file writes.
    async with _aio_session_client(job, tuned=False) as client:
        for obj in job["objects"]:
            path = _target(job, obj)
            path.parent.mkdir(parents=True, exist_ok=True)
            response = await client.get_object(Bucket=job["bucket"], Key=obj["key"])
            with path.open("wb") as out:  # blocking, as a naive loop does
                async for chunk in response["Body"].iter_chunks(MiB):
                    out.write(chunk)
    result["requests_self"] = len(job["objects"])


async def _obstore(job: dict[str, Any], result: dict[str, Any]) -> None:
    # A bench-only dependency, absent from the typecheck environment: typed Any.
    obstore: Any = importlib.import_module("obstore")
    store = importlib.import_module("obstore.store").S3Store(
        job["bucket"],
        endpoint=job["endpoint"],
        access_key_id=job["access_key"],
        secret_access_key=job["secret_key"],
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    limiter = anyio.CapacityLimiter(job.get("settings", {}).get("max_connections", 64))

    async def one(obj: dict[str, Any]) -> None:
        path = _target(job, obj)
        path.parent.mkdir(parents=True, exist_ok=True)
        async with limiter:
            response = await obstore.get_async(store, obj["key"])
            with path.open("wb") as out:  # blocking, as a plain user would
                async for chunk in response.stream():
                    out.write(chunk)

    async with anyio.create_task_group() as tg:
        for obj in job["objects"]:
            tg.start_soon(one, obj)
    result["requests_self"] = len(job["objects"])


# -- boto3 (threads) --------------------------------------------------------------------


def _boto3_client(job: dict[str, Any]) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=job["endpoint"],
        region_name="us-east-1",
        aws_access_key_id=job["access_key"],
        aws_secret_access_key=job["secret_key"],
    )


def _boto3(job: dict[str, Any], result: dict[str, Any]) -> None:
    client = _boto3_client(job)
    for obj in job["objects"]:
        path = _target(job, obj)
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(job["bucket"], obj["key"], str(path))


def _boto3_tm(job: dict[str, Any], result: dict[str, Any]) -> None:
    from boto3.s3.transfer import (  # type: ignore[import-untyped]
        TransferConfig,
        create_transfer_manager,
    )

    client = _boto3_client(job)
    with create_transfer_manager(client, TransferConfig()) as manager:
        futures = []
        for obj in job["objects"]:
            path = _target(job, obj)
            path.parent.mkdir(parents=True, exist_ok=True)
            futures.append(manager.download(job["bucket"], obj["key"], str(path)))
        for future in futures:
            future.result()


# -- entry point ------------------------------------------------------------------------

_ASYNC = {
    "ours": _ours_fetch,
    "limit": _limit,
    "aiobotocore-seq": _aiobotocore_sequential,
    "obstore": _obstore,
}
_SYNC = {"boto3": _boto3, "boto3-tm": _boto3_tm}


async def _timed_async(job: dict[str, Any], result: dict[str, Any]) -> None:
    monitor = LagMonitor()
    work = _ASYNC[job["peer"]]
    if job["peer"] == "ours" and job["kind"] in ("warm", "graph"):
        work = _ours_library
    profiler: Any = None
    if job.get("profile"):
        # A bench-only dependency, absent from the typecheck environment: typed Any.
        profiler = importlib.import_module("pyinstrument").Profiler(async_mode="disabled")
    async with anyio.create_task_group() as tg:
        tg.start_soon(monitor.run)
        if profiler is not None:
            profiler.start()
        start = time.perf_counter()
        result["started"] = time.time()
        await work(job, result)
        result["wall_s"] = time.perf_counter() - start
        result["ended"] = time.time()
        if profiler is not None:
            profiler.stop()
        tg.cancel_scope.cancel()
    result["lag"] = monitor.summary()
    if profiler is not None:
        tree = profiler.output_text(unicode=False, color=False, show_all=False)
        flat = profiler.output_text(unicode=False, color=False, flat=True)
        flat = "\n".join(flat.splitlines()[:60])  # the top functions by self time
        await anyio.Path(job["profile"]).write_text(f"{tree}\n\nBy self time:\n{flat}\n")


def _describe(exc: BaseException) -> str:
    """The error, with the leaves of an exception group (its own message says nothing)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(leaf) for leaf in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job; returns the result (``ok`` False with ``error`` on failure)."""
    result: dict[str, Any] = {"ok": True, "peer": job["peer"]}
    _wait_for_start(job)
    result["base_rss_mib"] = rss_mib()
    cpu = cpu_s()
    try:
        if job["peer"] in _SYNC:
            start = time.perf_counter()
            result["started"] = time.time()
            _SYNC[job["peer"]](job, result)
            result["wall_s"] = time.perf_counter() - start
            result["ended"] = time.time()
        else:
            anyio.run(_timed_async, job, result)
    except BaseException as exc:  # reported to the harness, which records the failure
        result.update(ok=False, error=_describe(exc))
        traceback.print_exc(file=sys.stderr)
    result["cpu_s"] = cpu_s() - cpu
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def _preload(peer: str) -> None:
    """Import what the peer needs before the clock starts (imports are not measured)."""
    if peer == "ours":
        import aiomodelkit.stores
        import aiomodelkit.testing

        _ = (aiomodelkit.stores.S3Store, aiomodelkit.stores.GCSStore, aiomodelkit.testing)
    elif peer in ("boto3", "boto3-tm"):
        import boto3.s3.transfer  # type: ignore[import-untyped]  # noqa: F401
    elif peer == "obstore":
        importlib.import_module("obstore.store")
    else:
        import aiobotocore.session  # type: ignore[import-untyped]  # noqa: F401
        import aiohttp  # noqa: F401


def main() -> None:
    if sys.argv[1] == "--bystander":
        anyio.run(_bystander)
        return
    job = json.loads(Path(sys.argv[1]).read_text())
    _preload(job["peer"])
    print(json.dumps(run(job)), flush=True)


if __name__ == "__main__":
    main()
