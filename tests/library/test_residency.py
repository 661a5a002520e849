"""Many models in bounded memory (issue 15): LRU eviction, pins, in-flight predictions."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pytest

from aiomodelkit._errors import LoadError
from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._status import ModelEvent, ModelEvicted, ModelLoadFinished, ModelLoadStarted

from ._helpers import _settings

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit import Event

KEYS = [f"m{i}" for i in range(10)]


class Tracker:
    """What the models saw: which are open, the most open at once, closes per key."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.most = 0
        self.loads: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.order: list[str] = []  # closes, in order
        self.busy_at_close: list[int] = []
        self.gate: anyio.Event | None = None  # when set: predictions wait for it
        self.started = anyio.Event()


def sized(tracker: Tracker, assets: Path | None = None) -> type[Model[str, str]]:
    """A model class with ten configurations of 100 bytes each (``memory_bytes``); given
    ``assets``, each also has a 100-byte asset there, so its size is known before it loads."""
    size = 100
    configurations: dict[str, dict[str, Any]] = {key: {} for key in KEYS}
    if assets is not None:
        assets.mkdir()
        for key in KEYS:
            (assets / key).write_bytes(b"w" * size)
            configurations[key] = {"model_settings": {"asset_path": str(assets / key)}}

    class Sized(Model[str, str]):
        CONFIGURATIONS: ClassVar = configurations

        async def _load(self) -> None:
            tracker.loads[self.configuration_key] += 1
            tracker.open.add(self.configuration_key)
            tracker.most = max(tracker.most, len(tracker.open))

        def memory_bytes(self) -> int:
            return size

        async def _predict(self, item: str) -> str:
            if tracker.gate is not None:
                tracker.started.set()
                await tracker.gate.wait()
            return f"{self.configuration_key}:{item}"

        async def close(self) -> None:
            tracker.busy_at_close.append(self._in_flight)
            tracker.closes[self.configuration_key] += 1
            tracker.order.append(self.configuration_key)
            tracker.open.discard(self.configuration_key)

    return Sized


@pytest.mark.parametrize("budget", [{"max_loaded_models": 3}, {"max_loaded_bytes": 300}])
async def test_ten_models_under_a_budget_of_three(tmp_path: Path, budget: dict[str, int]) -> None:
    tracker = Tracker()
    settings = _settings(tmp_path, **budget)
    # Before its first load, a model reserves its asset's size on disk.
    events: list[ModelEvent | Event] = []
    model = sized(tracker, tmp_path / "assets")
    async with ModelLibrary(model, settings=settings, on_event=events.append) as lib:
        assert not tracker.loads  # on first use only
        for key in ["m0", "m1", "m2", "m0"]:
            assert await (await lib.aget(key)).predict("x") == f"{key}:x"
        await lib.aget("m3")  # m1 is the least recently used (m0 was used again)
        assert tracker.order == ["m1"]
        await lib.aget("m4")
        assert tracker.order == ["m1", "m2"]
        for key in KEYS:
            await lib.aget(key)
        status = lib.status()
        assert [key for key, s in status.items() if s.loaded] == ["m7", "m8", "m9"]
        assert tracker.most == 3
        for key in KEYS:  # close() exactly once per eviction
            assert tracker.closes[key] == status[key].eviction_count
            assert status[key].load_count == tracker.loads[key]
            assert status[key].size_bytes == 100
        assert status["m9"].last_used is not None
        assert status["m0"].last_used < status["m9"].last_used  # type: ignore[operator]
        assert tracker.busy_at_close == [0] * len(tracker.order)
        evicted = [e for e in events if isinstance(e, ModelEvicted)]
        assert [e.model for e in evicted] == tracker.order  # one event per eviction
        assert {e.size_bytes for e in evicted} == {100}
    assert sum(tracker.closes.values()) == sum(tracker.loads.values())  # the rest on exit


async def test_eviction_waits_for_the_running_prediction(tmp_path: Path) -> None:
    tracker = Tracker()
    tracker.gate = anyio.Event()
    settings = _settings(tmp_path, max_loaded_models=1)
    async with ModelLibrary(sized(tracker), settings=settings) as lib:
        m0 = await lib.aget("m0")
        results: list[str] = []

        async def predict() -> None:
            results.append(await m0.predict("x"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(predict)
            await tracker.started.wait()
            tg.start_soon(lib.aget, "m1")
            await anyio.wait_all_tasks_blocked()
            # m0 is detached (no new caller gets it) but not closed: m1 waits for the room.
            assert lib.status()["m0"].eviction_count == 1
            with pytest.raises(RuntimeError, match="not loaded"):
                lib.get("m0")
            assert tracker.closes["m0"] == 0
            assert "m1" not in tracker.loads
            tracker.gate.set()
        assert results == ["m0:x"]
        assert tracker.order == ["m0"]
        assert tracker.busy_at_close == [0]
        assert lib.get("m1").loaded
        with pytest.raises(RuntimeError, match="not loaded"):
            await m0.predict("stale")  # a closed model says so


async def test_concurrent_first_requests_load_in_parallel(tmp_path: Path) -> None:
    inside = 0
    all_in = anyio.Event()
    events: list[ModelEvent | Event] = []

    class Slow(Model[str, str]):
        CONFIGURATIONS: ClassVar = {key: {} for key in KEYS[:5]}

        async def _load(self) -> None:
            nonlocal inside
            inside += 1
            if inside == 5:
                all_in.set()
            with anyio.fail_after(5):  # fails unless all five loads overlap
                await all_in.wait()

        def _predict(self, item: str) -> str:
            return item

    settings = _settings(tmp_path, max_loaded_models=5)
    async with ModelLibrary(Slow, settings=settings, on_event=events.append) as lib:
        async with anyio.create_task_group() as tg:
            for key in KEYS[:5]:
                tg.start_soon(lib.aget, key)
    kinds = [type(e) for e in events if isinstance(e, ModelLoadStarted | ModelLoadFinished)]
    assert kinds == [ModelLoadStarted] * 5 + [ModelLoadFinished] * 5  # the timeline overlaps


async def test_concurrent_requests_of_one_model_share_one_load(tmp_path: Path) -> None:
    tracker = Tracker()
    settings = _settings(tmp_path, max_loaded_models=3)
    got: list[Model[Any, Any]] = []

    async def aget(lib: ModelLibrary) -> None:
        got.append(await lib.aget("m0"))

    async with ModelLibrary(sized(tracker), settings=settings) as lib:
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(aget, lib)
        assert tracker.loads == Counter({"m0": 1})
        assert len({id(model) for model in got}) == 1
        assert lib.status()["m0"].load_count == 1


async def test_many_concurrent_models_under_a_small_budget(tmp_path: Path) -> None:
    tracker = Tracker()
    settings = _settings(tmp_path, max_loaded_models=3)
    async with ModelLibrary(sized(tracker), settings=settings) as lib:

        async def use(key: str) -> None:
            assert await (await lib.aget(key)).predict("x") == f"{key}:x"

        async with anyio.create_task_group() as tg:
            for key in KEYS:
                tg.start_soon(use, key)
        assert tracker.most <= 3
        assert sum(s.loaded for s in lib.status().values()) <= 3
        assert tracker.busy_at_close == [0] * len(tracker.order)


async def test_a_model_too_big_alone_is_refused_by_name(tmp_path: Path) -> None:
    tracker = Tracker()
    settings = _settings(tmp_path, max_loaded_bytes=50)
    async with ModelLibrary(sized(tracker), settings=settings, allow_partial=True) as lib:
        with pytest.raises(LoadError, match=r"'m0' needs 100 B.*max_loaded_bytes=50 B") as info:
            await lib.aget("m0")
        assert info.value.model == "m0"
        assert tracker.closes["m0"] == 1  # measured after _load, then closed
        assert not lib.status()["m0"].loaded


async def test_size_falls_back_to_the_asset_on_disk(tmp_path: Path) -> None:
    asset = tmp_path / "weights.bin"
    asset.write_bytes(b"x" * 1000)

    class OnDisk(Model[str, str]):
        CONFIGURATIONS: ClassVar = {"disk": {"model_settings": {"asset_path": str(asset)}}}

        def _predict(self, item: str) -> str:
            return item

    settings = _settings(tmp_path, max_loaded_bytes=999)
    async with ModelLibrary(OnDisk, settings=settings, allow_partial=True) as lib:
        with pytest.raises(LoadError, match=r"'disk' needs 1000 B"):
            await lib.aget("disk")
    settings = _settings(tmp_path, max_loaded_bytes=1000)
    async with ModelLibrary(OnDisk, settings=settings) as lib:
        await lib.aget("disk")
        assert lib.status()["disk"].size_bytes == 1000


async def test_dependencies_and_required_models_are_pinned(tmp_path: Path) -> None:
    closes: list[str] = []

    class Node(Model[str, str]):
        CONFIGURATIONS: ClassVar = {
            "dep": {},
            "user": {"model_dependencies": ["dep"]},
            "other": {},
            "kept": {},
        }

        def _predict(self, item: str) -> str:
            return item

        async def close(self) -> None:
            closes.append(self.configuration_key)

    settings = _settings(tmp_path, max_loaded_models=3)
    required = ["kept", "dep", "user", "other"]
    async with ModelLibrary(Node, settings=settings, required_models=required) as lib:
        await lib.aget("dep")
        await lib.aget("user")
        await lib.aget("other")
        with pytest.raises(LoadError, match=r"'kept'.*does not fit.*max_loaded_models=3"):
            await lib.aget("kept")  # every loaded model is pinned: required ones
    closes.clear()
    settings = _settings(tmp_path, max_loaded_models=2)
    async with ModelLibrary(Node, settings=settings, required_models=["kept"]) as lib:
        await lib.aget("user")  # dep + user
        await lib.aget("dep")  # dep is used most recently, but user depends on it
        await lib.aget("other")
        assert closes == ["user"]
        await lib.aget("kept")  # now dep is free to go
        assert closes == ["user", "dep"]
        with pytest.raises(LoadError, match="does not fit"):
            await lib.aget("user")  # dep + user beside the pinned 'kept' need three


async def test_cancelled_during_an_eviction_the_library_keeps_serving(tmp_path: Path) -> None:
    tracker = Tracker()
    tracker.gate = anyio.Event()
    settings = _settings(tmp_path, max_loaded_models=1)
    async with ModelLibrary(sized(tracker), settings=settings) as lib:
        m0 = await lib.aget("m0")
        async with anyio.create_task_group() as tg:
            tg.start_soon(m0.predict, "x")
            await tracker.started.wait()
            with anyio.CancelScope() as scope:
                tg.start_soon(_cancel_when_blocked, scope, tracker)
                await lib.aget("m1")  # evicting m0, waiting for its prediction
            assert scope.cancelled_caught
        # The eviction completed under its shield; the cancelled load reserved nothing.
        assert tracker.order == ["m0"]
        assert tracker.busy_at_close == [0]
        assert "m1" not in tracker.loads
        tracker.gate = None
        assert await (await lib.aget("m1")).predict("y") == "m1:y"
        assert await (await lib.aget("m0")).predict("z") == "m0:z"
        status = lib.status()
        assert (status["m0"].loaded, status["m0"].load_count, status["m0"].eviction_count) == (
            True,
            2,
            1,
        )
        assert (status["m1"].loaded, status["m1"].eviction_count) == (False, 1)
        assert tracker.closes == Counter({"m0": 1, "m1": 1})


async def test_cancelled_during_a_load_releases_its_room(tmp_path: Path) -> None:
    entered, never = anyio.Event(), anyio.Event()

    class Stuck(Model[str, str]):
        CONFIGURATIONS: ClassVar = {"stuck": {}, "fine": {}}

        async def _load(self) -> None:
            if self.configuration_key == "stuck":
                entered.set()
                await never.wait()

        def _predict(self, item: str) -> str:
            return item

    settings = _settings(tmp_path, max_loaded_models=1)
    async with ModelLibrary(Stuck, settings=settings) as lib:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lib.aget, "stuck")
            await entered.wait()
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            assert (await lib.aget("fine")).loaded
        assert not lib.status()["stuck"].loaded


async def _cancel_when_blocked(scope: anyio.CancelScope, tracker: Tracker) -> None:
    await anyio.wait_all_tasks_blocked()  # the eviction waits for m0's prediction
    scope.cancel()
    await anyio.wait_all_tasks_blocked()  # the cancelled eviction still waits, shielded
    assert tracker.closes["m0"] == 0
    assert tracker.gate is not None
    tracker.gate.set()
