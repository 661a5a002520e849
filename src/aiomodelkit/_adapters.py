"""The pydantic adapters that validate a model's items and results, built once per class.

:class:`~aiomodelkit.Model` validates what goes in and comes out of ``predict`` against its
``Model[ItemType, ReturnType]`` arguments when validation is on. Building the adapters costs
milliseconds, so each class builds them once (when it loads, so that the first prediction
pays nothing), held weakly so that classes made in tests can go away.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Adapters", "adapters_for"]


@dataclass(frozen=True, slots=True)
class Adapters:
    """Validation of one item, a list of items, one result and a list of results."""

    item: TypeAdapter[Any]
    items: TypeAdapter[list[Any]]
    result: TypeAdapter[Any]
    results: TypeAdapter[list[Any]]


_BUILT: weakref.WeakKeyDictionary[type, Adapters] = weakref.WeakKeyDictionary()


def adapters_for(cls: type, generic_args: Callable[[type], tuple[Any, Any]]) -> Adapters:
    """The adapters of ``cls``, built on first use from ``generic_args(cls)`` (the item and
    result types).

    Example:
        >>> class Echo: ...
        >>> adapters_for(Echo, lambda cls: (int, str)).item.validate_python("3")
        3
    """
    found = _BUILT.get(cls)
    if found is None:
        item, result = generic_args(cls)
        found = _BUILT[cls] = Adapters(
            item=TypeAdapter(item),
            items=TypeAdapter(list[item]),  # type: ignore[valid-type]
            result=TypeAdapter(result),
            results=TypeAdapter(list[result]),  # type: ignore[valid-type]
        )
    return found
