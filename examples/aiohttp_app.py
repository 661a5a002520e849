"""aiohttp recipe: the server answers at once and reports 503 on ``/ready`` while the models load.

Run from the repository root: ``python -m examples.aiohttp_app [--host H] [--port P]``
(127.0.0.1:8000 by default, as uvicorn and ``aiomodelkit serve``). ``GET /metrics`` serves the
Prometheus metrics of :mod:`aiomodelkit.metrics` (``pip install -e '.[metrics]'``).

A ``cleanup_ctx`` generator owns a task group for the whole life of the app: one task in it
enters the library (fetch and load every model, concurrently) and holds it open; the
generator yields at once, so the server starts answering while that task is still loading.
At cleanup the generator cancels the task, which leaves ``async with library`` and closes
every model. aiohttp runs the startup and cleanup halves in the same task, so the task
group is entered and exited by one task, as anyio requires.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from aiohttp import web

from aiomodelkit import ModelLibrary
from aiomodelkit.metrics import exposition, instrument

from .models import Sentiment, make_library

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

logger = logging.getLogger(__name__)

LIBRARY = web.AppKey("library", ModelLibrary)
routes = web.RouteTableDef()


async def hold_library(library: ModelLibrary) -> None:
    """Load the library and keep it open until cancelled; a failure is logged, not raised
    (raising would cancel aiohttp's main task), and ``/ready`` keeps answering 503."""
    try:
        async with library:
            logger.info("models loaded: %s", ", ".join(library.status()))
            await anyio.sleep_forever()
    except Exception:
        logger.exception("the model library failed to load")
    finally:
        logger.info("model library closed")


async def library_context(app: web.Application) -> AsyncIterator[None]:
    library = app[LIBRARY] = make_library()
    with instrument():  # /metrics counts this process's fetches and models, failures included
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_library, library)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()  # leaves `async with library`: every model is closed


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 once every model is loaded, 503 before (with each model's state)."""
    library = request.app[LIBRARY]
    states = {key: status.state.value for key, status in library.status().items()}
    return web.json_response(
        {"ready": library.ready, "models": states}, status=200 if library.ready else 503
    )


@routes.post("/predict")
async def predict(request: web.Request) -> web.Response:
    """The sentiment of ``{"text": ...}``."""
    library = request.app[LIBRARY]
    if not library.ready:
        return web.json_response({"error": "the models are loading"}, status=503)
    try:
        body = await request.json()
        text = body["text"]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'expected JSON like {"text": "..."}'}, status=400)
    if not isinstance(text, str):
        return web.json_response({"error": "text must be a string"}, status=400)
    # aget: under a memory budget (max_loaded_models) the model loads on first use; with
    # watch_interval it is the newest instance, swapped in while serving.
    model = await library.aget("sentiment", Sentiment)
    result = await model.predict(text)
    return web.json_response(result.model_dump())


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics: fetches, store requests, models (every worker's, in multiprocess
    mode: ``PROMETHEUS_MULTIPROC_DIR``)."""
    page = await anyio.to_thread.run_sync(exposition)  # blocking: it measures the cache
    return web.Response(body=page.body, headers={"Content-Type": page.content_type})


@routes.post("/admin/reload")
async def reload(request: web.Request) -> web.Response:
    """Check now for newer versions and swap them in (keep /admin private)."""
    library = request.app[LIBRARY]
    if not library.ready:
        return web.json_response({"error": "the models are loading"}, status=503)
    events = await library.reload()
    return web.json_response({"events": [type(e).__name__ + f" {e.model}" for e in events]})


def create_app() -> web.Application:
    """The application; the library loads when it starts."""
    app = web.Application()
    app.cleanup_ctx.append(library_context)
    app.add_routes(routes)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the example models with aiohttp.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
