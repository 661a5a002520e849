"""``Model``: one asset, loaded dependencies, an async or sync ``_load``, typed predictions.

A subclass declares its configurations, loads its asset in ``_load`` and predicts in exactly
one of ``_predict`` (one item) or ``_predict_batch`` (a list of items); each may be
``async def`` or a plain ``def``. Constructors do no I/O: a :class:`ModelLibrary` builds the
model once its asset and dependencies are ready, then awaits :meth:`Model.load`.

Example:
    >>> import anyio
    >>> class Doubler(Model[int, int]):
    ...     CONFIGURATIONS = {"doubler": {"model_settings": {"factor": 2}}}
    ...
    ...     def _load(self) -> None:
    ...         self.factor = self.model_settings["factor"]
    ...
    ...     def _predict(self, item: int) -> int:
    ...         return item * self.factor
    >>> async def main() -> list[int]:
    ...     model = Doubler(model_settings={"factor": 2})
    ...     await model.load()
    ...     return await model.predict_batch([1, 2, 3])
    >>> anyio.run(main)
    [2, 4, 6]
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast, overload

import anyio
import anyio.to_thread

from ._adapters import Adapters, adapters_for
from ._errors import ConfigError, ModelkitError, UnknownModelError
from ._lookup import checked, did_you_mean

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence

__all__ = ["Model", "ModelDependencies", "check_model_type"]

ItemT = TypeVar("ItemT")
ReturnT = TypeVar("ReturnT")
ModelT = TypeVar("ModelT", bound="Model[Any, Any]")
_A = TypeVar("_A")
_R = TypeVar("_R")


class ModelDependencies:
    """The loaded dependencies of a model, by the local names its configuration gives them.

    Read-only and dict-like (``deps["tok"]``, ``"tok" in deps``, ``deps.items()``); unlike
    ``dict.get``, :meth:`get` never returns None: it checks the name and the type.
    """

    __slots__ = ("_models", "_owner")

    def __init__(self, models: Mapping[str, Model[Any, Any]], *, owner: str | None = None) -> None:
        self._models = dict(models)
        self._owner = owner

    def __getitem__(self, name: str) -> Model[Any, Any]:
        try:
            return self._models[name]
        except KeyError:
            where = f" of model {self._owner!r}" if self._owner else ""
            raise UnknownModelError(
                f"no dependency named {name!r}{where}{did_you_mean(name, self._models)}",
                model=self._owner,
            ) from None

    @overload
    def get(self, name: str) -> Model[Any, Any]: ...
    @overload
    def get(self, name: str, model_type: type[ModelT]) -> ModelT: ...
    def get(self, name: str, model_type: type[Model[Any, Any]] | None = None) -> Model[Any, Any]:
        """The dependency called ``name``, checked to be a ``model_type`` when given.

        Raises:
            UnknownModelError: the configuration declares no such dependency.
            ModelTypeError: the dependency is of another type.
        """
        model = self[name]
        if model_type is None:
            return model
        return checked(model, model_type, name=name, owner="dependency ")

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def keys(self) -> Iterable[str]:
        """The local names."""
        return self._models.keys()

    def items(self) -> Iterable[tuple[str, Model[Any, Any]]]:
        """``(local name, model)`` pairs."""
        return self._models.items()

    def __repr__(self) -> str:
        return f"ModelDependencies({sorted(self._models)!r})"


class Model(Generic[ItemT, ReturnT]):
    """Base class of models: subclass it as ``Model[ItemType, ReturnType]``.

    Class attributes:
        CONFIGURATIONS: ``{key: {"asset": spec, "model_dependencies": ..., "model_settings":
            {...}}}``; dependencies are a list or set of keys, or a dict renaming them
            (``{"local_name": "configuration_key"}``).
        batch_size: the default batch size of :meth:`predict_batch` (None: one batch).
        validate: check items and results against the generic types with pydantic (and pass
            on the validated values, so JSON-like dicts become your models); off by default.
        predict_in_thread: run a plain-``def`` ``_predict``/``_predict_batch`` in a worker
            thread. Off by default: a cheap sync predict runs inline on the event loop,
            which is faster than a thread hop; turn it on for CPU-heavy predictions.

    Attributes:
        configuration_key: the key this instance was configured under.
        asset_path: the local path of the asset (including its sub-part), or None.
        model_settings: the read-only merged settings of this configuration.
        model_dependencies: the loaded dependencies, by local name.

    Args:
        configuration_key: the configuration key (default: the class name).
        asset_path: where the asset is.
        model_settings: settings for ``_load`` and predictions.
        model_dependencies: loaded models, by local name.
        validate: override the class's ``validate``.
    """

    CONFIGURATIONS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    batch_size: ClassVar[int | None] = None
    validate: ClassVar[bool] = False
    predict_in_thread: ClassVar[bool] = False

    def __init__(
        self,
        *,
        configuration_key: str | None = None,
        asset_path: str | os.PathLike[str] | None = None,
        model_settings: Mapping[str, Any] | None = None,
        model_dependencies: Mapping[str, Model[Any, Any]] | ModelDependencies | None = None,
        validate: bool | None = None,
    ) -> None:
        self.configuration_key = configuration_key or type(self).__name__
        self.asset_path = Path(asset_path) if asset_path is not None else None
        self.model_settings: Mapping[str, Any] = MappingProxyType(dict(model_settings or {}))
        self.model_dependencies = (
            model_dependencies
            if isinstance(model_dependencies, ModelDependencies)
            else ModelDependencies(model_dependencies or {}, owner=self.configuration_key)
        )
        self._validate = type(self).validate if validate is None else validate
        self._loaded = False
        self._in_flight = 0  # predictions running: an evicted model closes after the last
        self._idle: anyio.Event | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        has_predict, has_batch = _overrides(cls)
        if has_predict and has_batch:
            raise ConfigError(
                f"{cls.__qualname__} overrides both _predict and _predict_batch; keep one"
            )
        if "CONFIGURATIONS" in cls.__dict__ and not (has_predict or has_batch):
            raise ConfigError(
                f"{cls.__qualname__} declares CONFIGURATIONS but overrides neither _predict "
                "nor _predict_batch"
            )
        if not inspect.iscoroutinefunction(cls.close):
            raise ConfigError(f"{cls.__qualname__}.close must be an 'async def'")

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        return f"<{type(self).__qualname__} {self.configuration_key!r} {state}>"

    # -- what subclasses override ---------------------------------------------------------

    def _load(self) -> Awaitable[None] | None:
        """Load the asset (``self.asset_path``); ``async def`` or a plain ``def`` (threaded)."""

    def _predict(self, item: ItemT) -> ReturnT | Awaitable[ReturnT]:
        """Predict one item (override this or :meth:`_predict_batch`)."""
        raise NotImplementedError

    def _predict_batch(
        self, items: list[ItemT]
    ) -> Sequence[ReturnT] | Awaitable[Sequence[ReturnT]]:
        """Predict a batch, one result per item, in order (override this or :meth:`_predict`)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what ``_load`` acquired; called once when the library closes or evicts it."""

    def memory_bytes(self) -> int | None:
        """The memory this model holds once loaded, for ``max_loaded_bytes`` (None: its
        asset's size on disk). Called after ``_load``; override it when the two differ."""
        return None

    # -- loading --------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` completed."""
        return self._loaded

    async def load(self) -> None:
        """Load unloaded dependencies, then this model (once; later calls do nothing).

        A plain-``def`` ``_load`` runs in a worker thread so the event loop stays free.
        """
        for _, dependency in self.model_dependencies.items():
            if not dependency.loaded:
                await dependency.load()
        await self._load_with(None)

    async def _load_with(self, limiter: anyio.CapacityLimiter | None) -> None:
        if self._loaded:
            return
        cls = type(self)
        if cls._load is not Model._load:
            if inspect.iscoroutinefunction(cls._load):
                await cast("Awaitable[None]", self._load())
            else:
                await anyio.to_thread.run_sync(self._load, limiter=limiter)
        if self._validate:
            _adapters(cls)  # built once, here, so the first prediction pays nothing
        self._loaded = True

    # -- predicting -----------------------------------------------------------------------

    @classmethod
    def item_type(cls) -> Any:
        """The item type from ``Model[ItemType, ReturnType]`` (``Any`` if not given)."""
        return _generic_args(cls)[0]

    @classmethod
    def return_type(cls) -> Any:
        """The return type from ``Model[ItemType, ReturnType]`` (``Any`` if not given)."""
        return _generic_args(cls)[1]

    async def predict(self, item: ItemT) -> ReturnT:
        """Predict one item.

        Raises:
            pydantic.ValidationError: with validation on, the item or result has the wrong type.
        """
        self._require_loaded()
        self._in_flight += 1
        try:
            adapters = _adapters(type(self)) if self._validate else None
            if adapters is not None:
                item = adapters.item.validate_python(item)
            if _overrides(type(self))[0]:
                result: ReturnT = await self._call(self._predict, item, "_predict")
            else:
                (result,) = await self._batch([item])
            if adapters is not None:
                result = adapters.result.validate_python(result)
            return result
        finally:
            self._finished()

    async def predict_batch(
        self, items: Iterable[ItemT], *, batch_size: int | None = None
    ) -> list[ReturnT]:
        """Predict several items, ``batch_size`` at a time (default: the class's, else all).

        With only ``_predict``, items are predicted one after another; run several
        :meth:`predict` calls in a task group for concurrency.

        Raises:
            ConfigError: ``batch_size`` is below 1.
            pydantic.ValidationError: with validation on, an item or result has the wrong type.
        """
        self._require_loaded()
        self._in_flight += 1
        try:
            return await self._predict_many(list(items), batch_size)
        finally:
            self._finished()

    async def _predict_many(self, batch: list[ItemT], batch_size: int | None) -> list[ReturnT]:
        size = batch_size if batch_size is not None else type(self).batch_size
        if size is not None and size < 1:
            raise ConfigError(f"batch_size must be at least 1, not {size}")
        adapters = _adapters(type(self)) if self._validate else None
        if adapters is not None:
            batch = adapters.items.validate_python(batch)
        results: list[ReturnT] = []
        if _overrides(type(self))[0]:
            for item in batch:
                results.append(await self._call(self._predict, item, "_predict"))
        else:
            step = size or max(len(batch), 1)
            for start in range(0, len(batch), step):
                results.extend(await self._batch(batch[start : start + step]))
        if adapters is not None:
            results = adapters.results.validate_python(results)
        return results

    async def _batch(self, items: list[ItemT]) -> list[ReturnT]:
        results = list(await self._call(self._predict_batch, items, "_predict_batch"))
        if len(results) != len(items):
            raise ModelkitError(
                f"{type(self).__qualname__}._predict_batch returned {len(results)} results "
                f"for {len(items)} items"
            )
        return results

    async def _call(self, func: Callable[[_A], _R | Awaitable[_R]], arg: _A, name: str) -> _R:
        if inspect.iscoroutinefunction(getattr(type(self), name)):
            return await cast("Awaitable[_R]", func(arg))
        if type(self).predict_in_thread:
            return cast("_R", await anyio.to_thread.run_sync(func, arg))
        return cast("_R", func(arg))

    def _finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def _drained(self) -> None:
        """Return once no prediction is running (an evicted model then closes)."""
        while self._in_flight:
            if self._idle is None or self._idle.is_set():
                self._idle = anyio.Event()  # one event shared by every waiter
            await self._idle.wait()

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise RuntimeError(
                f"model {self.configuration_key!r} is not loaded: await its load(), or get it "
                "from a ModelLibrary"
            )


def _overrides(cls: type[Model[Any, Any]]) -> tuple[bool, bool]:
    """Whether ``cls`` overrides ``_predict`` and ``_predict_batch``."""
    return cls._predict is not Model._predict, cls._predict_batch is not Model._predict_batch


def check_model_type(cls: object, *, key: str) -> None:
    """Refuse anything but a Model subclass that overrides exactly one predict method.

    Raises:
        ConfigError: naming the configuration key.
    """
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ConfigError(f"model {key!r}: model_type {cls!r} is not a Model subclass")
    if not any(_overrides(cls)):
        raise ConfigError(
            f"model {key!r}: {cls.__qualname__} overrides neither _predict nor _predict_batch"
        )


def _generic_args(cls: type[Model[Any, Any]]) -> tuple[Any, Any]:
    # Only direct Model[X, Y] bases are read; a TypeVar left open means Any.
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Model:
                item, result = typing.get_args(base)
                return (
                    Any if isinstance(item, TypeVar) else item,
                    Any if isinstance(result, TypeVar) else result,
                )
    return Any, Any


def _adapters(cls: type[Model[Any, Any]]) -> Adapters:
    return adapters_for(cls, _generic_args)
