"""The publish/fetch scenario through the public API, against every server of the matrix.

Each step is one test, parametrized over the servers by ``for_step``: where a server has a
gap the library does not handle yet (``_backends.PENDING``), the step is a strict xfail
naming the gap. Each test publishes what it needs under a prefix of its own, so the steps
are independent. Sizes stay small: downloads are ranged from 1 MiB (``range_threshold``,
its smallest value) and S3 uploads go in parts above 5 MiB (``MULTIPART_THRESHOLD``).

The publish race (two publishers of one version at once) is not here yet.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from aiomodelkit import (
    AssetExistsError,
    AssetNotFoundError,
    AssetsManager,
    Settings,
    StoreError,
    UnsafeStoreError,
)
from aiomodelkit._layout import data_key
from aiomodelkit.testing import InstrumentedStore

from ._backends import MULTIPART_THRESHOLD, Backend, Gap, Step, for_step

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.stores import Store

MiB = 1024 * 1024
#: Above the 1 MiB range threshold, not a multiple of the 1 MiB part: four ranges, the
#: last one short.
BIG_SIZE = 3 * MiB + 12345
DIR_ASSET = "compat/tokenizer"
BIG_ASSET = "compat/weights"
#: The directory asset's files (relative path -> size).
DIR_FILES = {"vocab.txt": 1000, "sub/merges.bin": 70_000, "sub/deeper/config.json": 10}


@dataclass(frozen=True)
class Sources:
    """Local files to publish."""

    directory: Path
    big: Path
    multipart: Path


def _content(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    directory = tmp_path / "src" / "tokenizer"
    for relpath, size in DIR_FILES.items():
        path = directory / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(relpath, size))
    big = tmp_path / "src" / "weights.bin"
    big.write_bytes(_content("big", BIG_SIZE))
    multipart = tmp_path / "src" / "large.bin"
    multipart.write_bytes(_content("large", MULTIPART_THRESHOLD + MiB + 7))
    return Sources(directory, big, multipart)


def _settings(backend: Backend, assets_dir: Path, **values: Any) -> Settings:
    if Gap.IGNORES_CONDITIONAL_WRITES in backend.gaps:
        # Publishing there is refused unless asked for (test_unsafe_store_is_refused).
        values.setdefault("allow_unsafe_publish", True)
    return Settings(
        assets_dir=assets_dir,
        pushed_by="compat@tests",
        range_threshold=MiB,
        range_part_size=MiB,
        # A wedged server fails the test in seconds, not after retries with backoff.
        max_attempts=4,
        retry_backoff=0.05,
        **{**dict(backend.settings), **values},
    )


def _manager(
    backend: Backend, assets_dir: Path, store: Store | None = None, **values: Any
) -> AssetsManager:
    return AssetsManager(
        storage=store if store is not None else backend.store(),
        settings=_settings(backend, assets_dir, **values),
    )


async def _publish_both(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    """Publish the directory asset and the big file, each as 0.0."""
    async with _manager(backend, tmp_path / "publisher-cache") as am:
        await am.new(sources.directory, DIR_ASSET)
        await am.new(sources.big, BIG_ASSET)


@pytest.mark.parametrize("backend", for_step(Step.PUBLISH), indirect=True)
async def test_publish(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    async with _manager(backend, tmp_path / "cache") as am:
        result = await am.new(sources.directory, DIR_ASSET)
        assert (result.version, result.is_directory, result.objects) == ("0.0", True, 3)
        result = await am.new(sources.big, BIG_ASSET)
        assert (result.version, result.is_directory, result.size) == ("0.0", False, BIG_SIZE)
        assert await am.versions(DIR_ASSET) == ["0.0"]
        assert await am.versions(BIG_ASSET) == ["0.0"]
        with pytest.raises(AssetExistsError):
            await am.new(sources.big, BIG_ASSET)
        assert await am.versions(BIG_ASSET) == ["0.0"]


@pytest.mark.parametrize("backend", for_step(Step.PUBLISH), indirect=True)
async def test_unsafe_store_is_refused(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    """Where conditional writes are ignored, publishing needs allow_unsafe_publish; elsewhere
    it does not (the library's probe takes no server for unsafe by mistake)."""
    async with _manager(backend, tmp_path / "cache", allow_unsafe_publish=False) as am:
        if Gap.IGNORES_CONDITIONAL_WRITES in backend.gaps:
            with pytest.raises(UnsafeStoreError, match="allow_unsafe_publish"):
                await am.new(sources.big, BIG_ASSET)
            with pytest.raises(AssetNotFoundError):
                await am.versions(BIG_ASSET)  # refused before anything was written
        else:
            assert (await am.new(sources.big, BIG_ASSET)).version == "0.0"


@pytest.mark.parametrize("backend", for_step(Step.UPDATE), indirect=True)
async def test_update(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    await _publish_both(backend, sources, tmp_path)
    async with _manager(backend, tmp_path / "cache") as am:
        assert (await am.update(sources.directory, DIR_ASSET)).version == "0.1"
        assert (await am.update(sources.big, BIG_ASSET, bump_major=True)).version == "1.0"
        assert (await am.update(sources.big, BIG_ASSET, major="0")).version == "0.1"
        assert await am.versions(DIR_ASSET) == ["0.1", "0.0"]
        assert await am.versions(BIG_ASSET) == ["1.0", "0.1", "0.0"]
        meta = await am.meta(BIG_ASSET, "1.0")
        assert meta.pushed_by == "compat@tests"


@pytest.mark.parametrize("backend", for_step(Step.LIST), indirect=True)
async def test_list(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    await _publish_both(backend, sources, tmp_path)
    # Two keys a page: the listing of ~10 keys takes several pages (continuation tokens,
    # markers, or whatever the server offers).
    store = backend.store(replace(backend.store_options, list_page_size=2))
    async with _manager(backend, tmp_path / "cache", store) as am:
        assert await am.list_assets() == sorted([BIG_ASSET, DIR_ASSET])


@pytest.mark.parametrize("backend", for_step(Step.RANGED_FETCH), indirect=True)
async def test_ranged_fetch(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    await _publish_both(backend, sources, tmp_path)
    store = InstrumentedStore(backend.store())
    async with _manager(backend, tmp_path / "cache", store) as am:
        fetched = await am.fetch(f"{BIG_ASSET}:0")
        assert (fetched.version, fetched.from_cache, fetched.size) == ("0.0", False, BIG_SIZE)
        assert await anyio.Path(fetched.path).read_bytes() == _content("big", BIG_SIZE)
    # 1 MiB ranges of 3 MiB and a bit: four reads of the data object, not one.
    assert store.count("read", data_key(BIG_ASSET, "0.0")) >= 4


@pytest.mark.parametrize("backend", for_step(Step.SUB_PART_FETCH), indirect=True)
async def test_sub_part_fetch(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    await _publish_both(backend, sources, tmp_path)
    async with _manager(backend, tmp_path / "cache") as am:
        part = await am.fetch(f"{DIR_ASSET}:0.0[sub/merges.bin]")
        assert part.path.name == "merges.bin"
        assert await anyio.Path(part.path).read_bytes() == _content("sub/merges.bin", 70_000)
        whole = await am.fetch(f"{DIR_ASSET}:0.0")
        for relpath, size in DIR_FILES.items():
            assert await anyio.Path(whole.path / relpath).read_bytes() == _content(relpath, size)


@pytest.mark.parametrize("backend", for_step(Step.SECOND_PROCESS), indirect=True)
async def test_fetch_in_a_second_process(
    backend: Backend, sources: Sources, tmp_path: Path
) -> None:
    await _publish_both(backend, sources, tmp_path)
    cache = tmp_path / "other-process-cache"
    env = {
        **_environ(),
        **backend.env,
        "AIOMODELKIT_RANGE_THRESHOLD": str(MiB),
        "AIOMODELKIT_RANGE_PART_SIZE": str(MiB),
        "AIOMODELKIT_MAX_ATTEMPTS": "4",
    }
    specs = [f"{BIG_ASSET}:0.0", f"{DIR_ASSET}:0[sub/deeper/config.json]"]
    argv = [sys.executable, "-m", "aiomodelkit", "assets", "fetch", *specs]
    argv += ["--storage", backend.url, "--assets-dir", str(cache)]
    done = await anyio.run_process(argv, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    lines = [line.split("\t") for line in done.stdout.decode().splitlines()]
    assert [line[0] for line in lines] == specs
    paths = {line[0]: anyio.Path(line[1]) for line in lines}
    assert await paths[specs[0]].read_bytes() == _content("big", BIG_SIZE)
    assert await paths[specs[1]].read_bytes() == _content("sub/deeper/config.json", 10)


@pytest.mark.parametrize("backend", for_step(Step.MULTIPART_PUBLISH), indirect=True)
async def test_multipart_publish(backend: Backend, sources: Sources, tmp_path: Path) -> None:
    size = MULTIPART_THRESHOLD + MiB + 7
    store = backend.store()
    if Gap.NO_MULTIPART in backend.gaps:
        # Refused, naming the setting that works around it; then worked around with it.
        async with _manager(backend, tmp_path / "publisher-cache", store) as am:
            with pytest.raises(StoreError, match="raise multipart_threshold"):
                await am.new(sources.multipart, "compat/large")
        options = replace(backend.store_options, multipart_threshold=size)
        store = backend.store(options)
    async with _manager(backend, tmp_path / "publisher-cache", store) as am:
        assert (await am.new(sources.multipart, "compat/large")).size == size
    async with _manager(backend, tmp_path / "cache") as am:
        fetched = await am.fetch("compat/large:0.0")
        assert await anyio.Path(fetched.path).read_bytes() == _content("large", size)


RACERS = 2


@pytest.mark.parametrize("backend", for_step(Step.PUBLISH_RACE), indirect=True)
async def test_publish_race(backend: Backend, tmp_path: Path) -> None:
    """Two processes run ``assets update`` of one asset at once, as two CI jobs would.

    Whatever the server, never may both report the same version, nor may a version be
    listed whose content is not its publisher's, nor may a stray object or lease be left.
    Where conditional writes work, both succeed with the next two versions. Where they are
    ignored (under allow_unsafe_publish), the lease makes them take turns; one may instead
    fail with one clear line, never silently.
    """
    first = tmp_path / "first.bin"
    first.write_bytes(b"the first version")
    async with _manager(backend, tmp_path / "publisher-cache") as am:
        await am.new(first, "compat/race")
    env = {**_environ(), **backend.env, "AIOMODELKIT_MAX_ATTEMPTS": "4"}
    if Gap.IGNORES_CONDITIONAL_WRITES in backend.gaps:
        env["AIOMODELKIT_ALLOW_UNSAFE_PUBLISH"] = "true"
    sources = []
    for number in range(RACERS):
        source = tmp_path / f"racer-{number}.bin"
        source.write_bytes(f"published by racer {number}".encode() * 1000)
        sources.append(source)
    outcomes: dict[int, tuple[int, str, str]] = {}

    async def race(number: int) -> None:
        argv = [sys.executable, "-m", "aiomodelkit", "assets", "update", str(sources[number])]
        argv += ["compat/race", "--yes", "--storage", backend.url]
        done = await anyio.run_process(argv, env=env, check=False)
        outcomes[number] = (done.returncode, done.stdout.decode(), done.stderr.decode())

    async with anyio.create_task_group() as tg:
        for number in range(RACERS):
            tg.start_soon(race, number)
    published: dict[str, int] = {}
    for number, (status, stdout, stderr) in outcomes.items():
        if status == 0:
            version = stdout.strip().removeprefix("published compat/race:")
            assert version not in published, f"both racers report version {version}"
            published[version] = number
        else:
            errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1, stderr
            assert "Traceback" not in stderr
    if Gap.IGNORES_CONDITIONAL_WRITES not in backend.gaps:
        assert sorted(published) == ["0.1", "0.2"], outcomes
    assert published, outcomes  # at least one of them got through
    async with _manager(backend, tmp_path / "cache") as am:
        assert await am.versions("compat/race") == sorted([*published, "0.0"], reverse=True)
        for version, number in published.items():
            fetched = await am.fetch(f"compat/race:{version}", force=True)
            assert await anyio.Path(fetched.path).read_bytes() == sources[number].read_bytes()
    store = backend.store()
    async with store:
        keys = sorted([info.key async for info in store.list_objects("compat/race")])
    expected = ["compat/race.versions"]
    for version in ["0.0", *published]:
        expected += [f"compat/race/{version}", f"compat/race/{version}.meta"]
    assert keys == sorted(expected)  # no stray object, no lease left behind


def _environ() -> dict[str, str]:
    """Our environment (already isolated by the root conftest), for a child process."""
    import os

    return dict(os.environ)  # noqa: TID251 - handed to the child, not read as settings
