"""examples/aiohttp_app.py under a real aiohttp server process."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import aiohttp
import anyio

if TYPE_CHECKING:
    from .conftest import StartServer


async def test_aiohttp_recipe(example_env: dict[str, str], start_server: StartServer) -> None:
    server = start_server(
        ["-m", "examples.aiohttp_app", "--host", "127.0.0.1", "--port", "{port}"], example_env
    )
    async with aiohttp.ClientSession() as session:
        seen = await server.wait_ready(session)
        assert seen[0] == 503, seen  # serving while the models load
        review = {"text": "An awful, bad day"}
        async with session.post(f"{server.url}/predict", json=review) as response:
            assert response.status == 200
            assert await response.json() == {
                "label": "negative",
                "score": -3.0,
                "words": ["an", "awful", "bad", "day"],
            }
        async with session.post(f"{server.url}/predict", data=b"{not json") as response:
            assert response.status == 400
        async with session.get(f"{server.url}/health") as response:
            assert response.status == 200
    assert server.stop(signal.SIGTERM) == 0, server.output()
    assert "model library closed" in server.output()
    closed = (await anyio.Path(example_env["EXAMPLE_CLOSE_LOG"]).read_text()).splitlines()
    assert closed == ["closed sentiment", "closed vocabulary"]  # dependents first
