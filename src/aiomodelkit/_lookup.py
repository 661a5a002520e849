"""Looking a model up by name: a suggestion for a name that does not exist, and the check
that what was found has the type the caller asked for."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, TypeVar

from ._errors import ModelTypeError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["checked", "did_you_mean"]

T = TypeVar("T")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for an unknown name, or ``""`` without a close match.

    Example:
        >>> did_you_mean("clasifier", ["classifier", "tokenizer"])
        "; did you mean 'classifier'?"
    """
    matches = difflib.get_close_matches(word, list(candidates), n=3)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


def checked(model: object, model_type: type[T], *, name: str, owner: str) -> T:
    """``model`` if it is a ``model_type``, else a :class:`ModelTypeError` naming both types.

    Example:
        >>> checked(3, int, name="n", owner="")
        3
    """
    if not isinstance(model, model_type):
        raise ModelTypeError(
            f"{owner}{name!r} is a {type(model).__qualname__}, not a {model_type.__qualname__}",
            model=name,
        )
    return model
