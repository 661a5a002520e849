"""Where the commands print, how a user error prints, and how a command is stopped.

Results go to stdout (``console``, ``typer.echo``); progress, summaries and errors go to
stderr (``err_console``), so that scripts can read stdout alone. A :class:`ModelkitError`
is a user error: it prints ``error: <message>`` and exits with status 1, never with a
traceback; any other exception is a bug and keeps its traceback.

SIGTERM (what ``docker stop`` and Kubernetes send) stops a command exactly as Ctrl-C does:
the command's task is cancelled, so every download removes its staging copy and every
upload aborts, then ``error: interrupted`` and status 128 + the signal (130, 143). A second
signal during that cleanup exits at once.
"""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from aiomodelkit._errors import ModelkitError
from aiomodelkit._groups import leaves

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["console", "err_console", "print_error", "run", "show_warnings", "user_errors"]

T = TypeVar("T")

console = Console()
#: Messages on stderr are never wrapped: when stderr is not a terminal rich assumes 80
#: columns, and a URL or a path split across lines can be neither read nor copied.
err_console = Console(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """One ``error:`` line on stderr, never wrapped (a URL or a path stays whole)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


class _WarningLines(logging.Handler):
    """The library's warnings as ``warning: <message>`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record must not break the command
            message = str(record.msg)
        err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def show_warnings() -> None:
    """Print the library's warnings (a spec resolved outside the lock file, a fallback to
    the cache...) as one ``warning:`` line each, instead of Python's bare last resort."""
    logger = logging.getLogger("aiomodelkit")
    if not any(isinstance(handler, _WarningLines) for handler in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the :class:`ModelkitError` raised inside into one line each on stderr and exit 1.

    Raises:
        typer.Exit: with status 1, after printing the errors.
    """
    try:
        yield
    except* ModelkitError as group:
        # fetch_many reports concurrent failures as a group: one line each, and once
        # (a spec given twice fails twice with the same message).
        for line in dict.fromkeys(str(exc) for exc in leaves(group)):
            print_error(line)
        raise typer.Exit(1) from None


#: The signals that stop a command: Ctrl-C, and what ``docker stop`` and Kubernetes send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(func: Callable[[], Awaitable[T]], *, stop_on_signals: bool = True) -> T:
    """Run ``func`` in a new event loop, its user errors printed as by :func:`user_errors`.

    Args:
        func: the command's work.
        stop_on_signals: cancel ``func`` on SIGINT or SIGTERM, then exit with status
            128 + the signal (``serve`` handles its signals itself, to drain requests).

    Returns:
        What ``func`` returns.

    Raises:
        typer.Exit: status 1 after a user error, 130 / 143 after SIGINT / SIGTERM.
    """
    with user_errors():
        if not stop_on_signals:
            return anyio.run(func)
        try:
            outcome = anyio.run(_until_signalled, func)
        except KeyboardInterrupt:  # before the handlers were in place, or not the main thread
            outcome = _Signalled(signal.SIGINT)
    if isinstance(outcome, _Escaped):
        raise outcome.exc
    if isinstance(outcome, _Signalled):
        print_error("interrupted")
        raise typer.Exit(128 + outcome.signum)
    return outcome


class _Signalled:
    def __init__(self, signum: int) -> None:
        self.signum = signum


async def _until_signalled(func: Callable[[], Awaitable[T]]) -> T | _Signalled | _Escaped:
    """``func``'s result, or the first stop signal that arrived (``func`` then cancelled).

    The handlers are removed as soon as the first signal arrives, so a second one acts as
    if none were installed: SIGTERM ends the process, SIGINT raises KeyboardInterrupt.
    """
    outcome: list[T | _Signalled | _Escaped] = []
    try:
        async with anyio.create_task_group() as tg:

            async def work() -> None:
                try:
                    outcome.append(await func())
                except (SystemExit, KeyboardInterrupt) as exc:
                    # Raised in a task, these would stop the loop before anyio lets go of
                    # its worker threads (rich raises SystemExit on a closed stdout pipe):
                    # carried out of the loop instead, and raised there.
                    outcome.append(_Escaped(exc))
                tg.cancel_scope.cancel()

            tg.start_soon(work)
            try:
                receiver = anyio.open_signal_receiver(*STOP_SIGNALS)
                signals = receiver.__enter__()
            except (RuntimeError, ValueError, NotImplementedError):
                await anyio.sleep_forever()  # not the main thread: no handlers; work ends it
            try:
                async for signum in signals:
                    outcome.append(_Signalled(signum))
                    tg.cancel_scope.cancel()  # the work's cleanup runs before the group exits
                    break
            finally:
                receiver.__exit__(None, None, None)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # the work's own error, not wrapped in a group
            raise group.exceptions[0] from None
        raise
    return outcome[0]


class _Escaped:
    """A SystemExit or KeyboardInterrupt of the work, re-raised outside the event loop."""

    def __init__(self, exc: SystemExit | KeyboardInterrupt) -> None:
        self.exc = exc
