"""``aiomodelkit serve``: the models of a library over HTTP, with aiohttp.

Routes:

=================================  ==============================================================
``GET /health``                    200 while the process is up
``GET /ready``                     200 once every model is loaded, 503 before; each model's state
``POST /predict/{model}``          a JSON item → the JSON result
``POST /predict/{model}/batch``    a JSON list of items → the JSON list of results
``POST /admin/reload[?model=KEY]``  check now for newer versions and swap them in
                                   (``ModelLibrary.reload``): the swaps and failures, as JSON
``GET /metrics``                   Prometheus metrics (:mod:`aiomodelkit.metrics`; 501 and one
                                   line without ``aiomodelkit[metrics]``)
=================================  ==============================================================

``/admin/reload`` has no authentication, like the rest: keep the server on a private
interface (the default host is ``127.0.0.1``) or behind a proxy that guards ``/admin``.

Errors are JSON ``{"error": ...}``: 404 for a model the server does not serve, 400 for a
body that is not JSON (or a batch that is not a list), 503 while loading, 500 with the
message when a prediction fails.

The server listens at once and the library loads in a task beside it, so ``/ready`` says
503 until every model is loaded. If loading fails, the server stops and the error is raised:
a process that can never become ready is better restarted. SIGINT or SIGTERM stops
accepting connections, lets requests in flight finish, then closes the library.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from aiohttp import web
from pydantic_core import to_jsonable_python

from ._errors import ConfigError, UnknownModelError
from ._status import ModelSwapFailed, ModelSwapped
from .metrics import exposition, instrument

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._library import ModelLibrary

__all__ = ["SHUTDOWN_TIMEOUT", "make_app", "serve"]

logger = logging.getLogger("aiomodelkit")

#: Seconds requests in flight get to finish at shutdown.
SHUTDOWN_TIMEOUT = 10.0
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class _Served:
    library: ModelLibrary
    keys: frozenset[str]  # the required models and their dependencies


_SERVED = web.AppKey("aiomodelkit.served", _Served)


def make_app(library: ModelLibrary) -> web.Application:
    """The aiohttp application serving ``library`` (which the caller enters).

    Raises:
        ConfigError: the library's configuration is invalid (checked here, before serving).
    """
    graph = library.graph
    app = web.Application()
    app[_SERVED] = _Served(library, frozenset(graph.closure(graph.required)))
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_post("/predict/{model}", _predict)
    app.router.add_post("/predict/{model}/batch", _predict_batch)
    app.router.add_post("/admin/reload", _reload)
    app.router.add_get("/metrics", _metrics)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    library = request.app[_SERVED].library
    statuses = library.status()
    states = {key: status.state.value for key, status in statuses.items()}
    versions = {key: status.version for key, status in statuses.items()}
    return web.json_response(
        {"ready": library.ready, "models": states, "versions": versions},
        status=200 if library.ready else 503,
    )


async def _metrics(request: web.Request) -> web.Response:
    try:  # the walk of the cache directories blocks: off the loop
        page = await anyio.to_thread.run_sync(exposition)
    except ConfigError as exc:
        return web.Response(status=501, text=f"{exc}\n")
    return web.Response(body=page.body, headers={"Content-Type": page.content_type})


async def _reload(request: web.Request) -> web.Response:
    library = request.app[_SERVED].library
    key = request.query.get("model")
    if not library.ready:
        return _error(503, "the models are loading")
    try:
        events = await library.reload(key)
    except UnknownModelError as exc:
        return _error(404, str(exc))
    swapped = [
        {
            "model": e.model,
            "old_version": e.old_version,
            "new_version": e.new_version,
            "dependency": e.dependency,
            "seconds": round(e.seconds, 3),
        }
        for e in events
        if isinstance(e, ModelSwapped)
    ]
    failed = [
        {
            "model": e.model,
            "version": e.version,
            "failed_version": e.failed_version,
            "error": str(e.error),
        }
        for e in events
        if isinstance(e, ModelSwapFailed)
    ]
    return web.json_response({"swapped": swapped, "failed": failed})


async def _predict(request: web.Request) -> web.Response:
    return await _call(request, batch=False)


async def _predict_batch(request: web.Request) -> web.Response:
    return await _call(request, batch=True)


async def _call(request: web.Request, *, batch: bool) -> web.Response:
    served = request.app[_SERVED]
    key = request.match_info["model"]
    if key not in served.keys:
        try:
            served.library.graph.check(key)
        except UnknownModelError as exc:
            return _error(404, str(exc))
        return _error(404, f"model {key!r} is not served here (see --required-models)")
    if not served.library.ready:
        return _error(503, "the models are loading")
    try:
        payload = await request.json()
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        return _error(400, f"the body is not valid JSON: {exc}")
    if batch and not isinstance(payload, list):
        return _error(400, "a batch must be a JSON list of items")
    try:
        model = await served.library.aget(key)
        result: Any = await (model.predict_batch(payload) if batch else model.predict(payload))
        body = to_jsonable_python(result)
    except Exception as exc:
        logger.exception("model %r failed to predict", key)
        return _error(500, f"{type(exc).__name__}: {exc}")
    return web.json_response(body)


def _url(address: Any) -> str:
    host, port = address[0], address[1]  # IPv6 socket names have two more fields
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _hold(library: ModelLibrary, say: Callable[[str], None]) -> None:
    start = time.perf_counter()
    async with library:
        count = len(library.status())
        say(f"ready: {count} model(s) loaded in {time.perf_counter() - start:.2f} s")
        await anyio.sleep_forever()


async def serve(
    library: ModelLibrary, *, host: str, port: int, say: Callable[[str], None] = logger.info
) -> None:
    """Serve ``library`` on ``host:port`` until SIGINT or SIGTERM (main thread only).

    While it serves, the process's metrics are counted on prometheus_client's default
    registry (:func:`aiomodelkit.metrics.instrument`), if prometheus-client is installed.

    Args:
        library: an unopened library; it is entered here and closed at shutdown.
        host: the address to bind.
        port: the port to bind (0: any free port).
        say: receives one-line progress messages.

    Raises:
        ConfigError: the configuration is invalid, or the address cannot be bound.
        LoadError: a model failed to load (in an ExceptionGroup); the server stops first.
    """
    if not 0 <= port <= _MAX_PORT:
        raise ConfigError(f"cannot listen on {host}:{port}: a port is 0 to {_MAX_PORT}")
    app = make_app(library)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    stopped = False
    try:  # before the library opens: its first fetch is counted. In a worker thread: the
        # first call imports prometheus_client, which reads /proc (blocking I/O).
        metrics = await anyio.to_thread.run_sync(instrument)
    except ConfigError:  # prometheus-client is not installed: /metrics answers 501
        metrics = None

    async def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await runner.cleanup()

    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                # A LoadError in this task cancels the wait for a signal below.
                tg.start_soon(_hold, library, say)
                site = web.TCPSite(runner, host, port)
                try:
                    await site.start()
                except OSError as exc:
                    raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
                say(f"listening on {', '.join(_url(address) for address in runner.addresses)}")
                async for signum in signals:
                    say(f"{signal.Signals(signum).name}: shutting down")
                    break
                await stop()  # requests in flight finish before the models close
                tg.cancel_scope.cancel()
        say("library closed")
    finally:
        with anyio.CancelScope(shield=True):
            await stop()
        if metrics is not None:
            metrics.stop()
