"""ModelLibrary: concurrent loading in dependency order, failures, lazy mode, status, describe."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pytest
from rich.console import Console

from aiomodelkit import (
    AssetNotFoundError,
    AssetResolved,
    AssetsManager,
    Event,
    Settings,
    _singleflight,
)
from aiomodelkit._errors import (
    DependencyCycleError,
    InvalidVersionError,
    LoadError,
    ModelTypeError,
    UnknownModelError,
)
from aiomodelkit._library import LibraryState, ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit._status import (
    ModelEvent,
    ModelFailed,
    ModelFetchFinished,
    ModelLoadFinished,
    ModelLoadStarted,
    ModelState,
)
from aiomodelkit.stores import MemoryStore
from aiomodelkit.testing import InstrumentedStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(assets_dir=tmp_path / "cache", **values)


async def publish(store: MemoryStore, tmp_path: Path, name: str, content: str) -> str:
    """Publish ``content`` as a one-file directory asset (``weights.txt``); return its version."""
    source = tmp_path / "sources" / uuid.uuid4().hex
    source.mkdir(parents=True)
    (source / "weights.txt").write_text(content)
    settings = Settings(assets_dir=tmp_path / "publisher-cache")
    async with AssetsManager(storage=store, settings=settings) as am:
        try:
            return (await am.update(source, name)).version
        except AssetNotFoundError:
            return (await am.new(source, name)).version


class Const(Model[str, str]):
    """A model without an asset: predicts the ``value`` setting."""

    CONFIGURATIONS: ClassVar = {"const": {"model_settings": {"value": "c"}}}

    def _predict(self, item: str) -> str:
        return str(self.model_settings["value"])


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


class _A(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"a": {"asset": "models/a", "model_dependencies": ["b"]}}

    def _predict(self, item: int) -> int:
        return item


class _B(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"b": {"asset": "models/b", "model_dependencies": ["a"]}}

    def _predict(self, item: int) -> int:
        return item


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


class Weights(Model[str, str]):
    """Predicts the text of its asset (a ``weights.txt`` file)."""

    CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/clf:0.0[weights.txt]"}}

    def _load(self) -> None:
        assert self.asset_path is not None
        self.text = self.asset_path.read_text()

    def _predict(self, item: str) -> str:
        return self.text


async def _predict_clf(store: MemoryStore, settings: Settings, **options: Any) -> tuple[str, Any]:
    async with (
        AssetsManager(storage=store, settings=settings) as am,
        ModelLibrary(Weights, assets_manager=am, settings=settings, **options) as lib,
    ):
        return await lib.get("clf", Weights).predict(""), lib.status()["clf"]


async def test_version_override_keeps_the_sub_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/clf", "v0")
    await publish(store, tmp_path, "models/clf", "v1")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_VERSION", "0.1")
    text, status = await _predict_clf(store, _settings(tmp_path))
    assert text == "v1"
    assert str(status.asset) == "models/clf:0.1[weights.txt]"  # modelkit would drop [weights.txt]
    assert status.asset_path.name == "weights.txt"
    assert ModelLibrary(Weights).list_assets() == {"clf": status.asset}


async def test_file_override_skips_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    local = tmp_path / "local.txt"
    local.write_text("from env")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(local))
    text, status = await _predict_clf(store, _settings(tmp_path))
    assert (text, status.asset_path, status.asset_source) == ("from env", local, "env_file")
    assert store.requests == 0
    assert ModelLibrary(Weights).list_assets() == {}
    # modelkit's variable is a fallback.
    monkeypatch.delenv("AIOMODELKIT_MODELS_CLF_FILE")
    monkeypatch.setenv("MODELKIT_MODELS_CLF_FILE", str(local))
    assert (await _predict_clf(store, _settings(tmp_path)))[0] == "from env"
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(tmp_path / "absent"))
    with pytest.raises(LoadError, match="AIOMODELKIT_MODELS_CLF_FILE names a missing path") as info:
        await _predict_clf(store, _settings(tmp_path))
    assert isinstance(info.value.__cause__, AssetNotFoundError)
    assert store.requests == 0


def _override_dir(tmp_path: Path) -> Path:
    root = tmp_path / "override"
    for version in ("0.0", "0.1"):
        (root / "models" / "clf" / version).mkdir(parents=True)
        (root / "models" / "clf" / version / "weights.txt").write_text(f"override {version}")
    (root / "models" / "clf" / "0.1.incomplete-0123abcd").mkdir()  # never picked
    return root


async def test_override_dir_honours_the_version(tmp_path: Path) -> None:
    store = MemoryStore()  # empty: any fetch would fail
    settings = _settings(tmp_path, assets_dir_override=_override_dir(tmp_path))
    text, status = await _predict_clf(store, settings)
    assert (text, status.asset_source, status.asset_version) == (
        "override 0.0",  # the pinned version, not the newest there (as modelkit would)
        "override_dir",
        "0.0",
    )
    partial = {"clf": {"asset": "models/clf:0[weights.txt]"}}
    assert (await _predict_clf(store, settings, configuration=partial))[0] == "override 0.1"
    assert store.requests == 0
    # Absent from the override dir: falls through to the store.
    await publish(store, tmp_path, "models/other", "from the store")
    other = {"clf": {"asset": "models/other[weights.txt]"}}
    text, status = await _predict_clf(store, settings, configuration=other)
    assert (text, status.asset_source) == ("from the store", "store")


async def test_override_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/clf", "store")
    explicit, env_file = tmp_path / "explicit.txt", tmp_path / "env.txt"
    explicit.write_text("asset_path")
    env_file.write_text("env file")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(env_file))
    with_dir = _settings(tmp_path, assets_dir_override=_override_dir(tmp_path))
    by_setting = {"clf": {"asset_path": str(explicit)}}
    assert (await _predict_clf(store, with_dir, required_models=by_setting))[0] == "asset_path"
    assert (await _predict_clf(store, with_dir))[0] == "env file"
    monkeypatch.delenv("AIOMODELKIT_MODELS_CLF_FILE")
    assert (await _predict_clf(store, with_dir))[0] == "override 0.0"
    assert (await _predict_clf(store, _settings(tmp_path)))[0] == "store"


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
async def test_a_warm_start_looks_up_every_asset_in_one_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    """Pinned and cached: one worker-thread hop for every lookup, no store client."""
    store = MemoryStore()
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w")
    keys = [f"m{index:02d}" for index in range(50)]
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        for key in keys:
            await am.new(source, f"models/{key}")
            await am.fetch(f"models/{key}:0.0")
    configurations = {key: {"asset": f"models/{key}:0.0"} for key in keys}

    class Warm(Model[int, int]):
        CONFIGURATIONS: ClassVar = configurations

        async def _load(self) -> None:
            assert self.asset_path is not None

        def _predict(self, item: int) -> int:
            return item

    rounds: list[int] = []
    run_all = _singleflight._run_all

    def spy(calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        rounds.append(len(calls))
        return run_all(calls)

    monkeypatch.setattr(_singleflight, "_run_all", spy)
    counted = InstrumentedStore(store)
    settings = _settings(tmp_path, offline=offline)
    async with (
        AssetsManager(storage=counted, settings=settings) as am,
        ModelLibrary([Warm], assets_manager=am, settings=settings) as lib,
    ):
        sources = {status.asset_source for status in lib.status().values()}
        assert am.store is not None
        assert not am.store.opened  # type: ignore[attr-defined]
    assert sources == {"cache"}
    assert rounds == [50]
    assert counted.requests == 0
