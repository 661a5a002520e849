"""The library commands of the ``aiomodelkit`` CLI: describe, list-assets, download-assets, serve.

They register on the typer ``app`` of ``_cli.py``, which imports this module last. MODULE is
an importable module name (the current directory is searched first, as modelkit does) or a
path to a ``.py`` file; every Model subclass it defines or imports with ``CONFIGURATIONS``
is part of the library.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ._cli import (
    AssetsDirOption,
    StorageOption,
    _fetch_progress,
    _run,
    _user_errors,
    app,
    console,
    err_console,
)
from ._errors import ConfigError
from ._library import ModelLibrary
from ._manager import AssetsManager
from ._settings import Settings
from .stores._base import MiB

if TYPE_CHECKING:
    from types import ModuleType

    from ._fetch import FetchedAsset

__all__ = ["import_models"]

ModuleArgument = Annotated[
    str,
    typer.Argument(
        help="The models: a module name (found from the current directory too) or a .py file.",
        show_default=False,
    ),
]
RequiredOption = Annotated[
    list[str] | None,
    typer.Option(
        "--required-models",
        "-r",
        help="Only these models (and their dependencies); repeat for several. Default: all.",
        show_default=False,
    ),
]


def import_models(target: str) -> ModuleType:
    """Import the module of models named ``target``: a dotted name or a ``.py`` file path.

    Raises:
        ConfigError: there is no such module or file.
    """
    path = Path(target)
    if target.endswith(".py") or os.sep in target:
        return _import_file(path)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        # Only the module asked for is a user error; a missing import inside it is a bug.
        if exc.name is not None and (target == exc.name or target.startswith(f"{exc.name}.")):
            raise ConfigError(f"cannot import models from {target!r}: no such module") from None
        raise


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"cannot import models from {str(path)!r}: no such file")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) == str(path.resolve()):
            return existing
        raise ConfigError(
            f"cannot import {str(path)!r}: a module named {name!r} is already imported "
            "(rename the file, or pass a dotted module name)"
        )
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import models from {str(path)!r}")
    # The file's own directory comes first, so that it can import its sibling modules.
    sys.path.insert(0, str(path.resolve().parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _library(
    module: str, required_models: list[str] | None, settings: Settings | None = None
) -> ModelLibrary:
    return ModelLibrary(
        import_models(module), required_models=required_models or None, settings=settings
    )


@app.command("describe")
def describe(module: ModuleArgument, required_models: RequiredOption = None) -> None:
    """Print the models of MODULE as a tree: assets, dependencies and settings."""
    with _user_errors():
        _library(module, required_models).describe(console)


@app.command("list-assets")
def list_assets(module: ModuleArgument, required_models: RequiredOption = None) -> None:
    """Print the asset spec of each model of MODULE (model, tab, spec; one per line).

    Models without an asset, or whose asset path is set directly, are left out.
    """
    with _user_errors():
        assets = _library(module, required_models).list_assets()
    for key, spec in assets.items():
        typer.echo(f"{key}\t{spec}")


@app.command("download-assets")
def download_assets(
    module: ModuleArgument,
    required_models: RequiredOption = None,
    force: Annotated[bool, typer.Option("--force", help="Download even if cached.")] = False,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Fetch every asset the models of MODULE need into the cache, concurrently.

    Meant for image builds: run it at build time, and the service starts from the cache.
    Prints one tab-separated line per asset (spec, path, status) on stdout, progress and a
    summary on stderr.
    """
    with _user_errors():
        settings = Settings.load(storage=storage, assets_dir=assets_dir)
        if settings.storage is None:
            raise ConfigError("no store configured: pass --storage URL or set AIOMODELKIT_STORAGE")
        # Each spec once, even if several models share it.
        assets = _library(module, required_models, settings).list_assets()
        specs = list(dict.fromkeys(assets.values()))

    async def go() -> tuple[list[FetchedAsset], float]:
        with _fetch_progress() as on_event:
            async with AssetsManager(settings=settings, on_event=on_event) as am:
                started = time.perf_counter()
                # One fetch_many: every object of every asset under one connection budget.
                fetched = await am.fetch_many(specs, force=force)
                return fetched, time.perf_counter() - started

    fetched, elapsed = _run(go)
    for item in fetched:
        status = "cached" if item.from_cache else f"{item.size} bytes"
        typer.echo(f"{item.spec}\t{item.path}\t{status}")
    size = sum(item.size for item in fetched)
    hits = sum(item.from_cache for item in fetched)
    err_console.print(
        f"{len(fetched)} asset(s), {hits} from cache, {size / MiB:.1f} MiB downloaded "
        f"in {elapsed:.2f} s",
        highlight=False,
    )


@app.command("serve")
def serve(
    module: ModuleArgument,
    required_models: RequiredOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Serve the models of MODULE over HTTP until SIGINT or SIGTERM.

    POST /predict/{model} (a JSON item) and /predict/{model}/batch (a JSON list);
    GET /health (the process is up) and /ready (503 until every model is loaded).
    """
    from ._serve import serve as serve_library

    def say(message: str) -> None:
        err_console.print(escape(message), highlight=False, soft_wrap=True)

    with _user_errors():
        settings = Settings.load(storage=storage, assets_dir=assets_dir)
        # Imported here, before the event loop starts: importing user code blocks.
        library = _library(module, required_models, settings)
    _run(lambda: serve_library(library, host=host, port=port, say=say))
