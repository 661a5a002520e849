"""ModelLibrary failures: config errors before any I/O, cancelling the others, partial libraries."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import anyio
import pytest

from aiomodelkit import AssetNotFoundError, AssetsManager, Event
from aiomodelkit._errors import (
    DependencyCycleError,
    InvalidVersionError,
    LoadError,
    UnknownModelError,
)
from aiomodelkit._library import LibraryState, ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._status import ModelEvent, ModelFailed, ModelState
from aiomodelkit.stores import MemoryStore

from ._helpers import _A, _B, Const, _settings

if TYPE_CHECKING:
    from pathlib import Path


async def test_config_errors_come_before_any_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    settings = _settings(tmp_path, storage=(tmp_path / "store").as_uri())
    lib = ModelLibrary([_A, _B], settings=settings)
    with pytest.raises(DependencyCycleError, match=r"a -> b -> a|b -> a -> b"):
        async with lib:
            pass
    assert lib.state is LibraryState.CLOSED
    with pytest.raises(UnknownModelError, match="did you mean 'const'"):
        async with ModelLibrary([Const], required_models=["konst"], settings=settings):
            pass
    monkeypatch.setenv("AIOMODELKIT_MODELS_A_VERSION", "not/a version")
    # Settings read the environment when they are built (the library reads none of its own).
    settings = _settings(tmp_path, storage=(tmp_path / "store").as_uri())

    class Single(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"single": {"asset": "models/a"}}

        def _predict(self, item: int) -> int:
            return item

    with pytest.raises(InvalidVersionError) as bad:
        async with ModelLibrary(Single, settings=settings):
            pass
    assert "from AIOMODELKIT_MODELS_A_VERSION, for model 'single'" in bad.value.__notes__
    # Nothing was opened: no cache directory, no store, no request.
    assert not (tmp_path / "cache").exists()
    assert not (tmp_path / "store").exists()
    async with AssetsManager(storage=store, settings=settings) as am:
        with pytest.raises(DependencyCycleError):
            async with ModelLibrary([_A, _B], assets_manager=am, settings=settings):
                pass
    assert store.requests == 0


async def test_a_failure_cancels_the_others_and_closes_the_loaded(tmp_path: Path) -> None:
    closed: list[str] = []
    cancelled: list[str] = []
    ok_loaded, slow_started = anyio.Event(), anyio.Event()

    class Ok(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"ok": {}}

        async def _load(self) -> None:
            ok_loaded.set()

        def _predict(self, item: int) -> int:
            return item

        async def close(self) -> None:
            closed.append(self.configuration_key)

    class Slow(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"slow": {}}

        async def _load(self) -> None:
            slow_started.set()
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                cancelled.append(self.configuration_key)
                raise

        def _predict(self, item: int) -> int:
            return item

    class Broken(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"broken": {}}

        async def _load(self) -> None:
            await ok_loaded.wait()
            await slow_started.wait()
            raise ValueError("boom")

        def _predict(self, item: int) -> int:
            return item

    events: list[Event | ModelEvent] = []
    lib = ModelLibrary([Ok, Slow, Broken], settings=_settings(tmp_path), on_event=events.append)
    with pytest.raises(LoadError) as info:
        async with lib:
            pytest.fail("the library must not open")
    assert info.value.model == "broken"
    assert isinstance(info.value.__cause__, ValueError)
    assert "loading failed: ValueError: boom" in str(info.value)
    assert closed == ["ok"]
    assert cancelled == ["slow"]
    status = lib.status()
    assert status["broken"].state is ModelState.FAILED
    assert status["broken"].error is info.value
    assert status["slow"].state is ModelState.PENDING
    assert [e.model for e in events if isinstance(e, ModelFailed)] == ["broken"]
    with pytest.raises(RuntimeError, match="closed"):
        lib.get("ok")


async def test_a_failing_close_is_logged_and_the_others_still_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed: list[str] = []

    class Closing(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"first": {}, "second": {}}

        def _predict(self, item: int) -> int:
            return item

        async def close(self) -> None:
            closed.append(self.configuration_key)
            raise OSError(f"cannot close {self.configuration_key}")

    async with ModelLibrary(Closing, settings=_settings(tmp_path)):
        pass
    assert sorted(closed) == ["first", "second"]
    assert {r.getMessage() for r in caplog.records} == {
        "closing model 'first' failed",
        "closing model 'second' failed",
    }


async def test_a_fetch_failure_names_the_model_and_asset(tmp_path: Path) -> None:
    class Missing(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/missing:1"}}

        def _predict(self, item: int) -> int:
            return item

    class Dependent(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"dependent": {"model_dependencies": ["clf"]}}

        def _predict(self, item: int) -> int:
            return item

    store = MemoryStore()
    settings = _settings(tmp_path)
    async with AssetsManager(storage=store, settings=settings) as am:
        with pytest.raises(LoadError) as info:
            async with ModelLibrary([Missing, Dependent, Const], assets_manager=am):
                pass
    assert (info.value.model, info.value.asset) == ("clf", "models/missing:1")
    assert isinstance(info.value.__cause__, AssetNotFoundError)
    assert "fetching the asset failed" in str(info.value)


async def test_allow_partial_serves_what_loaded(tmp_path: Path) -> None:
    class Broken(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"broken": {}}

        def _load(self) -> None:
            raise OSError("disk on fire")

        def _predict(self, item: int) -> int:
            return item

    class Dependent(Model[int, int]):
        CONFIGURATIONS: ClassVar = {"dependent": {"model_dependencies": {"b": "broken"}}}

        def _predict(self, item: int) -> int:
            return item

    async with ModelLibrary(
        [Broken, Dependent, Const], settings=_settings(tmp_path), allow_partial=True
    ) as lib:
        assert await lib.get("const", Const).predict("x") == "c"
        status = lib.status()
        assert status["const"].state is ModelState.LOADED
        assert status["broken"].state is ModelState.FAILED
        assert status["dependent"].state is ModelState.FAILED
        with pytest.raises(LoadError, match="disk on fire") as broken:
            lib.get("broken")
        with pytest.raises(LoadError, match="dependency 'broken' failed") as dependent:
            await lib.aget("dependent")
        assert dependent.value.__cause__ is broken.value
        assert dependent.value.model == "dependent"
