"""The ``aiomodelkit`` typer app: every command, registered in one place, and ``main()``.

The commands live beside this module, one module per group: ``_assets.py`` (the ``assets``
commands), ``_cache.py`` (the ``cache`` commands), ``_library.py`` (describe, list-assets,
download-assets) and ``_serve.py`` (serve, demo). Below them: ``_options.py`` (shared
options, and the one place settings are built), ``_progress.py`` (progress bars, and the
fetch-and-report that ``assets fetch`` and ``download-assets`` share), ``_models.py``
(importing the user's models) and ``_output.py`` (the consoles, and user errors printed as
one line on stderr with exit status 1, never a traceback). A usage error (an unknown
option, a missing argument, a value of the wrong type) is one line too, with click's exit
status 2 (see :class:`_OneLineUsageErrors`). Imports point down only: this module imports
the command modules, none of them imports it. To add a command, write it in its group's
module and register it here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from aiomodelkit._version import __version__

from . import _assets, _cache, _library, _serve
from ._output import print_error, show_warnings

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["app", "main"]


class _OneLineUsageErrors(TyperGroup):
    """The root command: click's usage errors print as one ``error:`` line, like user errors.

    click (through typer) prints a usage error as the usage line, a hint and a framed box;
    here it is ``error: <what> (see '<command> --help')`` on stderr, exit status 2, so that
    every failure of the command line reads the same way. Help asked for by running a group
    with no arguments is still printed whole.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line (as click does), printing a usage error as one line.

        Raises:
            SystemExit: always in standalone mode: the command's status, 2 after a usage
                error, 1 after a declined confirmation.
        """
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            # Not standalone: click raises its errors here, and returns the exit status of
            # a typer.Exit (None when the command returned normally).
            status = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except _CLICK_ERROR as exc:
            code: int = getattr(exc, "exit_code", 2)
            # typer prints the help of a group run with no arguments before raising this
            # (it names the class only, as typer itself does: cf. fastapi/typer#1278).
            if type(exc).__name__ != "NoArgsIsHelpError":
                print_error(_one_line(exc))
            sys.exit(code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


def _click_error() -> type[Exception]:
    """The base class of the usage errors typer raises: its own since it vendors click,
    click's before that."""
    found: type[Exception] | None = getattr(typer, "TyperException", None)
    if found is None:  # pragma: no cover - typer before it vendored click
        import click

        found = click.ClickException
    return found


_CLICK_ERROR = _click_error()


def _one_line(exc: Exception) -> str:
    """A usage error's message on one line, and where to look for help."""
    format_message = getattr(exc, "format_message", None)
    message = " ".join((format_message() if format_message else str(exc)).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        message += f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
    return message


app = typer.Typer(
    name="aiomodelkit",
    cls=_OneLineUsageErrors,
    help="Publish, list and fetch model assets in modelkit-layout stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help, as git and pip print it: no boxes to wrap at 80 columns, and no type
    # labels after on/off flags (typer's rich help shows "<bool>" for them).
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aiomodelkit {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Publish, list and fetch model assets in modelkit-layout stores."""
    show_warnings()


assets_app = typer.Typer(
    help="Manage assets in a store.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(assets_app, name="assets")

assets_app.command("new")(_assets.assets_new)
assets_app.command("update")(_assets.assets_update)
assets_app.command("list")(_assets.assets_list)
assets_app.command("versions")(_assets.assets_versions)
assets_app.command("fetch")(_assets.assets_fetch)
assets_app.command("lock")(_assets.assets_lock)

cache_app = typer.Typer(
    help="List, verify and prune the local cache.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(cache_app, name="cache")

cache_app.command("ls")(_cache.cache_ls)
cache_app.command("verify")(_cache.cache_verify)
cache_app.command("prune")(_cache.cache_prune)

app.command("demo")(_serve.demo)
app.command("describe")(_library.describe)
app.command("list-assets")(_library.list_assets)
app.command("download-assets")(_library.download_assets)
app.command("serve")(_serve.serve)


def main() -> None:
    """Entry point of the ``aiomodelkit`` script."""
    sys.exit(app())
