"""Many fetchers of one asset at once, counted server side by a FaultProxy.

8 processes released together by a file barrier, and 50 coroutines spread over 5 managers
that share one cache. With the cache lock, every object is downloaded exactly once (a
ranged object: each range once); every fetcher gets byte-exact files. With the lock off
(``cache_locking=False``, as on a filesystem where locks do nothing), downloads may be
repeated but nothing is ever corrupt or partial: a watcher thread checks the final path
while the race runs. The data GETs are delayed so that the fetchers really overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest

from aiomodelkit import AssetsManager, FetchedAsset, Settings
from aiomodelkit.stores import GCSStore, S3Store, Store, StoreOptions
from aiomodelkit.stores._base import MiB
from aiomodelkit.testing import DelayFirstByte, FakeGCSServer, FaultProxy, MotoServer, ProxyRule

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ASSET = "models/shared"
PREFIX = "modelkit-assets"
#: Relative path → size; "big.bin" is above the range threshold (1 MiB): three ranges.
FILES = {"a.bin": 100_000, "sub/b.bin": 40_000, "sub/deeper/c.bin": 1, "big.bin": 2 * MiB + 77}
RANGED = {"big.bin": 3}
PROCESSES = 8
MANAGERS, COROUTINES = 5, 50
#: Long enough that every fetcher starts before the first one has published.
DATA_DELAY = 0.3


@dataclass
class Backend:
    kind: str
    server_url: str
    proxy: FaultProxy

    def store(self, *, direct: bool = False, options: StoreOptions | None = None) -> Store:
        url = self.server_url if direct else self.proxy.endpoint_url
        return _store(self.kind, url, options)


def _store(kind: str, url: str, options: StoreOptions | None) -> Store:
    if kind == "s3":
        return S3Store(
            "bucket",
            PREFIX,
            options=options,
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
    return GCSStore("bucket", PREFIX, options=options, api_root=url)


@pytest.fixture(params=["s3", "gcs"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    server: MotoServer | FakeGCSServer
    if request.param == "s3":
        server = request.getfixturevalue("moto_server")
    else:
        server = request.getfixturevalue("gcs_server")
    server.reset()
    server.create_bucket("bucket")
    with FaultProxy(server.endpoint_url) as proxy:
        yield Backend(request.param, server.endpoint_url, proxy)
        assert proxy.errors == []


def _settings(cache: Path, *, locking: bool) -> Settings:
    return Settings(
        assets_dir=cache,
        cache_locking=locking,
        range_threshold=MiB,
        range_part_size=MiB,
        retry_backoff=0.001,
        retry_backoff_max=0.01,
    )


async def _publish(backend: Backend, tmp_path: Path) -> dict[str, str]:
    """Publish ASSET:0.0 (straight to the server) and return its files' SHA-256."""
    source = tmp_path / "source"
    for relpath, size in FILES.items():
        path = source / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(relpath.encode()).digest() * (size // 32 + 1))
        path.write_bytes(path.read_bytes()[:size])
    settings = Settings(assets_dir=tmp_path / "publisher", allow_unsafe_publish=True)
    async with AssetsManager(storage=backend.store(direct=True), settings=settings) as am:
        await am.new(source, ASSET)
    # Fetchers overlap only if downloads take a while.
    backend.proxy.add(ProxyRule(DelayFirstByte(DATA_DELAY), key=rf"/{ASSET}/0\.0/"))
    return _tree(source)


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".SUCCESS"
    }


def _data_gets(proxy: FaultProxy) -> Counter[tuple[str, str | None]]:
    """GETs of each data object, per (relative path, Range)."""
    prefix = f"{PREFIX}/{ASSET}/0.0/"
    return Counter(
        (r.key.removeprefix(prefix), r.range)
        for r in proxy.requests
        if r.method == "GET" and r.key is not None and r.key.startswith(prefix)
    )


def _check_downloads(proxy: FaultProxy, *, locking: bool, fetchers: int) -> None:
    gets = _data_gets(proxy)
    per_object = Counter(relpath for relpath, _ in gets.elements())
    assert set(per_object) == set(FILES)
    for relpath in FILES:
        ranges = {r for (p, r), _ in gets.items() if p == relpath}
        assert len(ranges) == RANGED.get(relpath, 1)  # the whole object, or its 3 parts
    if locking:
        # Exactly one download of each object: each GET (each range) once.
        assert set(gets.values()) == {1}
    else:
        # Duplicate work is allowed, never more than one download per fetcher...
        assert max(gets.values()) <= fetchers
        # ...and it did happen: the lock really was off while the fetchers overlapped.
        assert max(gets.values()) > 1


class Watcher:
    """Looks at the final path over and over while a race runs; keeps what it saw wrong."""

    def __init__(self, final: Path, expected: dict[str, str]) -> None:
        self.final = final
        self.expected = expected
        self.looks = 0
        self.wrong: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._look()  # the race may end before the thread's next look (a loaded machine)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._look()
            time.sleep(0.005)

    def _look(self) -> None:
        if self.final.exists():
            self.looks += 1
            seen = _tree(self.final)
            if seen != self.expected or not (self.final / ".SUCCESS").is_file():
                self.wrong.append(f"{sorted(seen)} (complete: {sorted(self.expected)})")


_RACER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from pathlib import Path

    import anyio

    from aiomodelkit import AssetsManager, Settings
    from aiomodelkit.stores import GCSStore, S3Store

    kind, endpoint, cache, ready, go, locking = sys.argv[1:]


    def store(options):
        if kind == "s3":
            return S3Store(
                "bucket", "modelkit-assets", options=options, endpoint_url=endpoint,
                aws_access_key_id="testing", aws_secret_access_key="testing",
                region_name="us-east-1",
            )
        return GCSStore("bucket", "modelkit-assets", options=options, api_root=endpoint)


    async def main():
        settings = Settings(
            assets_dir=cache, cache_locking=locking == "1", range_threshold=2**20,
            range_part_size=2**20, retry_backoff=0.001, retry_backoff_max=0.01,
        )
        async with AssetsManager(storage=store(settings.store_options()), settings=settings) as am:
            await am.versions("models/shared")  # opens the client before the race starts
            Path(ready).touch()
            while not os.path.exists(go):
                await anyio.sleep(0.001)
            fetched = await am.fetch("models/shared:0.0")
            files = {
                p.relative_to(fetched.path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(fetched.path.rglob("*"))
                if p.is_file() and p.name != ".SUCCESS"
            }
        print(json.dumps({"path": str(fetched.path), "objects": fetched.objects, "files": files}))


    anyio.run(main)
    """
)


@pytest.mark.parametrize("locking", [True, False], ids=["locked", "lock-off"])
async def test_processes_fetching_at_once(backend: Backend, tmp_path: Path, locking: bool) -> None:
    expected = await _publish(backend, tmp_path)
    cache, barrier = tmp_path / "shared-cache", tmp_path / "barrier"
    barrier.mkdir()
    go = barrier / "go"
    common = [backend.kind, backend.proxy.endpoint_url, str(cache)]
    # Racing processes: the test only waits for them (the proxy runs in its own thread).
    racers = [
        subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", _RACER, *common, str(barrier / f"ready-{i}"), str(go), flag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
        for flag in ["1" if locking else "0"]
    ]
    try:
        with anyio.fail_after(60):
            while len(list(barrier.glob("ready-*"))) < PROCESSES:
                assert all(r.poll() is None for r in racers), racers[0].communicate()[1]
                await anyio.sleep(0.01)
        with Watcher(cache / ASSET / "0.0", expected) as watcher:
            go.touch()
            outputs = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.communicate()
    assert [r.returncode for r in racers] == [0] * PROCESSES, [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert {r["path"] for r in results} == {str(cache / ASSET / "0.0")}
    assert all(r["files"] == expected for r in results)
    if locking:
        assert sorted(r["objects"] for r in results) == [0] * (PROCESSES - 1) + [len(FILES)]
    _check_downloads(backend.proxy, locking=locking, fetchers=PROCESSES)
    assert watcher.looks > 0
    assert watcher.wrong == []
    assert [p for p in cache.rglob("*") if ".incomplete-" in p.name] == []


@pytest.mark.parametrize("locking", [True, False], ids=["locked", "lock-off"])
async def test_coroutines_fetching_at_once(backend: Backend, tmp_path: Path, locking: bool) -> None:
    expected = await _publish(backend, tmp_path)
    cache = tmp_path / "shared-cache"
    settings = _settings(cache, locking=locking)
    results: list[FetchedAsset] = []

    async def fetch(am: AssetsManager) -> None:
        results.append(await am.fetch(f"{ASSET}:0.0"))

    async def manager(ready: anyio.Event, go: anyio.Event) -> None:
        store = backend.store(options=settings.store_options())
        async with AssetsManager(storage=store, settings=settings) as am:
            await am.versions(ASSET)  # opens the client before the race starts
            ready.set()
            await go.wait()
            async with anyio.create_task_group() as tg:
                for _ in range(COROUTINES // MANAGERS):
                    tg.start_soon(fetch, am)

    tasks_before = len(asyncio.all_tasks())
    go = anyio.Event()
    with Watcher(cache / ASSET / "0.0", expected) as watcher:
        async with anyio.create_task_group() as tg:
            readies = [anyio.Event() for _ in range(MANAGERS)]
            for ready in readies:
                tg.start_soon(manager, ready, go)
            for ready in readies:
                await ready.wait()
            go.set()
    assert len(asyncio.all_tasks()) == tasks_before
    assert len(results) == COROUTINES
    assert {r.path for r in results} == {cache / ASSET / "0.0"}
    for result in results:
        assert _tree(result.path) == expected
    if locking:
        assert sum(not r.from_cache for r in results) == COROUTINES // MANAGERS
    _check_downloads(backend.proxy, locking=locking, fetchers=MANAGERS)
    assert watcher.looks > 0
    assert watcher.wrong == []
    assert [p for p in cache.rglob("*") if ".incomplete-" in p.name] == []
