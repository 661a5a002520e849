"""Rich progress on stderr: bytes uploaded while publishing, and the one fetch-and-report.

``assets fetch`` and ``download-assets`` are one action (fetch a list of specs into the
cache): both call :func:`fetch_and_report`, and differ only in where the specs come from
and in the wording of the summary line.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from aiomodelkit._events import AssetPublished, BytesReceived, DownloadStarted, Event, EventCallback
from aiomodelkit._manager import AssetsManager
from aiomodelkit._values import format_size

from ._output import err_console, run

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from aiomodelkit._fetch import FetchedAsset
    from aiomodelkit._settings import Settings
    from aiomodelkit._spec import AssetSpec

__all__ = ["FetchReport", "byte_progress", "fetch_and_report", "fetch_progress"]


class _SpeedColumn(ProgressColumn):
    """Bytes per second in the binary units of every other size we print."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = "?" if speed is None else f"{format_size(speed)}/s"
        return Text(shown, style="progress.data.speed")


def _progress() -> Progress:
    """Transient bars on stderr, shown only when stderr is a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        _SpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=True,
    )


@contextmanager
def byte_progress(description: str) -> Iterator[tuple[Progress, TaskID]]:
    """One bar of bytes (its total unknown until set), for a publication.

    Yields:
        The progress and its one task, to advance and to give a total.
    """
    progress = _progress()
    with progress:
        yield progress, progress.add_task(description, total=None)


@contextmanager
def fetch_progress() -> Iterator[EventCallback]:
    """Rich progress: one bar per downloading asset and one for the total.

    Yields:
        The event callback that moves the bars.
    """
    progress = _progress()
    total = progress.add_task("total", total=0)
    bars: dict[str, TaskID] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, DownloadStarted):
            label = escape(f"{event.asset}:{event.version}")
            bars[event.asset] = progress.add_task(label, total=event.total_bytes)
            grown = (progress.tasks[total].total or 0) + (event.total_bytes or 0)
            progress.update(total, total=grown)
        elif isinstance(event, BytesReceived):
            progress.advance(total, event.size)
            if event.asset in bars:
                progress.advance(bars[event.asset], event.size)
        elif isinstance(event, AssetPublished) and event.asset in bars:
            progress.update(bars.pop(event.asset), visible=False)

    with progress:
        yield on_event


@dataclass(frozen=True)
class FetchReport:
    """What one fetch command fetched, and in how long.

    Attributes:
        fetched: one result per spec, in the order of the specs.
        elapsed: seconds spent in ``fetch_many``.
    """

    fetched: tuple[FetchedAsset, ...]
    elapsed: float

    @property
    def size(self) -> int:
        """Bytes downloaded (a version shared by several specs counts once)."""
        return sum(item.size for item in self._downloads())

    @property
    def objects(self) -> int:
        """Objects downloaded (a version shared by several specs counts once)."""
        return sum(item.objects for item in self._downloads())

    def _downloads(self) -> list[FetchedAsset]:
        # Specs that resolve to one version share its one download, and each reports it.
        versions: dict[tuple[str, str], FetchedAsset] = {}
        for item in self.fetched:
            key = (item.spec.name, item.version)
            if key not in versions or item.size > versions[key].size:
                versions[key] = item
        return list(versions.values())

    @property
    def hits(self) -> int:
        """Specs served from the cache alone."""
        return sum(item.from_cache for item in self.fetched)


def fetch_and_report(
    settings: Settings,
    specs: Sequence[str | AssetSpec],
    *,
    force: bool,
    summary: Callable[[FetchReport], str],
    offline: bool | None = None,
) -> None:
    """Fetch ``specs`` concurrently with progress bars, then print where they are.

    Prints one tab-separated line per spec (spec, path, status) on stdout, and the
    ``summary`` of the whole fetch on stderr.

    Args:
        settings: the command's settings (store, cache, lock file).
        specs: the asset specs, in the order of the lines printed.
        force: download even cached versions.
        summary: the summary line, from the report.
        offline: use only the cache (default: ``settings.offline``).

    Raises:
        typer.Exit: with status 1, after printing the user errors (see ``_output``).
    """

    async def go() -> FetchReport:
        with fetch_progress() as on_event:
            async with AssetsManager(settings=settings, on_event=on_event, offline=offline) as am:
                started = time.perf_counter()
                # One fetch_many: every object of every asset under one connection budget.
                fetched = await am.fetch_many(specs, force=force)
                return FetchReport(tuple(fetched), time.perf_counter() - started)

    report = run(go)
    for item in report.fetched:
        status = "cached" if item.from_cache else format_size(item.size)
        # Plain tab-separated lines: meant for scripts as much as for people.
        typer.echo(f"{item.spec}\t{item.path}\t{status}")
    err_console.print(summary(report), highlight=False)
