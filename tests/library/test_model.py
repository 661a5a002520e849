"""Model: sync and async _load/_predict/_predict_batch, batching, validation, dependencies."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pydantic
import pytest

from aiomodelkit._errors import ConfigError, ModelkitError, ModelTypeError, UnknownModelError
from aiomodelkit._lookup import did_you_mean
from aiomodelkit._model import Model, ModelDependencies


class SyncItem(Model[int, int]):
    def _predict(self, item: int) -> int:
        return item + 1


class AsyncItem(Model[int, int]):
    async def _predict(self, item: int) -> int:
        return item * 10


class SyncBatch(Model[int, int]):
    batch_size = 2

    def _load(self) -> None:
        self.calls: list[list[int]] = []

    def _predict_batch(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        return [-i for i in items]


class AsyncBatch(Model[str, int]):
    async def _load(self) -> None:
        self.calls: list[list[str]] = []

    async def _predict_batch(self, items: list[str]) -> list[int]:
        self.calls.append(list(items))
        return [len(i) for i in items]


class Point(pydantic.BaseModel):
    x: int
    y: int


class Validated(Model[Point, int]):
    validate = True

    def _predict(self, item: Point) -> int:
        assert isinstance(item, Point)
        return item.x + item.y


class BadResult(Model[int, int]):
    validate = True

    def _predict(self, item: int) -> int:
        return "not a number"  # type: ignore[return-value]


async def _loaded(model: Model[Any, Any]) -> Model[Any, Any]:
    await model.load()
    return model


async def test_predict_sync_and_async() -> None:
    sync = SyncItem()
    asynchronous = AsyncItem()
    await sync.load()
    await asynchronous.load()
    assert await sync.predict(1) == 2
    assert await asynchronous.predict(2) == 20
    assert await sync.predict_batch([1, 2, 3]) == [2, 3, 4]
    assert await asynchronous.predict_batch(iter([1, 2])) == [10, 20]
    assert await sync.predict_batch([]) == []


async def test_predict_batch_sync_and_async_in_batches() -> None:
    sync = SyncBatch()
    await sync.load()
    assert await sync.predict_batch([1, 2, 3, 4, 5]) == [-1, -2, -3, -4, -5]
    assert sync.calls == [[1, 2], [3, 4], [5]]  # the class's batch_size
    assert await sync.predict(7) == -7
    assert await sync.predict_batch([1, 2, 3], batch_size=3) == [-1, -2, -3]
    assert sync.calls[-1] == [1, 2, 3]

    asynchronous = AsyncBatch()
    await asynchronous.load()
    assert await asynchronous.predict_batch(["a", "bb", "ccc"]) == [1, 2, 3]
    assert asynchronous.calls == [["a", "bb", "ccc"]]  # no batch_size: one batch
    assert await asynchronous.predict("four") == 4
    with pytest.raises(ConfigError, match="at least 1"):
        await asynchronous.predict_batch(["a"], batch_size=0)


async def test_predict_batch_must_return_one_result_per_item() -> None:
    class Short(Model[int, int]):
        def _predict_batch(self, items: list[int]) -> list[int]:
            return items[:-1]

    model = await _loaded(Short())
    with pytest.raises(ModelkitError, match="returned 1 results for 2 items"):
        await model.predict_batch([1, 2])


async def test_sync_load_runs_in_a_thread_async_load_on_the_loop() -> None:
    loop_thread = threading.get_ident()

    class SyncLoad(Model[int, int]):
        def _load(self) -> None:
            self.thread = threading.get_ident()

        def _predict(self, item: int) -> int:
            return threading.get_ident()

    class AsyncLoad(Model[int, int]):
        predict_in_thread = True

        async def _load(self) -> None:
            self.thread = threading.get_ident()

        def _predict(self, item: int) -> int:
            return threading.get_ident()

    sync, asynchronous = SyncLoad(), AsyncLoad()
    await sync.load()
    await asynchronous.load()
    assert sync.thread != loop_thread
    assert asynchronous.thread == loop_thread
    assert await sync.predict(0) == loop_thread  # cheap sync predicts run inline
    assert await asynchronous.predict(0) != loop_thread  # predict_in_thread
    assert sync.loaded
    assert "loaded" in repr(sync)


async def test_predict_before_load_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not loaded"):
        await SyncItem(configuration_key="inc").predict(1)


async def test_load_loads_dependencies_first_and_once() -> None:
    order: list[str] = []

    class Dep(Model[int, int]):
        def _load(self) -> None:
            order.append("dep")

        def _predict(self, item: int) -> int:
            return item

    class Top(Model[int, int]):
        async def _load(self) -> None:
            order.append("top")
            assert self.model_dependencies["dep"].loaded

        def _predict(self, item: int) -> int:
            return item

    top = Top(model_dependencies={"dep": Dep()})
    await top.load()
    await top.load()
    assert order == ["dep", "top"]


def test_exactly_one_predict_is_enforced_at_class_definition() -> None:
    with pytest.raises(ConfigError, match="both _predict and _predict_batch"):

        class Both(Model[int, int]):
            def _predict(self, item: int) -> int:
                return item

            def _predict_batch(self, items: list[int]) -> list[int]:
                return items

    with pytest.raises(ConfigError, match="overrides neither"):

        class Neither(Model[int, int]):
            CONFIGURATIONS: ClassVar = {"neither": {}}

    class AbstractBase(Model[int, int]):
        """No CONFIGURATIONS: a base for other models may leave predicting to them."""

    assert AbstractBase.CONFIGURATIONS == {}

    with pytest.raises(ConfigError, match="close must be an 'async def'"):

        class SyncClose(Model[int, int]):
            def _predict(self, item: int) -> int:
                return item

            def close(self) -> None:  # type: ignore[override]
                pass


async def test_validation_coerces_items_and_checks_results() -> None:
    model = await _loaded(Validated())
    assert await model.predict({"x": 1, "y": 2}) == 3
    assert await model.predict_batch([{"x": 1, "y": 1}, Point(x=2, y=2)]) == [2, 4]
    with pytest.raises(pydantic.ValidationError):
        await model.predict({"x": "not an int"})
    bad = await _loaded(BadResult())
    with pytest.raises(pydantic.ValidationError):
        await bad.predict(1)
    # Off by default, and switchable per instance.
    assert not SyncItem.validate
    unchecked = await _loaded(BadResult(validate=False))
    assert await unchecked.predict(1) == "not a number"


def test_generic_types() -> None:
    class Open(Model[Any, Any]):
        def _predict(self, item: Any) -> Any:
            return item

    class Child(Validated):
        pass

    assert Validated.item_type() is Point
    assert Validated.return_type() is int
    assert Child.item_type() is Point
    assert Open.item_type() is Any


class Tokenizer(Model[str, list[str]]):
    def _predict(self, item: str) -> list[str]:
        return item.split()


async def test_typed_dependencies() -> None:
    tok = await _loaded(Tokenizer())
    deps = ModelDependencies({"tok": tok}, owner="clf")
    got: Tokenizer = deps.get("tok", Tokenizer)
    assert got is tok
    assert deps.get("tok") is tok
    assert deps["tok"] is tok
    assert "tok" in deps
    assert list(deps) == ["tok"]
    assert len(deps) == 1
    assert dict(deps.items()) == {"tok": tok}
    assert list(deps.keys()) == ["tok"]
    assert "tok" in repr(deps)
    with pytest.raises(ModelTypeError, match="is a Tokenizer, not a SyncItem") as wrong:
        deps.get("tok", SyncItem)
    assert isinstance(wrong.value, TypeError)
    with pytest.raises(UnknownModelError, match="did you mean 'tok'") as missing:
        deps.get("tokk")
    assert isinstance(missing.value, LookupError)
    assert missing.value.model == "clf"


def test_model_attributes() -> None:
    model = SyncItem(configuration_key="inc", asset_path="/models/inc", model_settings={"a": 1})
    assert model.configuration_key == "inc"
    assert str(model.asset_path) == "/models/inc"
    assert model.model_settings == {"a": 1}
    with pytest.raises(TypeError):
        model.model_settings["a"] = 2  # type: ignore[index]
    assert SyncItem().configuration_key == "SyncItem"
    assert SyncItem().asset_path is None


def test_did_you_mean() -> None:
    assert did_you_mean("clasifier", ["classifier", "other"]) == "; did you mean 'classifier'?"
    assert did_you_mean("zzz", ["classifier"]) == ""
