"""ModelLibrary access: lazy loading, typed get, the lifecycle guard, status and describe."""

from __future__ import annotations

import io
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pytest
from rich.console import Console

from aiomodelkit import AssetResolved, AssetsManager, Event
from aiomodelkit._errors import ModelTypeError, UnknownModelError
from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._status import ModelEvent, ModelLoadFinished, ModelLoadStarted, ModelState

from ._helpers import _A, _B, Const, _settings

if TYPE_CHECKING:
    from pathlib import Path


async def test_lazy_loading_is_single_flight(tmp_path: Path) -> None:
    loads: Counter[str] = Counter()
    gate = anyio.Event()

    class Tok(Model[str, str]):
        CONFIGURATIONS: ClassVar = {"tok": {}}

        async def _load(self) -> None:
            loads["tok"] += 1
            await gate.wait()

        def _predict(self, item: str) -> str:
            return item

    class User(Model[str, str]):
        CONFIGURATIONS: ClassVar = {
            "a": {"model_dependencies": ["tok"]},
            "b": {"model_dependencies": ["tok"]},
        }

        def _load(self) -> None:
            loads[self.configuration_key] += 1

        def _predict(self, item: str) -> str:
            return item

    got: list[Model[Any, Any]] = []

    async def aget(lib: ModelLibrary, key: str) -> None:
        got.append(await lib.aget(key, User))

    async with ModelLibrary([Tok, User], settings=_settings(tmp_path), lazy_loading=True) as lib:
        assert not loads
        assert {s.state for s in lib.status().values()} == {ModelState.PENDING}
        with pytest.raises(RuntimeError, match="aget"):
            lib.get("a")
        async with anyio.create_task_group() as tg:
            for key in ("a", "a", "b", "a"):
                tg.start_soon(aget, lib, key)
            await anyio.wait_all_tasks_blocked()
            gate.set()
        assert loads == {"tok": 1, "a": 1, "b": 1}
        assert len({id(m) for m in got}) == 2
        assert (await lib.aget("a")) is lib.get("a")


async def test_a_cancelled_lazy_load_is_retried(tmp_path: Path) -> None:
    loads: Counter[str] = Counter()
    gate = anyio.Event()

    class Gated(Model[str, str]):
        CONFIGURATIONS: ClassVar = {"gated": {}}

        async def _load(self) -> None:
            loads["gated"] += 1
            await gate.wait()

        def _predict(self, item: str) -> str:
            return item

    async with ModelLibrary(Gated, settings=_settings(tmp_path, lazy_loading=True)) as lib:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lib.aget, "gated")
            await anyio.wait_all_tasks_blocked()
            assert lib.status()["gated"].state is ModelState.LOADING
            tg.cancel_scope.cancel()
        assert lib.status()["gated"].state is ModelState.PENDING
        gate.set()
        model = await lib.aget("gated")
    assert model.loaded
    assert loads["gated"] == 2


async def test_typed_get_and_lookup_errors(tmp_path: Path) -> None:
    async with ModelLibrary(Const, settings=_settings(tmp_path)) as lib:
        const: Const = lib.get("const", Const)
        assert lib.get("const") is const
        assert (await lib.aget("const", Const)) is const
        with pytest.raises(ModelTypeError, match="'const' is a Const, not a _A"):
            lib.get("const", _A)
        with pytest.raises(UnknownModelError, match="did you mean 'const'"):
            lib.get("cnst")
        with pytest.raises(UnknownModelError):
            await lib.aget("cnst")


def _state(lib: ModelLibrary) -> str:
    # A call, so that mypy does not carry a narrowed `lib.state` across the awaits below.
    return lib.state.value


async def test_lifecycle_is_guarded(tmp_path: Path) -> None:
    lib = ModelLibrary(Const, settings=_settings(tmp_path))
    assert _state(lib) == "unopened"
    assert lib.status() == {}
    with pytest.raises(RuntimeError, match="enter the library"):
        lib.get("const")
    async with lib:
        assert lib.ready
        assert _state(lib) == "open"
        with pytest.raises(RuntimeError, match=r"already been entered|only once"):
            async with lib:
                pass
    assert _state(lib) == "closed"
    with pytest.raises(RuntimeError, match="only once"):
        async with lib:
            pass
    with pytest.raises(RuntimeError, match="closed"):
        await lib.aget("const")


async def test_status_describe_and_cache_hits_with_a_local_store(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    settings = _settings(tmp_path, storage=store_dir.as_uri())
    source = tmp_path / "weights.bin"
    source.write_bytes(b"\x00" * 1000)
    async with AssetsManager(settings=settings) as am:
        await am.new(source, "models/clf")

    class Clf(Model[str, int]):
        CONFIGURATIONS: ClassVar = {
            "clf": {"asset": "models/clf:0", "model_settings": {"scale": 2}},
        }

        def _load(self) -> None:
            assert self.asset_path is not None
            self.size = len(self.asset_path.read_bytes())

        def _predict(self, item: str) -> int:
            return self.size * int(self.model_settings["scale"])

        async def close(self) -> None:
            closed.append(self.configuration_key)

    class User(Model[str, int]):
        CONFIGURATIONS: ClassVar = {"user": {"model_dependencies": {"model": "clf"}}}

        async def _predict(self, item: str) -> int:
            return await self.model_dependencies.get("model", Clf).predict(item) + 1

        async def close(self) -> None:
            closed.append(self.configuration_key)

    sources = []
    closed: list[str] = []
    for _ in range(2):
        events: list[Event | ModelEvent] = []
        async with ModelLibrary([Clf, User], settings=settings, on_event=events.append) as lib:
            assert await lib.get("user", User).predict("x") == 2001
            status = lib.status()
            output = io.StringIO()
            lib.describe(Console(file=output, width=200))
        clf = status["clf"]
        sources.append(clf.asset_source)
        assert (clf.state, clf.asset_version, clf.dependencies) == (ModelState.LOADED, "0.0", ())
        assert clf.asset_path == tmp_path / "cache" / "models" / "clf" / "0.0"
        assert clf.fetch_seconds is not None
        assert clf.load_seconds is not None
        assert status["user"].dependencies == ("clf",)
        assert status["user"].asset_source is None
        assert [type(e) for e in events if isinstance(e, ModelEvent) and e.model == "user"] == [
            ModelLoadStarted,
            ModelLoadFinished,
        ]
        text = output.getvalue()
        for fragment in ("clf", "user", "models/clf:0", "0.0", "depends on clf as model", "scale"):
            assert fragment in text
    # The library built its own manager and forwarded its asset events.
    assert any(isinstance(e, AssetResolved) for e in events)
    assert sources == ["store", "cache"]
    assert closed == ["user", "clf"] * 2  # dependents close before their dependencies


async def test_describe_before_loading(tmp_path: Path) -> None:
    output = io.StringIO()
    ModelLibrary(
        [Const, _A, _B], required_models=["const"], configuration={"b": {"model_dependencies": []}}
    ).describe(Console(file=output, width=200))
    text = output.getvalue()
    assert "const" in text
    assert "pending" in text
    assert "(1 models)" in text  # only the required closure
    output = io.StringIO()
    ModelLibrary(
        [_A, _B], required_models=["a"], configuration={"b": {"model_dependencies": []}}
    ).describe(Console(file=output, width=200))
    assert "models/b" in output.getvalue()


# -- asset overrides ----------------------------------------------------------------------
