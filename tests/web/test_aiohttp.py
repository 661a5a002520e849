"""examples/aiohttp_app.py under a real aiohttp server process."""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING

import aiohttp
import anyio

from aiomodelkit import AssetsManager

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import StartServer


async def test_aiohttp_recipe(
    example_env: dict[str, str], start_server: StartServer, tmp_path: Path
) -> None:
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
        # New weights, swapped in while serving.
        weights = tmp_path / "weights.json"
        await anyio.Path(weights).write_text(json.dumps({"bad": 5.0}))
        store = example_env["AIOMODELKIT_STORAGE"]
        async with AssetsManager(tmp_path / "publisher-cache", store) as am:
            assert (await am.update(weights, "examples/sentiment")).version == "0.1"
        async with session.post(f"{server.url}/admin/reload") as response:
            assert await response.json() == {"events": ["ModelSwapped sentiment"]}
        async with session.post(f"{server.url}/predict", json={"text": "bad"}) as response:
            assert (await response.json())["score"] == 5.0
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            page = (await response.text()).splitlines()
        swaps = 'aiomodelkit_model_swaps_total{model="sentiment",outcome="ok"} 1.0'
        assert swaps in page
        assert 'aiomodelkit_model_version_info{model="sentiment",version="0.1"} 1.0' in page
    assert server.stop(signal.SIGTERM) == 0, server.output()
    assert "model library closed" in server.output()
    closed = (await anyio.Path(example_env["EXAMPLE_CLOSE_LOG"]).read_text()).splitlines()
    # The swapped-out instance, then at exit dependents first.
    assert closed == ["closed sentiment", "closed sentiment", "closed vocabulary"]
