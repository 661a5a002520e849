"""A module of models as a Ray Serve deployment with model multiplexing (``aiomodelkit[ray]``).

::

    from ray import serve

    from aiomodelkit import Settings
    from aiomodelkit.integrations.ray_serve import deployment

    settings = Settings(storage="s3://my-bucket/team-a", assets_dir="/mnt/models")
    app = deployment("my_service.models", settings=settings, num_replicas=4, max_loaded_models=8)
    handle = serve.run(app)
    print(handle.options(multiplexed_model_id="classifier").remote("some text").result())
    # over HTTP: POST / with a JSON item and the header `serve_multiplexed_model_id: classifier`

**One library per replica.** Each replica (:class:`ModelReplica`, a Ray actor process) opens
one :class:`~aiomodelkit.ModelLibrary` when it starts and closes it when Ray Serve shuts it
down, every loaded model's ``close()`` awaited. A request's multiplexed model id
(``serve.get_multiplexed_model_id()``) is a model key; the replica answers
``await (await library.aget(key)).predict(item)``. Models load on first use, at most
``max_loaded_models`` at once, the least recently used closed to make room.

**The library loads; Ray only routes.** Ray's own multiplexed loader (``@serve.multiplexed``,
``ray/serve/multiplex.py`` in Ray 2.60) runs every load under one lock per replica, so two
requests for two new models load one after the other; it evicts by count alone and "unloads"
a model by calling its ``__del__``. The library does this better: different models load
concurrently, two requests for one model share one load, the budget may be bytes, the
dependencies of a loaded model are kept, and an evicted model is closed only once its last
running prediction returns. So the library alone decides what is loaded and closes what it
evicts. ``@serve.multiplexed`` still wraps one function per replica, for routing only: it
returns the model id itself at once (its lock is held for microseconds, never for a load),
which makes Ray advertise the models a replica serves, so that the router sends the next
request for a model to the replica that has it. Its cap is the library's
``max_loaded_models`` (unbounded without one), so the advertised models are the replica's
most recently requested ones, as the library's LRU keeps them; dropping an id from Ray's list
does nothing to the model. The two may disagree (a model evicted to make room for another's
dependency, a ``max_loaded_bytes`` budget): the advertised set is a hint, and a request sent
to a replica that no longer holds its model loads it again, from the node's cache.

**One download per node.** Replicas of one node given the same ``assets_dir`` share one cache.
A version is downloaded by the process that takes its file lock
(``<assets_dir>/.locks/<name>/<version>.lock``); the others wait, then read the published
copy. Each replica still reads the small ``.versions`` index and ``.meta`` from the store to
resolve a version (unless a lock file pins it), but the data objects come down once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio
from pydantic_core import to_jsonable_python

from aiomodelkit._errors import ConfigError, UnknownModelError
from aiomodelkit._library import LibraryState, ModelLibrary
from aiomodelkit._settings import Settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence

    from ray.serve import Application
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from aiomodelkit._graph import ModelConfiguration, ModelSource
    from aiomodelkit._model import Model
    from aiomodelkit._status import ModelStatus

__all__ = ["ModelReplica", "deployment"]

logger = logging.getLogger("aiomodelkit")

_MISSING = "Ray Serve needs the ray extra: pip install 'aiomodelkit[ray]'"
#: The header from which Ray Serve's HTTP proxy takes a request's model id.
_MODEL_ID_HEADER = "serve_multiplexed_model_id"


def deployment(
    models: ModelSource,
    *,
    settings: Settings | None = None,
    name: str = "aiomodelkit",
    num_replicas: int | Literal["auto"] = 1,
    max_loaded_models: int | None = None,
    preload: Sequence[str] = (),
    configuration: Mapping[str, Mapping[str, Any] | ModelConfiguration] | None = None,
    max_ongoing_requests: int | None = None,
    ray_actor_options: Mapping[str, Any] | None = None,
) -> Application:
    """A Ray Serve application serving ``models``, multiplexed by model key.

    The configuration is checked here, in the driver, before anything is sent to Ray.

    Args:
        models: model classes, modules or module names, as for ``ModelLibrary``; each
            replica imports them again, so they must be importable there (module names
            are the safest).
        settings: store, cache and library settings, sent to every replica; None: each
            replica reads its own environment (Ray's ``runtime_env`` ``env_vars``).
        name: the deployment's name.
        num_replicas: replicas to run, or ``"auto"`` for Ray Serve's autoscaling.
        max_loaded_models: models each replica keeps loaded at most (default:
            ``settings.max_loaded_models``; with neither, models stay loaded once used).
        preload: keys each replica loads, concurrently, before it takes requests.
        configuration: per-key overrides, as for ``ModelLibrary``.
        max_ongoing_requests: requests a replica runs at once (default: Ray Serve's).
        ray_actor_options: each replica's resources (``num_cpus``, ``num_gpus``...).

    Returns:
        the bound application, for ``serve.run`` (or ``serve build``).

    Raises:
        ConfigError: the extra is missing, or the configuration, a ``preload`` key or
            ``max_loaded_models`` is invalid.
    """
    budget = max_loaded_models
    if budget is None and settings is not None:
        budget = settings.max_loaded_models
    _check(ModelLibrary(models, configuration=configuration), preload, budget)
    try:
        from ray import serve
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} ({exc})") from exc
    options: dict[str, Any] = {"name": name, "num_replicas": num_replicas}
    if max_ongoing_requests is not None:
        options["max_ongoing_requests"] = max_ongoing_requests
    if ray_actor_options is not None:
        options["ray_actor_options"] = dict(ray_actor_options)
    replica = serve.deployment(**options)(ModelReplica)
    return replica.bind(
        models,
        settings=settings,
        max_loaded_models=max_loaded_models,
        preload=tuple(preload),
        configuration=configuration,
    )


def _check(library: ModelLibrary, preload: Sequence[str], budget: int | None) -> None:
    """Raise ConfigError for an invalid graph, preload key or budget."""
    graph = library.graph
    for key in preload:
        graph.check(key)
    if budget is not None and budget < 1:
        raise ConfigError(f"max_loaded_models must be at least 1, not {budget}")
    if budget is not None and len(set(preload)) > budget:
        raise ConfigError(
            f"{len(set(preload))} models to preload do not fit in max_loaded_models={budget}"
        )


class ModelReplica:
    """One Ray Serve replica: a model library, opened in the replica, closed at shutdown.

    Built by :func:`deployment`; use it directly to choose other deployment options::

        app = serve.deployment(max_ongoing_requests=32)(ModelReplica).bind("my_service.models")

    A request names its model by its multiplexed model id: the header
    ``serve_multiplexed_model_id`` over HTTP, ``handle.options(multiplexed_model_id=KEY)``
    from a handle. ``__call__`` takes a Starlette request (a JSON item; the answer is JSON,
    with 404 for an unknown model, 400 for a missing model id or a body that is not JSON,
    500 with the message when the prediction fails) or, from a handle, the item itself (the
    answer is the prediction as the model returns it; errors are raised).

    Args:
        models: model classes, modules or module names.
        settings: the library's settings (default: this replica's environment).
        max_loaded_models: overrides ``settings.max_loaded_models``.
        preload: keys loaded, concurrently, before the replica takes requests.
        configuration: per-key overrides, as for ``ModelLibrary``.

    Raises:
        ConfigError: the settings or the configuration are invalid (the replica fails to
            start, and Ray Serve reports it).
        LoadError: a preloaded model failed to load (in an ExceptionGroup).
    """

    # Ray Serve awaits an async constructor (on the replica's event loop) before it routes
    # any request to the replica: the library is open, and preloaded, by then.
    async def __init__(  # type: ignore[misc]  # mypy: __init__ must return None
        self,
        models: ModelSource,
        *,
        settings: Settings | None = None,
        max_loaded_models: int | None = None,
        preload: Sequence[str] = (),
        configuration: Mapping[str, Mapping[str, Any] | ModelConfiguration] | None = None,
    ) -> None:
        from ray import serve

        settings = settings if settings is not None else Settings.load()
        if max_loaded_models is not None:
            settings = settings.model_copy(update={"max_loaded_models": max_loaded_models})
        self._library = ModelLibrary(
            models, configuration=configuration, settings=settings, lazy_loading=True
        )
        graph = self._library.graph
        self._served = frozenset(graph.closure(graph.required))
        for key in preload:
            graph.check(key)
        cap = settings.max_loaded_models or -1  # -1: Ray's "no limit"

        async def advertise(model_id: str) -> str:
            return model_id  # Ray caches this string, never a model (see the module docstring)

        self._advertise: Callable[[str], Awaitable[str]] = serve.multiplexed(
            max_num_models_per_replica=cap
        )(advertise)
        self._opened = anyio.Event()
        self._closing = anyio.Event()
        # Ray owns the replica's lifetime: no task of ours spans from this constructor to
        # the destructor, so one task holds the library open in between (as a web server's
        # lifespan task does in the README's recipes); aclose() ends it and awaits it.
        self._holder = asyncio.get_running_loop().create_task(self._hold())
        await self._opened.wait()
        if self._holder.done():
            self._holder.result()  # the library failed to open: raise why
        try:
            async with anyio.create_task_group() as tg:
                for key in dict.fromkeys(preload):
                    tg.start_soon(self._load, key)
        except BaseException:
            with anyio.CancelScope(shield=True):  # Ray drops a replica whose constructor fails
                await self.aclose()
            raise

    async def _hold(self) -> None:
        try:
            async with self._library:
                self._opened.set()
                await self._closing.wait()
        finally:
            self._opened.set()

    def _key(self) -> str:
        """The request's model key, checked.

        Raises:
            ValueError: the request names no model.
            UnknownModelError: no such model here (with a "did you mean" hint).
        """
        from ray import serve

        key: str = serve.get_multiplexed_model_id()
        if not key:
            raise ValueError(
                f"no model id: send the header {_MODEL_ID_HEADER}, or call "
                "handle.options(multiplexed_model_id=KEY)"
            )
        if key not in self._served:
            self._library.graph.check(key)
            raise UnknownModelError(f"model {key!r} is not served here", model=key)
        return key

    async def _load(self, key: str) -> Model[Any, Any]:
        await self._advertise(key)  # Ray's router now sends this model's requests here
        return await self._library.aget(key)

    async def __call__(self, request: Request | Any) -> Any:
        """Predict one item: a Starlette request's JSON body, or an item from a handle."""
        from starlette.requests import Request

        if isinstance(request, Request):
            return await self._http(request)
        return await self.predict(request)

    async def predict(self, item: Any) -> Any:
        """The prediction of the request's model for ``item`` (from a handle).

        Raises:
            ValueError: the request names no model.
            UnknownModelError: no such model here.
            LoadError: the model failed to load.
        """
        return await (await self._load(self._key())).predict(item)

    async def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        """The predictions of the request's model for ``items`` (from a handle).

        Raises:
            ValueError: the request names no model.
            UnknownModelError: no such model here.
            LoadError: the model failed to load.
        """
        return await (await self._load(self._key())).predict_batch(items)

    async def _http(self, request: Request) -> JSONResponse:
        from starlette.responses import JSONResponse

        try:
            key = self._key()
        except UnknownModelError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            item = json.loads(await request.body())
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            message = f"the body is not valid JSON: {exc}"
            return JSONResponse({"error": message}, status_code=400)
        try:
            result = to_jsonable_python(await (await self._load(key)).predict(item))
        except Exception as exc:
            logger.exception("model %r failed to predict", key)
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return JSONResponse(result)

    async def status(self) -> dict[str, ModelStatus]:
        """This replica's models, as ``ModelLibrary.status()`` shows them."""
        return self._library.status()

    async def check_health(self) -> None:
        """Ray Serve's health check: fails once the library is no longer open.

        Raises:
            RuntimeError: the library closed (Ray Serve then replaces the replica).
        """
        if self._library.state is not LibraryState.OPEN:
            raise RuntimeError(f"the model library is {self._library.state.value}")

    async def aclose(self) -> None:
        """Close the library, every loaded model's ``close()`` awaited; then do nothing."""
        if not hasattr(self, "_holder"):  # the constructor failed before opening anything
            return
        self._closing.set()
        await self._holder

    def __del__(self) -> Coroutine[Any, Any, None] | None:
        """What Ray Serve calls when it stops the replica: :meth:`aclose`, as a coroutine.

        Ray Serve (2.10 and later) awaits a coroutine that ``__del__`` returns. Not an
        ``async def``: the garbage collector calls ``__del__`` too, later, and would leave a
        coroutine never awaited; this returns one only while the library is open and a loop
        runs, so after Ray Serve's call, collection does nothing.
        """
        holder = getattr(self, "_holder", None)
        if holder is None or holder.done() or self._closing.is_set():
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # collected outside any loop: nothing can be awaited
            return None
        return self.aclose()
