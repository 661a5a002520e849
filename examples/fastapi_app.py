"""FastAPI recipe: the server answers at once and reports 503 on ``/ready`` while the models load.

Run from the repository root, after ``pip install -e '.[fastapi]'`` (FastAPI, uvicorn and
prometheus-client): ``uvicorn examples.fastapi_app:app`` (see ``examples/__init__.py``).
``GET /metrics`` serves the Prometheus metrics of :mod:`aiomodelkit.metrics`; with
``uvicorn --workers N``, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory first and it
serves every worker's.

The lifespan owns a task group for the whole life of the app. One task in it enters the
library (``async with library``: fetch and load every model, concurrently) and then holds it
open; the lifespan yields at once, so uvicorn starts serving while that task is still
loading. At shutdown the lifespan cancels the task, which leaves ``async with library`` and
closes every model. uvicorn runs the whole lifespan in one task, so the task group is entered
and exited by the same task, as anyio requires.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel

from aiomodelkit import ModelLibrary
from aiomodelkit.metrics import exposition, instrument

from .models import Sentiment, SentimentResult, make_library

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

logger = logging.getLogger(__name__)


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    library: ModelLibrary


async def hold_library(library: ModelLibrary) -> None:
    """Load the library and keep it open until cancelled; a failure is logged, not raised
    (raising would cancel the server's lifespan task), and ``/ready`` keeps answering 503."""
    try:
        async with library:
            logger.info("models loaded: %s", ", ".join(library.status()))
            await anyio.sleep_forever()
    except Exception:
        logger.exception("the model library failed to load")
    finally:
        logger.info("model library closed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    library = make_library()  # the ModelLibrary of examples/models.py
    with instrument():  # /metrics counts this process's fetches and models, failures included
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_library, library)  # async with library: ...; await sleep_forever()
            try:
                yield {"library": library}  # /ready: 503 until library.ready
            finally:
                tg.cancel_scope.cancel()  # leaves `async with library`: every model closes


app = FastAPI(title="aiomodelkit example", lifespan=lifespan)


def get_library(request: Request) -> ModelLibrary:
    library: ModelLibrary = request.state.library
    return library


Library = Annotated[ModelLibrary, Depends(get_library)]


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@app.get("/ready")
async def ready(library: Library, response: Response) -> dict[str, Any]:
    """Readiness: 200 once every model is loaded, 503 before (with each model's state)."""
    if not library.ready:
        response.status_code = 503
    states = {key: status.state.value for key, status in library.status().items()}
    return {"ready": library.ready, "models": states}


@app.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics: fetches, store requests, models (every worker's, in multiprocess
    mode: ``PROMETHEUS_MULTIPROC_DIR``)."""
    page = await anyio.to_thread.run_sync(exposition)  # blocking: it measures the cache
    return Response(page.body, media_type=page.content_type)


class Review(BaseModel):
    text: str


@app.post("/predict")
async def predict(review: Review, library: Library) -> SentimentResult:
    """The sentiment of a text."""
    if not library.ready:
        raise HTTPException(status_code=503, detail="the models are loading")
    # aget: under a memory budget (max_loaded_models) the model loads on first use; with
    # watch_interval it is the newest instance, swapped in while serving.
    model = await library.aget("sentiment", Sentiment)
    return await model.predict(review.text)


@app.post("/admin/reload")
async def reload(library: Library) -> dict[str, list[str]]:
    """Check now for newer versions and swap them in (keep /admin private)."""
    if not library.ready:
        raise HTTPException(status_code=503, detail="the models are loading")
    events = await library.reload()
    return {"events": [f"{type(e).__name__} {e.model}" for e in events]}
