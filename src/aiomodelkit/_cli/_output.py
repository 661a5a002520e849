"""Where the commands print, and how a user error prints: one line on stderr, status 1.

Results go to stdout (``console``, ``typer.echo``); progress, summaries and errors go to
stderr (``err_console``), so that scripts can read stdout alone. A :class:`ModelkitError`
is a user error: it prints ``error: <message>`` and exits with status 1, never with a
traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from aiomodelkit._errors import ModelkitError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["console", "err_console", "run", "user_errors"]

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One ``error:`` line on stderr, never wrapped (a URL or a path stays whole)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the :class:`ModelkitError` raised inside into one line each on stderr and exit 1.

    Raises:
        typer.Exit: with status 1, after printing the errors.
    """
    try:
        yield
    except* ModelkitError as group:
        # fetch_many reports concurrent failures as a group: one line each.
        for exc in _leaves(group):
            print_error(str(exc))
        raise typer.Exit(1) from None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def run(func: Callable[[], Awaitable[T]]) -> T:
    """Run ``func`` in a new event loop, its user errors printed as by :func:`user_errors`.

    Returns:
        What ``func`` returns.
    """
    with user_errors():
        return anyio.run(func)
