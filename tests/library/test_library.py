"""ModelLibrary: concurrent loading in dependency order, in threads or on the loop."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, ClassVar

import anyio

from aiomodelkit import AssetsManager, Event
from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._status import ModelEvent, ModelFetchFinished, ModelState
from aiomodelkit.stores import MemoryStore

from ._helpers import Const, _settings, publish

if TYPE_CHECKING:
    from pathlib import Path


async def test_dependencies_load_first_and_branches_overlap(tmp_path: Path) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/tok", "a b c")
    loads: Counter[str] = Counter()
    left_loading, right_loading = anyio.Event(), anyio.Event()

    class Tok(Model[str, list[str]]):
        CONFIGURATIONS: ClassVar = {"tok": {"asset": "models/tok:0.0[weights.txt]"}}

        async def _load(self) -> None:
            loads["tok"] += 1
            assert self.asset_path is not None
            self.vocab = set((await anyio.Path(self.asset_path).read_text()).split())

        def _predict(self, item: str) -> list[str]:
            return [word for word in item.split() if word in self.vocab]

    class Branch(Model[str, int]):
        CONFIGURATIONS: ClassVar = {
            "left": {
                "model_dependencies": {"tokenizer": "tok"},
                "model_settings": {"mine": left_loading, "other": right_loading},
            },
            "right": {
                "model_dependencies": {"tokenizer": "tok"},
                "model_settings": {"mine": right_loading, "other": left_loading},
            },
        }

        async def _load(self) -> None:
            loads[self.configuration_key] += 1
            self.tokenizer = self.model_dependencies.get("tokenizer", Tok)
            assert self.tokenizer.loaded
            self.model_settings["mine"].set()
            # Passes only if the two branches are loading at the same time.
            with anyio.fail_after(1):
                await self.model_settings["other"].wait()

        async def _predict(self, item: str) -> int:
            return len(await self.tokenizer.predict(item))

    events: list[Event | ModelEvent] = []
    settings = _settings(tmp_path)
    async with (
        AssetsManager(storage=store, settings=settings) as am,
        ModelLibrary(
            [Branch, Tok], assets_manager=am, settings=settings, on_event=events.append
        ) as lib,
    ):
        assert await lib.get("left", Branch).predict("a b x") == 2
        assert lib.ready
    assert loads == {"tok": 1, "left": 1, "right": 1}  # the shared dependency loaded once
    timeline = [(type(e).__name__, e.model) for e in events if isinstance(e, ModelEvent)]
    tok_done = timeline.index(("ModelLoadFinished", "tok"))
    for branch in ("left", "right"):
        assert timeline.index(("ModelLoadStarted", branch)) > tok_done
    finished = {e.model: e for e in events if isinstance(e, ModelFetchFinished)}
    assert finished["tok"].version == "0.0"
    assert finished["tok"].path.name == "weights.txt"


async def test_assets_are_fetched_dependencies_first_while_they_load(tmp_path: Path) -> None:
    store = MemoryStore()
    for name in ("tok", "head1", "head2", "solo"):
        await publish(store, tmp_path, f"models/{name}", name)
    events: list[Event | ModelEvent] = []
    heads_fetched = anyio.Event()

    def on_event(event: Event | ModelEvent) -> None:
        events.append(event)
        fetched = {e.model for e in events if isinstance(e, ModelFetchFinished)}
        if {"head1", "head2"} <= fetched:
            heads_fetched.set()

    class Tok(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"tok": {"asset": "models/tok"}}

        async def _load(self) -> None:
            # Deadlocks (and fails after 1 s) unless the heads fetch while "tok" loads.
            with anyio.fail_after(1):
                await heads_fetched.wait()

        def _predict(self, item: int) -> int:
            return item

    class Head(Model[int, int]):
        CONFIGURATIONS: ClassVar = {
            "head1": {"asset": "models/head1", "model_dependencies": ["tok", "const"]},
            "head2": {"asset": "models/head2", "model_dependencies": ["tok"]},
            "solo": {"asset": "models/solo"},
        }

        def _predict(self, item: int) -> int:
            return item

    settings = _settings(tmp_path)
    async with (
        AssetsManager(storage=store, settings=settings) as am,
        ModelLibrary([Head, Tok, Const], assets_manager=am, on_event=on_event) as lib,
    ):
        status = lib.status()
    position = {(type(e).__name__, getattr(e, "model", "")): i for i, e in enumerate(events)}
    for head in ("head1", "head2"):
        # after the dependency's asset, and while it loads (Tok._load waits for them)
        assert position[("ModelFetchStarted", head)] > position[("ModelFetchFinished", "tok")]
        head_started, tok_finished = status[head].load_started, status["tok"].load_finished
        assert head_started is not None
        assert tok_finished is not None
        assert head_started >= tok_finished
    # a model without dependencies is not held back
    assert position[("ModelFetchStarted", "solo")] < position[("ModelFetchFinished", "tok")]


async def test_a_failed_dependency_fetch_lets_its_dependents_go_on(tmp_path: Path) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/head", "head")

    class Missing(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/missing:1"}}

        def _predict(self, item: int) -> int:
            return item

    class Head(Model[int, int]):
        CONFIGURATIONS: ClassVar = {
            "head": {"asset": "models/head", "model_dependencies": ["clf"]},
        }

        def _predict(self, item: int) -> int:
            return item

    settings = _settings(tmp_path)
    with anyio.fail_after(5):
        async with (
            AssetsManager(storage=store, settings=settings) as am,
            ModelLibrary([Missing, Head], assets_manager=am, allow_partial=True) as lib,
        ):
            status = lib.status()
    assert status["clf"].state is ModelState.FAILED
    assert status["head"].state is ModelState.FAILED
    assert status["head"].fetch_finished is not None  # its own asset was still fetched
    assert "dependency 'clf' failed" in str(status["head"].error)


async def test_validation_can_be_switched_on_for_the_library(tmp_path: Path) -> None:
    class Parse(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"parse": {}}

        def _predict(self, item: int) -> int:
            return item * 2

    async with ModelLibrary(Parse, validate=True, settings=_settings(tmp_path)) as lib:
        assert await lib.get("parse").predict("21") == 42
    async with ModelLibrary(Parse, settings=_settings(tmp_path)) as lib:
        assert await lib.get("parse").predict("21") == "2121"


async def test_sync_loads_run_concurrently_in_threads(tmp_path: Path) -> None:
    barrier = threading.Barrier(2, timeout=1)  # broken unless both loads run at once
    threads: set[int] = set()

    class Blocking(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"one": {}, "two": {}}

        def _load(self) -> None:
            threads.add(threading.get_ident())
            barrier.wait()

        def _predict(self, item: int) -> int:
            return item

    async with ModelLibrary(Blocking, settings=_settings(tmp_path)) as lib:
        assert lib.get("one").loaded
        assert lib.get("two").loaded
    assert len(threads) == 2
    assert threading.get_ident() not in threads


async def test_event_loop_stays_responsive_during_a_slow_sync_load(tmp_path: Path) -> None:
    class Slow(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"slow": {}}

        def _load(self) -> None:
            time.sleep(0.3)

        def _predict(self, item: int) -> int:
            return item

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        async with ModelLibrary(Slow, settings=_settings(tmp_path)) as lib:
            status = lib.status()["slow"]
        tg.cancel_scope.cancel()
    assert status.load_seconds is not None
    assert status.load_seconds >= 0.3
    assert ticks >= 10  # ~30 expected; a blocked loop would give 0 or 1
