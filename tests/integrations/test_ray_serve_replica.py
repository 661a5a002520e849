"""ModelReplica's logic in this process, with a stand-in for ``ray.serve``.

The stand-in provides the two functions a replica calls: ``multiplexed`` (recording the cap
and every advertised model id) and ``get_multiplexed_model_id`` (a context variable the test
sets, as Ray sets it per request). The replica is built as Ray Serve builds it: ``__new__``,
then the awaited ``__init__``. What Ray itself does with the replica is in
``test_ray_serve.py``.
"""

from __future__ import annotations

import json
import sys
import types
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from starlette.requests import Request

from aiomodelkit import LoadError, Model, Settings, UnknownModelError
from aiomodelkit.integrations.ray_serve import ModelReplica, deployment

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from starlette.types import Message

CLOSED: list[str] = []


class Echo(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"a": {}, "b": {}, "c": {}}

    def _predict(self, item: str) -> str:
        if item == "boom":
            raise RuntimeError("the model broke")
        return f"{self.configuration_key}:{item}"

    async def close(self) -> None:
        CLOSED.append(self.configuration_key)


class Broken(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"broken": {}}

    def _load(self) -> None:
        raise OSError("no weights")

    def _predict(self, item: str) -> str:
        return item


@dataclass
class FakeDeployment:
    """What ``serve.deployment(**options)(ModelReplica)`` stands for; ``bind`` returns the
    arguments the replicas would get."""

    replica: type[ModelReplica]

    def bind(self, *args: Any, **kwargs: Any) -> tuple[type[ModelReplica], Any, Any]:
        return self.replica, args, kwargs


@dataclass
class FakeServe:
    """What a replica asks of ``ray.serve``."""

    model_id: ContextVar[str] = field(default_factory=lambda: ContextVar("model_id", default=""))
    caps: list[int] = field(default_factory=list)
    advertised: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def deployment(self, **options: Any) -> Callable[[type[ModelReplica]], FakeDeployment]:
        self.options = options
        return FakeDeployment

    def multiplexed(
        self, max_num_models_per_replica: int
    ) -> Callable[[Callable[[str], Awaitable[str]]], Callable[[str], Awaitable[str]]]:
        self.caps.append(max_num_models_per_replica)

        def wrap(load: Callable[[str], Awaitable[str]]) -> Callable[[str], Awaitable[str]]:
            async def advertise(model_id: str) -> str:
                self.advertised.append(model_id)
                return await load(model_id)

            return advertise

        return wrap

    def get_multiplexed_model_id(self) -> str:
        return self.model_id.get()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> FakeServe:
    fake = FakeServe()
    module = types.ModuleType("ray.serve")
    module.multiplexed = fake.multiplexed  # type: ignore[attr-defined]
    module.get_multiplexed_model_id = fake.get_multiplexed_model_id  # type: ignore[attr-defined]
    module.deployment = fake.deployment  # type: ignore[attr-defined]
    package = types.ModuleType("ray")
    package.serve = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", package)
    monkeypatch.setitem(sys.modules, "ray.serve", module)
    CLOSED.clear()
    return fake


async def start(
    tmp_path: Path, models: Any = Echo, replica: ModelReplica | None = None, **kwargs: Any
) -> ModelReplica:
    """A replica built as Ray Serve builds one: ``__new__``, then the awaited ``__init__``."""
    replica = replica or ModelReplica.__new__(ModelReplica)
    settings = Settings(assets_dir=tmp_path / "cache")
    await replica.__init__(models, settings=settings, **kwargs)  # type: ignore[misc]
    return replica


def http_request(body: bytes) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def test_a_replica_serves_by_model_id_and_closes_its_models(
    serve: FakeServe, tmp_path: Path
) -> None:
    replica = await start(tmp_path, max_loaded_models=2, preload=["a"])
    assert serve.caps == [2]  # Ray advertises as many models as the library keeps
    assert serve.advertised == ["a"]
    await replica.check_health()
    serve.model_id.set("b")
    assert await replica("x") == "b:x"  # an item from a handle
    assert await replica.predict_batch(["y", "z"]) == ["b:y", "b:z"]
    serve.model_id.set("c")
    assert await replica.predict("x") == "c:x"  # the third model: "a" is evicted, closed
    assert CLOSED == ["a"]
    assert {key for key, status in (await replica.status()).items() if status.loaded} == {"b", "c"}
    closing = replica.__del__()  # as Ray Serve does at shutdown: a coroutine, awaited
    assert closing is not None
    await closing
    assert replica.__del__() is None  # then, as the garbage collector calls it: nothing
    assert sorted(CLOSED) == ["a", "b", "c"]
    with pytest.raises(RuntimeError, match="closed"):
        await replica.check_health()
    await replica.aclose()  # again: nothing to do


async def test_a_handle_gets_errors_raised(serve: FakeServe, tmp_path: Path) -> None:
    replica = await start(tmp_path)
    assert serve.caps == [-1]  # no budget: Ray's "no limit"
    try:
        with pytest.raises(ValueError, match="no model id"):
            await replica.predict("x")
        serve.model_id.set("aa")
        with pytest.raises(UnknownModelError, match="did you mean"):
            await replica.predict("x")
    finally:
        await replica.aclose()


async def test_http_requests_get_json_answers(serve: FakeServe, tmp_path: Path) -> None:
    replica = await start(tmp_path)

    async def post(model_id: str, body: bytes) -> tuple[int, Any]:
        serve.model_id.set(model_id)
        response = await replica(http_request(body))
        return response.status_code, json.loads(response.body)

    try:
        assert await post("a", b'"x"') == (200, "a:x")
        status, answer = await post("zz", b'"x"')
        assert (status, "'zz'" in answer["error"]) == (404, True)
        status, answer = await post("", b'"x"')
        assert (status, "no model id" in answer["error"]) == (400, True)
        status, answer = await post("a", b"{not json")
        assert (status, "not valid JSON" in answer["error"]) == (400, True)
        assert await post("a", b'"boom"') == (500, {"error": "RuntimeError: the model broke"})
    finally:
        await replica.aclose()


async def test_a_failed_preload_fails_the_replica_and_closes_it(
    serve: FakeServe, tmp_path: Path
) -> None:
    replica = ModelReplica.__new__(ModelReplica)
    with pytest.RaisesGroup(LoadError):
        await start(tmp_path, [Echo, Broken], replica, preload=["a", "broken"])
    with pytest.raises(RuntimeError, match="closed"):  # what had loaded is closed too
        await replica.check_health()


async def test_an_unknown_preload_fails_before_anything_opens(
    serve: FakeServe, tmp_path: Path
) -> None:
    with pytest.raises(UnknownModelError):
        await start(tmp_path, preload=["nope"])


def test_deployment_binds_the_replica_with_its_options(serve: FakeServe, tmp_path: Path) -> None:
    settings = Settings(assets_dir=tmp_path / "cache", max_loaded_models=3)
    app: Any = deployment(
        Echo,
        settings=settings,
        name="echo",
        num_replicas=2,
        preload=["a", "b", "c"],  # fits the settings' budget
        max_ongoing_requests=8,
        ray_actor_options={"num_cpus": 0.5},
    )
    assert serve.options == {
        "name": "echo",
        "num_replicas": 2,
        "max_ongoing_requests": 8,
        "ray_actor_options": {"num_cpus": 0.5},
    }
    assert app == (
        ModelReplica,
        (Echo,),
        {
            "settings": settings,
            "max_loaded_models": None,  # the replicas read it from the settings
            "preload": ("a", "b", "c"),
            "configuration": None,
        },
    )
