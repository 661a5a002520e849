"""The ``aiomodelkit`` command line (typer + rich); ``_app.py`` lists every command."""

from ._app import app as app
from ._app import main as main

__all__ = ["app", "main"]
