"""The commands that run something: ``serve`` (the models over HTTP) and ``demo``.

The engines behind them are :mod:`aiomodelkit._serve` and :mod:`aiomodelkit._demo`,
imported when the command runs (aiohttp is a heavy import the other commands skip). The
docstring of each command is its ``--help`` text.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ._models import library_for
from ._options import (
    AssetsDirOption,
    ModuleArgument,
    RequiredOption,
    StorageOption,
    WatchIntervalOption,
    load_settings,
)
from ._output import console, err_console, run, user_errors

__all__ = ["demo", "serve"]


def serve(
    module: ModuleArgument,
    required_models: RequiredOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
    watch_interval: WatchIntervalOption = None,
) -> None:
    """Serve the models of MODULE over HTTP until SIGINT or SIGTERM.

    POST /predict/{model} (a JSON item) and /predict/{model}/batch (a JSON list);
    GET /health (the process is up) and /ready (503 until every model is loaded, with
    each model's version); POST /admin/reload swaps in newer versions now.
    """
    from aiomodelkit._serve import serve as serve_library

    def say(message: str) -> None:
        err_console.print(escape(message), highlight=False)

    with user_errors():
        settings = load_settings(
            storage=storage, assets_dir=assets_dir, watch_interval=watch_interval
        )
        # Imported here, before the event loop starts: importing user code blocks.
        library = library_for(module, required_models, settings)
    # serve drains requests in flight on SIGINT / SIGTERM itself.
    run(lambda: serve_library(library, host=host, port=port, say=say), stop_on_signals=False)


def demo(
    size_mib: Annotated[
        int, typer.Option("--size-mib", min=1, help="Size of the largest example asset (MiB).")
    ] = 64,
    rtt_ms: Annotated[
        float,
        typer.Option(
            "--rtt-ms", min=0, help="Round-trip time between the models and the store (ms)."
        ),
    ] = 20.0,
) -> None:
    """Start six example models from a store across a network: cold, then warm.

    Nothing to install: the store is moto's S3 server behind a loopback link with
    --rtt-ms of latency when the test extras are installed, else a local folder behind
    the same simulated latency; both live in a temporary folder, removed afterwards. It
    prints the cold start concurrently (with a timeline) against one model after another,
    and a warm start that sends no request.
    """
    from aiomodelkit._demo import run_demo

    run(lambda: run_demo(console, size_mib=size_mib, rtt_ms=rtt_ms))
