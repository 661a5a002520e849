"""The ``aiomodelkit`` typer app: every command, registered in one place, and ``main()``.

The commands live beside this module, one module per group: ``_assets.py`` (the ``assets``
commands), ``_library.py`` (describe, list-assets, download-assets) and ``_serve.py``
(serve, demo). Below them: ``_options.py`` (shared options, and the one place settings are
built), ``_progress.py`` (progress bars, and the fetch-and-report that ``assets fetch`` and
``download-assets`` share), ``_models.py`` (importing the user's models) and ``_output.py``
(the consoles, and user errors printed as one line on stderr with exit status 1, never a
traceback). Imports point down only: this module imports the command modules, none of
them imports it. To add a command, write it in its group's module and register it here.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aiomodelkit._version import __version__

from . import _assets, _library, _serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="aiomodelkit",
    help="Publish, list and fetch model assets in modelkit-layout stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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


assets_app = typer.Typer(help="Manage assets in a store.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")

assets_app.command("new")(_assets.assets_new)
assets_app.command("update")(_assets.assets_update)
assets_app.command("list")(_assets.assets_list)
assets_app.command("versions")(_assets.assets_versions)
assets_app.command("fetch")(_assets.assets_fetch)
assets_app.command("lock")(_assets.assets_lock)

app.command("demo")(_serve.demo)
app.command("describe")(_library.describe)
app.command("list-assets")(_library.list_assets)
app.command("download-assets")(_library.download_assets)
app.command("serve")(_serve.serve)


def main() -> None:
    """Entry point of the ``aiomodelkit`` script."""
    sys.exit(app())
