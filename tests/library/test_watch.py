"""Version watch and zero-downtime swaps (issue 15), on the local store and on moto's S3.

Every test publishes real versions through an :class:`AssetsManager` and serves them from a
:class:`ModelLibrary` with ``watch_interval`` (or ``reload()``); stores are wrapped in an
:class:`InstrumentedStore` to count the index reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pytest

from aiomodelkit import (
    AssetsManager,
    LoadError,
    ModelLibrary,
    ModelSwapFailed,
    ModelSwapped,
    Settings,
    UnknownModelError,
)
from aiomodelkit._model import Model
from aiomodelkit.cache import prune
from aiomodelkit.testing import InstrumentedStore

from ._helpers import publish as publish_to

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from aiomodelkit.stores import Store

    StoreFactory = Callable[[], Store]

INTERVAL = 0.2


class Board:
    """What the models saw, shared by one test's instances."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, str]] = []  # (key, content)
        self.closes: list[tuple[str, str]] = []
        self.busy_at_close: list[int] = []
        self.gate: anyio.Event | None = None  # while set, loads of "slow" wait for it
        self.loading = anyio.Event()
        self.head_gate: anyio.Event | None = None  # while set, loads of "head" wait for it
        self.head_loading = anyio.Event()


BOARD = Board()


class Weights(Model[str, str]):
    """Predicts the content of its asset's ``weights.txt``; ``bad`` content fails to load."""

    CONFIGURATIONS: ClassVar = {
        "clf": {"asset": "models/clf:0"},
        "clf-latest": {"asset": "models/clf"},
        "pinned": {"asset": "models/clf:0.0"},
        "other": {"asset": "models/other"},
    }

    async def _load(self) -> None:
        assert self.asset_path is not None
        content = await anyio.Path(self.asset_path / "weights.txt").read_text()
        BOARD.loads.append((self.configuration_key, content))
        if content == "bad":
            raise ValueError("corrupt weights")
        if content == "slow" and BOARD.gate is not None:
            BOARD.loading.set()
            await BOARD.gate.wait()
        self.content = content

    async def _predict(self, item: str) -> str:
        await anyio.sleep(0.001)
        return f"{self.content}:{item}"

    async def close(self) -> None:
        BOARD.busy_at_close.append(self._in_flight)
        BOARD.closes.append((self.configuration_key, self.content))


class Head(Model[str, str]):
    """Depends on ``clf``: predicts through it."""

    CONFIGURATIONS: ClassVar = {"head": {"model_dependencies": ["clf"]}}

    async def _load(self) -> None:
        content = self.model_dependencies.get("clf", Weights).content
        BOARD.loads.append(("head", content))
        if content == "breaks-head":
            raise ValueError("incompatible classifier")
        if BOARD.head_gate is not None:
            BOARD.head_loading.set()
            await BOARD.head_gate.wait()

    async def _predict(self, item: str) -> str:
        return "head/" + await self.model_dependencies.get("clf", Weights).predict(item)

    async def close(self) -> None:
        BOARD.closes.append(("head", ""))


@pytest.fixture(autouse=True)
def _board() -> None:
    global BOARD  # one board per test
    BOARD = Board()


class Stores:
    """One location: what the library reads (counted) and a fresh store for each publisher
    (a manager closes the store it was given)."""

    def __init__(self, factory: StoreFactory) -> None:
        self.factory = factory
        self.watched = InstrumentedStore(factory())


@pytest.fixture(params=["local", "s3"])
def stores(request: pytest.FixtureRequest) -> Stores:
    return Stores(request.getfixturevalue(f"{request.param}_store_factory"))


async def publish(stores: Stores, tmp_path: Path, name: str, content: str, **kw: Any) -> str:
    return await publish_to(stores.factory(), tmp_path, name, content, **kw)


def library(
    stores: Stores, tmp_path: Path, keys: list[str] | None, **settings: Any
) -> ModelLibrary:
    """A library reading ``stores.watched``; enter it with :func:`opened`."""
    recorder = Recorder()
    values = Settings(assets_dir=tmp_path / "cache", **settings)
    lib = ModelLibrary(
        [Weights, Head],
        required_models=keys,
        settings=values,
        assets_manager=AssetsManager(storage=stores.watched, settings=values),
        on_event=recorder,
    )
    RECORDERS[id(lib)] = recorder
    return lib


RECORDERS: dict[int, Recorder] = {}


class Recorder:
    """The library's events, and a wait for a condition that events change."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._changed = anyio.Event()

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool], limit: float) -> float:
        """Wait (at most ``limit`` seconds) until ``condition()``; return how long it took."""
        start = anyio.current_time()
        with anyio.fail_after(limit):
            while not condition():
                await self._changed.wait()
        return anyio.current_time() - start


def events(lib: ModelLibrary) -> list[Any]:
    return RECORDERS[id(lib)].events


async def until(lib: ModelLibrary, condition: Callable[[], bool], limit: float) -> float:
    return await RECORDERS[id(lib)].until(condition, limit)


@asynccontextmanager
async def opened(lib: ModelLibrary) -> AsyncIterator[ModelLibrary]:
    """Enter the library's manager (which a library given one does not own), then it."""
    async with lib._manager, lib:  # type: ignore[union-attr]
        yield lib


async def test_a_new_version_is_served_within_two_intervals_without_a_failed_request(
    stores: Stores, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")  # 0.0
    caplog.set_level(logging.INFO, logger="aiomodelkit")
    lib = library(stores, tmp_path, ["clf"], watch_interval=INTERVAL)
    answers: Counter[str] = Counter()
    failures: list[BaseException] = []

    async def stream() -> None:
        while True:
            try:
                answers[(await lib.get("clf").predict("x")).split(":")[0]] += 1
            except Exception as exc:  # every failure is the test's finding
                failures.append(exc)
            await anyio.sleep(0.001)

    async with opened(lib), anyio.create_task_group() as tg:
        assert lib.status()["clf"].version == "0.0"
        tg.start_soon(stream)
        await anyio.sleep(INTERVAL)
        await publish(stores, tmp_path, "models/clf", "two", major="0")  # 0.1
        limit = 2 * INTERVAL + 2
        took = await until(lib, lambda: lib.status()["clf"].version == "0.1", limit)
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert took < 2 * INTERVAL + 1.0  # two intervals, the fetch and the load
    assert not failures
    assert answers["one"]
    assert answers["two"]
    # The old instance closed once, after its running predictions, and the new one at exit.
    assert BOARD.closes == [("clf", "one"), ("clf", "two")]
    assert BOARD.busy_at_close == [0, 0]
    swaps = [e for e in events(lib) if isinstance(e, ModelSwapped)]
    assert [(e.model, e.old_version, e.new_version) for e in swaps] == [("clf", "0.0", "0.1")]
    status = lib.status()["clf"]
    assert (status.swap_count, status.failed_version, status.load_count) == (1, None, 2)
    audit = [r.__dict__["aiomodelkit"] for r in caplog.records if hasattr(r, "aiomodelkit")]
    swapped = [
        (r["model"], r["old_version"], r["new_version"]) for r in audit if "old_version" in r
    ]
    assert swapped == [("clf", "0.0", "0.1")]


async def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    stores: Stores, tmp_path: Path
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"], watch_interval=INTERVAL)
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "bad", major="0")  # 0.1
        await until(lib, lambda: lib.status()["clf"].failed_version == "0.1", 3)
        status = lib.status()["clf"]
        assert status.version == "0.0"
        assert isinstance(status.swap_error, LoadError)
        assert "swapping to version 0.1 failed: ValueError: corrupt weights" in str(
            status.swap_error
        )
        assert await lib.get("clf").predict("x") == "one:x"
        failed = [e for e in events(lib) if isinstance(e, ModelSwapFailed)]
        assert [(e.version, e.failed_version) for e in failed] == [("0.0", "0.1")]
        # An unchanged index is not tried again: three more intervals, one failed load.
        await anyio.sleep(3 * INTERVAL)
        assert BOARD.loads.count(("clf", "bad")) == 1
        # A newer version goes in, and the failure is cleared.
        await publish(stores, tmp_path, "models/clf", "three", major="0")  # 0.2
        await until(lib, lambda: lib.status()["clf"].version == "0.2", 3)
        assert lib.status()["clf"].failed_version is None
        assert await lib.get("clf").predict("x") == "three:x"


async def test_a_pinned_spec_and_an_unchanged_index_cost_nothing_more(
    stores: Stores, tmp_path: Path
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["pinned", "clf", "clf-latest"], watch_interval=INTERVAL)
    async with opened(lib):
        store = stores.watched
        before = store.count("read", ".versions")
        start = anyio.current_time()
        await anyio.sleep(5 * INTERVAL)
        await publish(stores, tmp_path, "models/clf", "two", major="0")
        await until(lib, lambda: lib.status()["clf-latest"].version == "0.1", 3)
        await until(lib, lambda: lib.status()["clf"].version == "0.1", 3)
        elapsed = anyio.current_time() - start
        reads = store.count("read", ".versions") - before
        assert lib.status()["pinned"].version == "0.0"  # never watched
    # One conditional read per interval for the name that two models share.
    intervals = elapsed / (INTERVAL * 0.85)
    assert 3 <= reads <= intervals + 1
    assert store.not_modified >= 3  # the unchanged index came back as "not modified"


async def test_a_dependent_is_reloaded_against_the_new_instance(
    stores: Stores, tmp_path: Path
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["head"])
    async with opened(lib):
        assert await lib.get("head").predict("x") == "head/one:x"
        await publish(stores, tmp_path, "models/clf", "two", major="0")
        events = await lib.reload()
        assert [(e.model, type(e).__name__) for e in events] == [
            ("clf", "ModelSwapped"),
            ("head", "ModelSwapped"),
        ]
        assert isinstance(events[1], ModelSwapped)
        assert events[1].dependency == "clf"
        assert await lib.get("head").predict("x") == "head/two:x"
        # Dependents close first, then what they depended on.
        assert BOARD.closes == [("head", ""), ("clf", "one")]
        assert BOARD.loads[-1] == ("head", "two")
        assert await lib.reload() == []  # nothing newer


async def test_reload_is_checked(stores: Stores, tmp_path: Path) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"])
    with pytest.raises(RuntimeError, match="unopened"):
        await lib.reload()
    async with opened(lib):
        with pytest.raises(UnknownModelError, match="did you mean 'clf'"):
            await lib.reload("clff")
        assert await lib.reload("clf") == []
    with pytest.raises(RuntimeError, match="closed"):
        await lib.reload()


async def test_a_cancelled_swap_leaves_the_old_instance_serving(
    stores: Stores, tmp_path: Path
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"])
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "slow", major="0")
        BOARD.gate = anyio.Event()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lib.reload)
                await BOARD.loading.wait()
                assert await lib.get("clf").predict("x") == "one:x"  # serving meanwhile
                scope.cancel()
        assert lib.status()["clf"].version == "0.0"
        assert lib.status()["clf"].failed_version is None
        assert BOARD.closes == []  # the new instance never finished loading: nothing to close
        assert await lib.get("clf").predict("x") == "one:x"
        BOARD.gate.set()
        events = await lib.reload()  # the cache kept the fetched version: it loads
        assert [e.new_version for e in events if isinstance(e, ModelSwapped)] == ["0.1"]
        assert await lib.get("clf").predict("x") == "slow:x"


async def test_closing_the_library_during_a_swap(stores: Stores, tmp_path: Path) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"], watch_interval=INTERVAL)
    BOARD.gate = anyio.Event()
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "slow", major="0")
        with anyio.fail_after(5):
            await BOARD.loading.wait()
    # Leaving cancelled the watch mid-load: the old instance closed once, and it only.
    assert BOARD.closes == [("clf", "one")]


async def test_each_asset_name_is_read_once_per_check(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    await publish(stores, tmp_path, "models/other", "o")
    lib = library(stores, tmp_path, ["clf", "clf-latest", "other", "pinned"])
    store = stores.watched
    async with opened(lib):
        before = store.count("read", "models/clf.versions"), store.count("read", ".versions")
        await lib.reload()
        # Two models watch models/clf (and one is pinned): one read; one for models/other.
        assert store.count("read", "models/clf.versions") - before[0] == 1
        assert store.count("read", ".versions") - before[1] == 2


async def test_a_dependent_that_fails_to_load_rolls_the_whole_swap_back(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["head"])
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "breaks-head", major="0")
        (event,) = await lib.reload()
        assert isinstance(event, ModelSwapFailed)
        assert (event.model, event.version, event.failed_version) == ("clf", "0.0", "0.1")
        assert "ValueError: incompatible classifier" in str(event.error)
        assert BOARD.closes == [("clf", "breaks-head")]  # the new clf, never in service
        assert await lib.get("head").predict("x") == "head/one:x"
        assert lib.status()["clf"].version == "0.0"


async def test_a_swap_under_a_memory_budget(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    await publish(stores, tmp_path, "models/other", "o")
    # Every model configured, none required: none is pinned.
    lib = library(stores, tmp_path, None, max_loaded_models=1)
    async with opened(lib):
        await (await lib.aget("clf")).predict("x")
        await publish(stores, tmp_path, "models/clf", "two!", major="0")
        (event,) = await lib.reload()
        assert isinstance(event, ModelSwapped)
        status = lib.status()["clf"]
        assert (status.version, status.size_bytes, status.loaded) == ("0.1", 4, True)
        # The budget still holds: loading another closes the swapped-in instance.
        assert await (await lib.aget("other")).predict("x") == "o:x"
        assert not lib.status()["clf"].loaded
        assert BOARD.closes == [("clf", "one"), ("clf", "two!")]
        assert await (await lib.aget("clf")).predict("x") == "two!:x"


async def test_an_error_in_the_body_is_raised_as_it_is_while_watching(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"], watch_interval=INTERVAL)

    async def body() -> None:
        async with opened(lib):
            try:
                raise ValueError("cause")
            except ValueError as exc:
                raise KeyError("mine") from exc

    with pytest.raises(KeyError, match="mine") as info:
        await body()
    assert isinstance(info.value.__cause__, ValueError)  # not an ExceptionGroup, cause kept
    assert BOARD.closes == [("clf", "one")]


async def test_a_spec_the_lock_file_covers_is_never_watched(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    lock = tmp_path / "assets.lock"
    async with AssetsManager(
        storage=stores.factory(), settings=Settings(assets_dir=tmp_path)
    ) as am:
        await am.lock(["models/clf:0"], lock)
    await publish(stores, tmp_path, "models/clf", "two", major="0")
    settings = Settings(assets_dir=tmp_path / "cache", lock_file=lock, watch_interval=0.05)
    lib = ModelLibrary(
        [Weights],
        required_models=["clf"],
        settings=settings,
        assets_manager=AssetsManager(storage=stores.watched, settings=settings),
    )
    async with opened(lib):
        await anyio.sleep(0.3)
        assert await lib.reload() == []
        assert lib.status()["clf"].version == "0.0"  # locked, though 0.1 exists
    assert stores.watched.count("read", ".versions") == 0


async def test_a_dependent_loading_during_a_swap_loads_again_against_the_new_instance(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["head"], lazy_loading=True)
    async with opened(lib):
        await lib.aget("clf")
        await publish(stores, tmp_path, "models/clf", "two", major="0")
        BOARD.head_gate = gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lib.aget, "head")
            await BOARD.head_loading.wait()  # head is loading on clf 0.0
            (event,) = await lib.reload()  # clf swaps; head is not loaded yet
            assert isinstance(event, ModelSwapped)
            BOARD.head_gate = None
            gate.set()
        assert await lib.get("head").predict("x") == "head/two:x"
        assert [load for load in BOARD.loads if load[0] == "head"] == [
            ("head", "one"),
            ("head", "two"),
        ]
        # The old clf, drained; the head built on it, never in service.
        assert BOARD.closes == [("clf", "one"), ("head", "")]


async def test_a_swapped_out_version_is_no_longer_held_in_use(
    stores: Stores, tmp_path: Path
) -> None:
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf"])
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "two", major="0")
        await lib.reload()
        # The library serves 0.1 and holds it in use; 0.0 may go (another process may
        # still use it: the cache tooling decides, never the swap).
        report = await anyio.to_thread.run_sync(partial(prune, tmp_path / "cache", max_size=0))
        assert [(v.name, v.version) for v in report.removed] == [("models/clf", "0.0")]
        assert [(k.version.version, k.reason) for k in report.kept] == [("0.1", "in use")]
        assert await lib.get("clf").predict("x") == "two:x"


async def test_reload_of_one_model_leaves_the_others_of_its_asset_to_the_watch(
    memory_store_factory: StoreFactory, tmp_path: Path
) -> None:
    stores = Stores(memory_store_factory)
    await publish(stores, tmp_path, "models/clf", "one")
    lib = library(stores, tmp_path, ["clf", "clf-latest"], watch_interval=INTERVAL)
    async with opened(lib):
        await publish(stores, tmp_path, "models/clf", "two", major="0")
        await lib.reload("clf")  # clf-latest shares the index: it must still see the change
        assert lib.status()["clf"].version == "0.1"
        await until(lib, lambda: lib.status()["clf-latest"].version == "0.1", 2 * INTERVAL + 2)
