"""Exception groups read as what they carry: their leaves, and the first of them.

A task group raises a (possibly nested) group; a call that fans out internally (one task
per object, per part, per model) reports one error to its caller, and the command line
prints one line per distinct leaf. Nothing here knows aiomodelkit's own errors.
"""

from __future__ import annotations

from typing import TypeVar, cast

__all__ = ["first_error", "leaves"]

E = TypeVar("E", bound=BaseException)


def leaves(group: BaseExceptionGroup[E]) -> list[E]:
    """The exceptions of a (nested) group, in order, without the groups.

    Example:
        >>> group = ExceptionGroup("g", [ValueError("a"), ExceptionGroup("h", [KeyError("b")])])
        >>> [str(exc) for exc in leaves(group)]
        ['a', "'b'"]
    """
    found: list[E] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(leaves(cast("BaseExceptionGroup[E]", exc)))
        else:
            found.append(exc)
    return found


def first_error(group: BaseExceptionGroup[E]) -> E:
    """The first leaf of a group (the failure that cancelled the rest), with a note
    counting the others.

    Example:
        >>> first_error(ExceptionGroup("g", [ValueError("a"), ValueError("b")])).__notes__
        ['(1 other concurrent failure(s) of the same call)']
    """
    found = leaves(group)
    first = found[0]
    if len(found) > 1:
        first.add_note(f"({len(found) - 1} other concurrent failure(s) of the same call)")
    return first
