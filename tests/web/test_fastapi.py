"""examples/fastapi_app.py under a real uvicorn process."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import aiohttp
import anyio

if TYPE_CHECKING:
    from .conftest import StartServer


async def test_fastapi_recipe(example_env: dict[str, str], start_server: StartServer) -> None:
    server = start_server(
        ["-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1", "--port", "{port}"],
        example_env,
    )
    async with aiohttp.ClientSession() as session:
        seen = await server.wait_ready(session)
        assert seen[0] == 503, seen  # serving while the models load
        async with session.get(f"{server.url}/ready") as response:
            assert await response.json() == {
                "ready": True,
                "models": {"vocabulary": "loaded", "sentiment": "loaded"},
            }
        review = {"text": "A great day, not a sad one"}
        async with session.post(f"{server.url}/predict", json=review) as response:
            assert response.status == 200
            assert await response.json() == {
                "label": "positive",
                "score": 1.0,
                "words": ["a", "great", "day", "a", "sad"],
            }
        async with session.post(f"{server.url}/predict", json={"txt": "x"}) as response:
            assert response.status == 422
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 200
        async with session.post(f"{server.url}/admin/reload") as response:
            assert await response.json() == {"events": []}  # nothing newer published
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            page = await response.text()
        loaded = 'aiomodelkit_model_state{model="sentiment",state="loaded"} 1.0'
        assert loaded in page.splitlines()
    assert server.stop(signal.SIGINT) == 0, server.output()
    assert "Application shutdown complete" in server.output()
    closed = (await anyio.Path(example_env["EXAMPLE_CLOSE_LOG"]).read_text()).splitlines()
    assert closed == ["closed sentiment", "closed vocabulary"]  # dependents first
