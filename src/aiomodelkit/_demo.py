"""``aiomodelkit demo``: what concurrency buys when the store is across a network.

In a temporary folder (removed afterwards, even on Ctrl-C), the demo publishes five assets
to a store with latency (:mod:`._demo_remote`: moto's S3 server behind a loopback proxy
when the test extras are installed, else a local folder behind a simulated round-trip
time), then starts the six models of :mod:`._demo_models` three times:

1. cold, concurrently (aiomodelkit): every fetch starts at once, each model loads as soon
   as its asset and its dependencies are ready; a labelled timeline shows it;
2. cold, one by one, each model fetched and then loaded (modelkit's way), for the ratio;
3. warm, from the first start's cache: zero requests, counted on the link, so the time is
   the loads alone.
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
)

from ._demo_models import MODELS, Pipeline, make_sources
from ._demo_output import Glyphs, critical_path, dependencies_text, paragraph, print_timeline
from ._demo_remote import RemoteKind, open_remote
from ._events import BytesReceived, DownloadStarted
from ._library import ModelLibrary
from ._manager import AssetsManager
from ._settings import Settings
from ._status import ModelLoadFinished
from ._values import MiB

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from ._demo_remote import Remote
    from ._events import Event
    from ._status import ModelEvent, ModelStatus

__all__ = ["DemoReport", "Start", "run_demo"]

SENTENCE = "a great day for the library"


@dataclass(frozen=True, slots=True)
class Start:
    """One start of the demo library.

    Attributes:
        seconds: from entering the library to every model loaded.
        requests: requests sent across the link to the store meanwhile.
    """

    seconds: float
    requests: int


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What :func:`run_demo` measured (it also prints it).

    Attributes:
        store: the store it used, as printed (``embedded S3 (moto ...) ...``).
        rtt: the link's round-trip time, in seconds.
        concurrent: the cold start, concurrently.
        one_by_one: the cold start, one model after another.
        warm: the warm start, from the concurrent start's cache.
        workdir: the temporary folder (removed when the demo returns).
    """

    store: str
    rtt: float
    concurrent: Start
    one_by_one: Start
    warm: Start
    workdir: Path


async def run_demo(
    console: Console, *, size_mib: int = 64, rtt_ms: float = 20.0, remote: RemoteKind = "auto"
) -> DemoReport:
    """Publish the demo assets, then start the demo library cold (two ways) and warm.

    Args:
        console: where to print.
        size_mib: the size of the largest asset (the classifier's weights).
        rtt_ms: the round-trip time between the library and the store, in milliseconds.
        remote: ``auto`` (moto's S3 server if installed, else the local folder), or force
            ``moto`` or ``local``.

    Returns:
        The times and request counts it printed.

    Raises:
        ValueError: ``size_mib`` below 1 or a negative ``rtt_ms``.
        ConfigError: ``remote="moto"`` without moto and the ``s3`` extra.
    """
    if size_mib < 1 or rtt_ms < 0:
        raise ValueError("size_mib must be >= 1 and rtt_ms >= 0")
    # The demo is an entry point: it reads the environment once (house style, section 6),
    # for client tuning; what would send a start elsewhere or change what it does is reset.
    settings = Settings.load().model_copy(
        update={
            "offline": False,
            "force_download": False,
            "lock_file": None,
            "assets_dir_override": None,
            "asset_overrides": {},
        }
    )
    paragraph(
        console,
        f"aiomodelkit demo: six models start from a store {rtt_ms:g} ms away (round trip), "
        "cold, first concurrently and then one by one, then warm.",
    )
    # Made and removed in a worker thread: mkdir and rmtree block (house style, section 5).
    tmp = await anyio.to_thread.run_sync(
        functools.partial(tempfile.TemporaryDirectory, prefix="aiomodelkit-demo-")
    )
    try:
        root = Path(tmp.name)
        async with open_remote(
            root / "store", rtt=rtt_ms / 1000, kind=remote, options=settings.store_options()
        ) as link:
            return await _run(console, root, link, settings, size_mib)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(tmp.cleanup)


async def _run(
    console: Console, root: Path, link: Remote, settings: Settings, size_mib: int
) -> DemoReport:
    glyphs = Glyphs.for_encoding(console.encoding)
    say = functools.partial(paragraph, console)
    console.print()
    say(f"store: {link.description}", style="bold")
    say(link.detail, indent=2)
    say(f"work folder: {root} (removed at the end)")
    await _publish(root, link, settings, size_mib, console)
    rtt = f"{link.rtt * 1000:g} ms RTT"
    console.print()
    say(
        "6 toy models; each _load reads and hashes its asset, then sleeps 0.05-0.4 s to "
        f"stand in for deserialising weights. Every fetch crosses the {rtt} link. "
        f"Dependencies: {dependencies_text(_dependencies(), glyphs)}."
    )

    concurrent, statuses, prediction = await _cold_concurrent(console, root, link, settings)
    console.print()
    say(f"1. cold start, concurrent (aiomodelkit): {_start_text(concurrent)}", style="bold")
    print_timeline(console, statuses, concurrent.seconds, glyphs)
    say(f'pipeline.predict("{SENTENCE}") {glyphs.arrow} {prediction!r}')

    one_by_one = await _cold_one_by_one(console, root, link, settings)
    console.print()
    say(f"2. cold start, one by one, like modelkit: {_start_text(one_by_one)}", style="bold")
    say("each model fetched, then loaded, then the next; one request at a time", indent=3)
    ratio = one_by_one.seconds / concurrent.seconds
    say(
        f"concurrent {concurrent.seconds:.2f} s vs one by one {one_by_one.seconds:.2f} s: "
        f"{ratio:.1f}x faster across a {rtt} link",
        style="bold green",
    )

    warm, warm_statuses = await _warm(root, link, settings)
    cached = sum(s.asset_source == "cache" for s in warm_statuses.values())
    chain, chain_s = critical_path(warm_statuses)
    console.print()
    say(f"3. warm start, same cache: {_start_text(warm)}", style="bold")
    say(
        f"{cached} assets found in the cache, versions pinned: no network, so the warm "
        f"start time is the loads alone ({chain_s:.2f} s on the longest chain, "
        f"{f' {glyphs.arrow} '.join(chain)})",
        indent=3,
    )
    return DemoReport(link.description, link.rtt, concurrent, one_by_one, warm, root)


def _start_text(start: Start) -> str:
    plural = "" if start.requests == 1 else "s"
    return f"{start.seconds:.2f} s, {start.requests} request{plural} to the store"


def _dependencies() -> dict[str, tuple[str, ...]]:
    """Each demo model's dependencies, from its configuration."""
    deps: dict[str, tuple[str, ...]] = {}
    for model in MODELS:
        for key, conf in model.CONFIGURATIONS.items():
            names = conf.get("model_dependencies", ())
            deps[key] = tuple(names.values() if isinstance(names, dict) else names)
    return deps


async def _publish(
    root: Path, link: Remote, settings: Settings, size_mib: int, console: Console
) -> None:
    sources = await anyio.to_thread.run_sync(make_sources, root / "sources", size_mib)
    console.print()
    paragraph(console, "published, straight to the store (without the link):")
    async with AssetsManager(root / "publisher-cache", link.direct(), settings=settings) as am:
        for name, source in sources.items():
            published = await am.new(source, name)
            objects = f"{published.objects} object{'' if published.objects == 1 else 's'}"
            paragraph(
                console,
                f"{published.spec!s:<20} {objects:>11} {published.size / MiB:>7.1f} MiB",
                indent=2,
            )


def _progress(console: Console) -> Progress:
    """Transient bars (MiB fetched, models loaded), shown only on a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        TextColumn("{task.fields[amount]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _follow(progress: Progress, description: str) -> functools.partial[None]:
    """An ``on_event`` callback that advances two bars: bytes fetched and models loaded."""
    downloads = progress.add_task(f"  {description}: fetched", total=0, amount="")
    models = progress.add_task(
        f"  {description}: loaded", total=len(MODELS), amount=f"0/{len(MODELS)} models"
    )
    return functools.partial(_advance, progress, downloads, models)


def _advance(
    progress: Progress, downloads: TaskID, models: TaskID, event: Event | ModelEvent
) -> None:
    if isinstance(event, DownloadStarted):
        grown = (progress.tasks[downloads].total or 0) + (event.total_bytes or 0)
        progress.update(downloads, total=grown)
    elif isinstance(event, BytesReceived):
        progress.advance(downloads, event.size)
    elif isinstance(event, ModelLoadFinished):
        progress.advance(models)
    else:
        return
    fetched, loaded = progress.tasks[downloads], progress.tasks[models]
    progress.update(
        downloads, amount=f"{fetched.completed / MiB:.1f}/{(fetched.total or 0) / MiB:.1f} MiB"
    )
    progress.update(models, amount=f"{loaded.completed:.0f}/{len(MODELS)} models")


async def _cold_concurrent(
    console: Console, root: Path, link: Remote, settings: Settings
) -> tuple[Start, Mapping[str, ModelStatus], object]:
    """Every fetch at once, each load as soon as it can (the library's default)."""
    with _progress(console) as progress:
        on_event = _follow(progress, "concurrent")
        before = link.requests()
        start = time.perf_counter()
        async with (
            AssetsManager(
                root / "cache", link.linked(), settings=settings, on_event=on_event
            ) as am,
            ModelLibrary(
                MODELS, settings=settings, assets_manager=am, lazy_loading=False, on_event=on_event
            ) as lib,
        ):
            measured = Start(time.perf_counter() - start, link.requests() - before)
            prediction = await lib.get("pipeline", Pipeline).predict(SENTENCE)
            return measured, lib.status(), prediction


async def _cold_one_by_one(console: Console, root: Path, link: Remote, settings: Settings) -> Start:
    """The same models one after another, each fetched (one request at a time), then loaded.

    That is modelkit's loader: it fetches a model's asset, loads the model, moves on to the
    next, and downloads the files of an asset one after another.
    """
    cache = root / "cache-one-by-one"
    settings = settings.model_copy(update={"max_connections": 1})
    with _progress(console) as progress:
        on_event = _follow(progress, "one by one")
        before = link.requests()
        start = time.perf_counter()
        async with (
            AssetsManager(cache, link.linked(), settings=settings, on_event=on_event) as am,
            ModelLibrary(
                MODELS, settings=settings, assets_manager=am, lazy_loading=True, on_event=on_event
            ) as lib,
        ):
            for key in lib.graph.order:  # dependencies first: each aget loads one model
                await lib.aget(key)
            return Start(time.perf_counter() - start, link.requests() - before)


async def _warm(
    root: Path, link: Remote, settings: Settings
) -> tuple[Start, Mapping[str, ModelStatus]]:
    """The concurrent start again, on its own cache: nothing to fetch."""
    before = link.requests()
    start = time.perf_counter()
    async with (
        AssetsManager(root / "cache", link.linked(), settings=settings) as am,
        ModelLibrary(MODELS, settings=settings, assets_manager=am, lazy_loading=False) as lib,
    ):
        return Start(time.perf_counter() - start, link.requests() - before), lib.status()
