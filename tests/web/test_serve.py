"""``aiomodelkit serve``: its routes in process, then the command as a real process."""

from __future__ import annotations

import os
import signal
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiohttp import web

from aiomodelkit import AssetsManager, Model, ModelLibrary, Settings
from aiomodelkit._serve import make_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from .conftest import StartServer

MODELS = """
import time
from pathlib import Path
from typing import ClassVar

from aiomodelkit import Model

CLOSE_LOG = Path(__file__).with_name("closed.log")


class Words(Model[str, list[str]]):
    CONFIGURATIONS: ClassVar = {"words": {"asset": "test/words:0[words.txt]"}}

    def _load(self) -> None:
        time.sleep(0.5)  # a slow sync load: the server answers 503 meanwhile
        assert self.asset_path is not None
        self.words = set(self.asset_path.read_text().split())

    def _predict(self, item: str) -> list[str]:
        return [word for word in item.split() if word in self.words]

    async def close(self) -> None:
        with CLOSE_LOG.open("a") as log:
            log.write("closed words\\n")


class Count(Model[str, int]):
    CONFIGURATIONS: ClassVar = {"count": {"model_dependencies": ["words"]}}

    async def _predict_batch(self, items: list[str]) -> list[int]:
        words = self.model_dependencies.get("words", Words)
        return [len(found) for found in await words.predict_batch(items)]


class Fails(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"fails": {}}

    def _predict(self, item: int) -> int:
        raise ValueError(f"cannot predict {item}")


class Idle(Model[int, int]):
    CONFIGURATIONS: ClassVar = {"idle": {}}

    def _predict(self, item: int) -> int:
        return item
"""


async def test_serve(tmp_path: Path, start_server: StartServer) -> None:
    module = tmp_path / "served_models.py"
    module.write_text(MODELS)
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "words.txt").write_text("red green blue")
    async with AssetsManager(tmp_path / "publisher-cache", store.as_uri()) as am:
        await am.new(tmp_path / "words", "test/words")
    env = {
        **os.environ,  # noqa: TID251 - the server process inherits the test's (isolated) env
        "AIOMODELKIT_STORAGE": store.as_uri(),
        "AIOMODELKIT_ASSETS_DIR": str(tmp_path / "cache"),
    }
    required = ["-r", "count", "-r", "fails"]
    server = start_server(
        ["-m", "aiomodelkit", "serve", str(module), *required, "--port", "{port}"], env
    )
    url = server.url
    async with aiohttp.ClientSession() as session:
        seen = await server.wait_ready(session)
        assert seen[0] == 503, seen
        async with session.get(f"{url}/health") as response:
            assert response.status == 200
        async with session.get(f"{url}/ready") as response:
            body = await response.json()
            assert body["models"] == {"words": "loaded", "count": "loaded", "fails": "loaded"}
        async with session.post(f"{url}/predict/words", json="red car blue") as response:
            assert response.status == 200
            assert await response.json() == ["red", "blue"]
        async with session.post(f"{url}/predict/count/batch", json=["red", "a b"]) as response:
            assert response.status == 200
            assert await response.json() == [1, 0]
        async with session.post(f"{url}/predict/count", json="green blue") as response:
            assert await response.json() == 2
        async with session.post(f"{url}/predict/fails", json=7) as response:
            assert response.status == 500
            assert await response.json() == {"error": "ValueError: cannot predict 7"}
        # A new version, swapped in on demand with its dependent, while serving.
        (tmp_path / "words" / "words.txt").write_text("red car")
        async with AssetsManager(tmp_path / "publisher-cache", store.as_uri()) as am:
            await am.update(tmp_path / "words", "test/words")
        async with session.post(f"{url}/admin/reload") as response:
            assert response.status == 200
            body = await response.json()
        assert [(s["model"], s["old_version"], s["new_version"]) for s in body["swapped"]] == [
            ("words", "0.0", "0.1"),
            ("count", None, None),
        ]
        assert body["swapped"][1]["dependency"] == "words"
        assert body["failed"] == []
        async with session.post(f"{url}/predict/count", json="red car blue") as response:
            assert await response.json() == 2
        async with session.get(f"{url}/ready") as response:
            assert (await response.json())["versions"]["words"] == "0.1"
        async with session.post(f"{url}/admin/reload?model=nope") as response:
            assert response.status == 404
    assert server.stop(signal.SIGTERM) == 0, server.output()
    output = server.output()
    assert "listening on http://127.0.0.1:" in output
    assert "ready: 3 model(s) loaded" in output
    assert output.rstrip().endswith("library closed")
    assert (tmp_path / "closed.log").read_text() == "closed words\n" * 2  # 0.0, then 0.1


class Echo(Model[Any, Any]):
    CONFIGURATIONS: ClassVar = {"echo": {}, "idle": {}}

    def _predict(self, item: Any) -> Any:
        return item


class Broken(Model[int, Any]):
    CONFIGURATIONS: ClassVar = {"fails": {}, "opaque": {}}

    def _predict(self, item: int) -> Any:
        if self.configuration_key == "fails":
            raise ValueError(f"cannot predict {item}")
        return object()  # not JSON


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1, any free port, in this task (no task group)."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_routes_and_errors(tmp_path: Path) -> None:
    library = ModelLibrary(
        [Echo, Broken],
        required_models=["echo", "fails", "opaque"],
        settings=Settings(assets_dir=tmp_path / "cache"),
    )
    async with serving(make_app(library)) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/ready") as response:
            assert response.status == 503  # not entered yet
        async with session.post(f"{url}/predict/echo", json=1) as response:
            assert response.status == 503
            assert await response.json() == {"error": "the models are loading"}
        async with library:
            async with session.get(f"{url}/ready") as response:
                assert response.status == 200
                assert (await response.json())["ready"] is True
            async with session.post(f"{url}/predict/echo", json={"a": [1]}) as response:
                assert await response.json() == {"a": [1]}
            async with session.post(f"{url}/predict/echo/batch", json=[1, "b"]) as response:
                assert await response.json() == [1, "b"]
            # Errors are JSON, with a status that says whose fault it is.
            async with session.post(f"{url}/predict/ecko", json=1) as response:
                assert response.status == 404
                assert "did you mean 'echo'" in (await response.json())["error"]
            async with session.post(f"{url}/predict/idle", json=1) as response:
                assert response.status == 404  # configured, but not required: not served
                assert "not served" in (await response.json())["error"]
            async with session.post(f"{url}/predict/echo", data=b"{oops") as response:
                assert response.status == 400
                assert "not valid JSON" in (await response.json())["error"]
            async with session.post(f"{url}/predict/echo/batch", json="one") as response:
                assert response.status == 400
                assert "JSON list" in (await response.json())["error"]
            async with session.post(f"{url}/predict/fails", json=7) as response:
                assert response.status == 500
                assert await response.json() == {"error": "ValueError: cannot predict 7"}
            async with session.post(f"{url}/predict/opaque", json=7) as response:
                assert response.status == 500
                assert "PydanticSerializationError" in (await response.json())["error"]
        async with session.get(f"{url}/health") as response:
            assert response.status == 200


async def test_serving_under_a_memory_budget(tmp_path: Path) -> None:
    # Every model served, none required by name: none pinned, one loaded at a time.
    settings = Settings(assets_dir=tmp_path / "cache", max_loaded_models=1)
    library = ModelLibrary([Echo], settings=settings)
    async with library, serving(make_app(library)) as url, aiohttp.ClientSession() as session:
        for key in ("echo", "idle", "echo"):
            async with session.post(f"{url}/predict/{key}", json=key) as response:
                assert await response.json() == key
            assert [k for k, s in library.status().items() if s.loaded] == [key]
        assert library.status()["echo"].eviction_count == 1
        assert library.status()["echo"].load_count == 2
