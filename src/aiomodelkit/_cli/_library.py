"""The library commands: ``describe``, ``list-assets`` and ``download-assets``.

They read the models of MODULE (see ``_models.py``) without starting them. The docstring of
each command is its ``--help`` text.
"""

from __future__ import annotations

import typer

from aiomodelkit._values import format_size

from ._models import library_for
from ._options import (
    AssetsDirOption,
    ForceOption,
    ModuleArgument,
    RequiredOption,
    StorageOption,
    load_settings,
)
from ._output import console, user_errors
from ._progress import FetchReport, fetch_and_report

__all__ = ["describe", "download_assets", "list_assets"]


def describe(module: ModuleArgument, required_models: RequiredOption = None) -> None:
    """Print the models of MODULE as a tree: assets, dependencies and settings."""
    with user_errors():
        library_for(module, required_models, load_settings()).describe(console)


def list_assets(module: ModuleArgument, required_models: RequiredOption = None) -> None:
    """Print the asset spec of each model of MODULE (model, tab, spec; one per line).

    Models without an asset, or whose asset path is set directly, are left out.
    """
    with user_errors():
        assets = library_for(module, required_models, load_settings()).list_assets()
    for key, spec in assets.items():
        typer.echo(f"{key}\t{spec}")


def download_assets(
    module: ModuleArgument,
    required_models: RequiredOption = None,
    force: ForceOption = False,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Fetch every asset the models of MODULE need into the cache, concurrently.

    Meant for image builds: run it at build time, and the service starts from the cache.
    Prints one tab-separated line per asset (spec, path, status) on stdout, progress and a
    summary on stderr.
    """
    with user_errors():
        settings = load_settings(storage=storage, assets_dir=assets_dir, require_store=True)
        assets = library_for(module, required_models, settings).list_assets()
        # Each spec once, even if several models share it.
        specs = list(dict.fromkeys(assets.values()))
    # --force left out defers to the settings (AIOMODELKIT_FORCE_DOWNLOAD).
    fetch_and_report(
        settings, specs, force=force or settings.force_download, summary=_download_summary
    )


def _download_summary(report: FetchReport) -> str:
    return (
        f"{len(report.fetched)} asset(s), {report.hits} from cache, "
        f"{format_size(report.size)} downloaded in {report.elapsed:.2f} s"
    )
