"""Model configurations and their dependency graph, validated whole before any I/O.

``build_graph`` gathers the ``CONFIGURATIONS`` of model classes (given directly, in lists, or
found by walking modules and packages), applies the ``configuration`` overrides and the
per-model settings of ``required_models``, then checks everything at once: unknown keys get a
"did you mean" hint, and ``graphlib`` names any dependency cycle.

Example:
    >>> class Tok(Model[str, list[str]]):
    ...     CONFIGURATIONS = {"tok": {}}
    ...     def _predict(self, item: str) -> list[str]:
    ...         return item.split()
    >>> class Clf(Model[str, bool]):
    ...     CONFIGURATIONS = {"clf": {"model_dependencies": {"tokenizer": "tok"}}}
    ...     def _predict(self, item: str) -> bool:
    ...         return True
    >>> graph = build_graph([Clf, Tok], required_models=["clf"])
    >>> graph.closure(["clf"])
    ('tok', 'clf')
    >>> dict(graph.configurations["clf"].model_dependencies)
    {'tokenizer': 'tok'}
"""

from __future__ import annotations

import graphlib
import importlib
import pkgutil
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any, TypeAlias

from ._errors import ConfigError, DependencyCycleError, ModelkitError, UnknownModelError
from ._lookup import did_you_mean
from ._model import Model, check_model_type
from ._spec import AssetSpec

__all__ = ["ModelConfiguration", "ModelGraph", "ModelSource", "build_graph", "find_model_types"]

ModelSource: TypeAlias = "type[Model[Any, Any]] | ModuleType | str | Sequence[ModelSource]"
"""Model classes, modules or packages (walked), module names, or a list of those."""

_FIELDS = ("model_type", "asset", "model_dependencies", "model_settings")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfiguration:
    """One model configuration: its class, asset, settings and dependencies.

    Attributes:
        model_type: the Model subclass to build.
        asset: the asset spec, or None.
        model_settings: read-only settings handed to the model.
        model_dependencies: local name → configuration key.
    """

    model_type: type[Model[Any, Any]]
    asset: AssetSpec | None = None
    model_settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    model_dependencies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(
        cls, key: str, raw: Mapping[str, Any], *, base: ModelConfiguration | None = None
    ) -> ModelConfiguration:
        """Build a configuration from a ``CONFIGURATIONS`` entry, field-wise over ``base``.

        Raises:
            ConfigError: an unknown field, or a field of the wrong shape.
            InvalidAssetSpecError: the asset spec does not parse.
        """
        if not isinstance(raw, Mapping):
            raise ConfigError(f"model {key!r}: a configuration must be a dict, not {raw!r}")
        for name in raw:
            if name not in _FIELDS:
                raise ConfigError(
                    f"model {key!r}: unknown configuration field {name!r}"
                    f"{did_you_mean(str(name), _FIELDS)}"
                )
        model_type = raw.get("model_type", base.model_type if base else None)
        check_model_type(model_type, key=key)
        values: dict[str, Any] = {"model_type": model_type}
        if "asset" in raw:
            values["asset"] = _parse_asset(key, raw["asset"])
        if "model_settings" in raw:
            settings = raw["model_settings"] or {}
            if not isinstance(settings, Mapping):
                raise ConfigError(f"model {key!r}: model_settings must be a dict")
            values["model_settings"] = MappingProxyType(dict(settings))
        if "model_dependencies" in raw:
            values["model_dependencies"] = _parse_dependencies(key, raw["model_dependencies"])
        return replace(base, **values) if base else cls(**values)


def _parse_asset(key: str, raw: object) -> AssetSpec | None:
    if raw is None or isinstance(raw, AssetSpec):
        return raw
    if not isinstance(raw, str):
        raise ConfigError(f"model {key!r}: asset must be a spec string, not {raw!r}")
    try:
        return AssetSpec.parse(raw)
    except ModelkitError as exc:
        exc.add_note(f"in the configuration of model {key!r}")
        raise


def _parse_dependencies(key: str, raw: object) -> Mapping[str, str]:
    if raw is None:
        pairs: dict[str, object] = {}
    elif isinstance(raw, Mapping):
        pairs = dict(raw)
    elif isinstance(raw, Collection) and not isinstance(raw, str | bytes):
        pairs = {name: name for name in raw}
    else:
        raise ConfigError(
            f"model {key!r}: model_dependencies must be a list or set of keys, or a dict "
            f"renaming them, not {raw!r}"
        )
    for local, target in pairs.items():
        if not (isinstance(local, str) and isinstance(target, str) and local and target):
            raise ConfigError(f"model {key!r}: bad dependency {local!r}: {target!r}")
    return MappingProxyType({str(k): str(v) for k, v in pairs.items()})


def _walk(module: ModuleType) -> Iterable[ModuleType]:
    yield module
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{module.__name__}."):
            yield importlib.import_module(info.name)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise ConfigError(f"cannot import models from {name!r}: no such module") from exc
        raise


def find_model_types(models: ModelSource) -> list[type[Model[Any, Any]]]:
    """Model classes that declare their own ``CONFIGURATIONS``, in discovery order.

    Raises:
        ConfigError: something that is neither a model class, a module nor a module name.
    """
    found: dict[type[Model[Any, Any]], None] = {}
    pending: list[object] = [models]
    while pending:
        item = pending.pop(0)
        if isinstance(item, str):
            item = _import(item)
        if isinstance(item, ModuleType):
            for module in _walk(item):
                for value in vars(module).values():
                    if isinstance(value, type) and issubclass(value, Model) and value is not Model:
                        if "CONFIGURATIONS" in value.__dict__:
                            found[value] = None
        elif isinstance(item, type) and issubclass(item, Model):
            found[item] = None
        elif isinstance(item, Sequence):
            pending[:0] = list(item)
        else:
            raise ConfigError(
                f"models must be Model classes, modules or module names, not {item!r}"
            )
    return list(found)


@dataclass(frozen=True, slots=True)
class ModelGraph:
    """Validated configurations and their dependency order.

    Attributes:
        configurations: every configuration, by key (required settings already merged).
        required: the keys the library must load (all of them unless told otherwise).
        order: every key, each after all of its dependencies.
    """

    configurations: Mapping[str, ModelConfiguration]
    required: tuple[str, ...]
    order: tuple[str, ...]

    def check(self, key: str) -> ModelConfiguration:
        """The configuration of ``key``.

        Raises:
            UnknownModelError: no such key; the message suggests close matches.
        """
        try:
            return self.configurations[key]
        except KeyError:
            raise UnknownModelError(
                f"unknown model {key!r}{did_you_mean(key, self.configurations)}", model=key
            ) from None

    def closure(self, keys: Iterable[str]) -> tuple[str, ...]:
        """``keys`` and everything they depend on, transitively, dependencies first.

        Raises:
            UnknownModelError: a key is unknown.
        """
        seen: set[str] = set()
        stack = list(keys)
        while stack:
            key = stack.pop()
            if key not in seen:
                seen.add(key)
                stack.extend(self.check(key).model_dependencies.values())
        return tuple(key for key in self.order if key in seen)


def build_graph(
    models: ModelSource,
    *,
    required_models: Sequence[str] | Mapping[str, Mapping[str, Any]] | None = None,
    configuration: Mapping[str, Mapping[str, Any] | ModelConfiguration] | None = None,
) -> ModelGraph:
    """Gather, override and validate configurations (pure: no I/O besides imports).

    Args:
        models: model classes, modules or packages (walked), or module names.
        required_models: keys to load (default: all), or a dict of per-model settings merged
            over each configuration's ``model_settings`` (``asset_path`` included).
        configuration: per-key overrides: a dict replaces the fields it names (a new key
            needs ``model_type``), a :class:`ModelConfiguration` replaces the whole entry.

    Raises:
        ConfigError: malformed configurations, or a key configured by two classes.
        UnknownModelError: a required key or a dependency is unknown.
        DependencyCycleError: models depend on each other in a loop.
    """
    configurations: dict[str, ModelConfiguration] = {}
    for model_type in find_model_types(models):
        for key, raw in model_type.__dict__.get("CONFIGURATIONS", {}).items():
            if key in configurations and configurations[key].model_type is not model_type:
                raise ConfigError(
                    f"model {key!r} is configured by both "
                    f"{configurations[key].model_type.__qualname__} and {model_type.__qualname__}"
                )
            configurations[key] = ModelConfiguration.parse(key, {"model_type": model_type, **raw})
    for key, override in (configuration or {}).items():
        if isinstance(override, ModelConfiguration):
            check_model_type(override.model_type, key=key)
            configurations[key] = override
        elif key in configurations or "model_type" in override:
            configurations[key] = ModelConfiguration.parse(
                key, override, base=configurations.get(key)
            )
        else:
            raise UnknownModelError(
                f"configuration overrides unknown model {key!r} (give a model_type to add "
                f"it){did_you_mean(key, configurations)}",
                model=key,
            )
    graph = ModelGraph(MappingProxyType(configurations), (), ())
    for key, conf in configurations.items():
        for local, target in conf.model_dependencies.items():
            if target not in configurations:
                raise UnknownModelError(
                    f"model {key!r} depends on unknown model {target!r} (as {local!r})"
                    f"{did_you_mean(target, configurations)}",
                    model=key,
                )
    if required_models is None:
        required: tuple[str, ...] = tuple(configurations)
    else:
        required = tuple(required_models)
        for key in required:
            graph.check(key)
    if isinstance(required_models, Mapping):
        for key, extra in required_models.items():
            if extra:
                conf = configurations[key]
                merged = MappingProxyType({**conf.model_settings, **extra})
                configurations[key] = replace(conf, model_settings=merged)
    return ModelGraph(MappingProxyType(configurations), required, _order(configurations))


def _order(configurations: Mapping[str, ModelConfiguration]) -> tuple[str, ...]:
    sorter = graphlib.TopologicalSorter(
        {key: conf.model_dependencies.values() for key, conf in configurations.items()}
    )
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        # graphlib lists each node before the one that depends on it: reverse for "needs".
        cycle = list(reversed(exc.args[1]))
        raise DependencyCycleError(
            f"dependency cycle: {' -> '.join(cycle)} ('->' reads 'depends on')",
            model=cycle[0],
            cycle=cycle,
        ) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorter.get_ready()
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)
