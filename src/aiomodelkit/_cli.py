"""The ``aiomodelkit`` command line (typer + rich).

User errors print one line and exit with status 1; nothing prints a traceback for them.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ._errors import ConfigError, ModelkitError
from ._events import (
    AssetPublished,
    BytesReceived,
    DownloadStarted,
    Event,
    EventCallback,
    ObjectUploaded,
)
from ._manager import AssetsManager
from ._settings import Settings
from .stores._base import MiB

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from ._fetch import FetchedAsset
    from ._publish import PublishResult

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="aiomodelkit",
    help="Publish, list and fetch model assets in modelkit-layout stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
assets_app = typer.Typer(help="Manage assets in a store.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")

console = Console()
err_console = Console(stderr=True)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Store URL (file:///dir, s3://bucket/prefix, gs://bucket/prefix). "
        "Default: AIOMODELKIT_STORAGE.",
        show_default=False,
    ),
]
AssetsDirOption = Annotated[
    Path | None,
    typer.Option("--assets-dir", help="Local cache directory. Default: AIOMODELKIT_ASSETS_DIR."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Check and show what would be published; upload nothing.")
]


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except* ModelkitError as group:
        # fetch_many reports concurrent failures as a group: one line each.
        for exc in _leaves(group):
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(1) from None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _run(func: Callable[[], Awaitable[T]]) -> T:
    with _user_errors():
        return anyio.run(func)


def _manager(storage: str | None, on_event: EventCallback | None = None) -> AssetsManager:
    settings = Settings.load(storage=storage)
    if settings.storage is None:
        raise ConfigError("no store configured: pass --storage URL or set AIOMODELKIT_STORAGE")
    return AssetsManager(settings=settings, on_event=on_event)


@contextmanager
def _byte_progress(description: str, enabled: bool = True) -> Iterator[tuple[Progress, TaskID]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,
        transient=True,
    )
    with progress:
        yield progress, progress.add_task(description, total=None)


def _publish(
    action: str,
    local_path: Path,
    name: str,
    storage: str | None,
    yes: bool,
    dry_run: bool,
    call: Callable[[AssetsManager, bool], Awaitable[PublishResult]],
) -> None:
    async def go() -> PublishResult:
        with _byte_progress(f"{action} {name}") as (progress, task):

            def on_event(event: Event) -> None:
                if isinstance(event, ObjectUploaded):
                    progress.advance(task, event.size)

            async with _manager(storage, on_event=on_event) as am:
                plan = await call(am, True)
                progress.update(task, total=plan.size)
                verb = "Would publish" if dry_run else "Publish"
                where = am.store.url if am.store else ""
                err_console.print(
                    f"{verb} {escape(str(local_path))} as [bold]{escape(str(plan.spec))}[/] "
                    f"({plan.objects} object(s), {plan.size} bytes) to {escape(where)}",
                    highlight=False,
                )
                if dry_run:
                    return plan
                if not yes and not typer.confirm("Proceed?", err=True):
                    raise typer.Abort()
                return await call(am, False)

    result = _run(go)
    if not result.dry_run:
        typer.echo(f"published {result.spec}")


@assets_app.command("new")
def assets_new(
    local_path: Annotated[Path, typer.Argument(help="File or directory to publish.")],
    name: Annotated[str, typer.Argument(help="Asset name, e.g. models/classifier.")],
    storage: StorageOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Publish PATH as the first version of a new asset NAME."""
    _publish(
        "new",
        local_path,
        name,
        storage,
        yes,
        dry_run,
        lambda am, dry: am.new(local_path, name, dry_run=dry),
    )


@assets_app.command("update")
def assets_update(
    local_path: Annotated[Path, typer.Argument(help="File or directory to publish.")],
    name: Annotated[str, typer.Argument(help="Existing asset name.")],
    bump_major: Annotated[
        bool, typer.Option("--bump-major", help="Start a new major version.")
    ] = False,
    major: Annotated[
        str | None, typer.Option("--major", help="Publish the next minor of this major version.")
    ] = None,
    storage: StorageOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Publish PATH as the next version of the existing asset NAME."""
    _publish(
        "update",
        local_path,
        name,
        storage,
        yes,
        dry_run,
        lambda am, dry: am.update(
            local_path, name, bump_major=bump_major, major=major, dry_run=dry
        ),
    )


@assets_app.command("list")
def assets_list(storage: StorageOption = None) -> None:
    """List every asset in the store with its versions."""

    async def go() -> list[tuple[str, list[str]]]:
        async with _manager(storage) as am:
            names = await am.list_assets()
            rows: list[tuple[str, list[str]]] = [(n, []) for n in names]

            async def versions(index: int, name: str) -> None:
                rows[index] = (name, await am.versions(name))

            async with anyio.create_task_group() as tg:
                for index, name in enumerate(names):
                    tg.start_soon(versions, index, name)
            return rows

    rows = _run(go)
    table = Table("asset", "versions (newest first)")
    for name, versions in rows:
        table.add_row(name, ", ".join(versions))
    console.print(table)


@assets_app.command("versions")
def assets_versions(
    name: Annotated[str, typer.Argument(help="Asset name.")], storage: StorageOption = None
) -> None:
    """List the versions of NAME with their push date and pusher."""

    async def go() -> list[tuple[str, str, str]]:
        async with _manager(storage) as am:
            versions = await am.versions(name)
            rows = [(v, "", "") for v in versions]

            async def describe(index: int, version: str) -> None:
                meta = await am.meta(name, version)
                date = meta.push_date.isoformat(timespec="seconds") if meta.push_date else "?"
                rows[index] = (version, date, meta.pushed_by or "?")

            async with anyio.create_task_group() as tg:
                for index, version in enumerate(versions):
                    tg.start_soon(describe, index, version)
            return rows

    table = Table("version", "pushed at (UTC)", "pushed by", title=name)
    for row in _run(go):
        table.add_row(*row)
    console.print(table)


@assets_app.command("fetch")
def assets_fetch(
    specs: Annotated[list[str], typer.Argument(help="Asset specs, e.g. models/clf:1.2[sub/file].")],
    force: Annotated[bool, typer.Option("--force", help="Download even if cached.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use only the cache; never touch the network.")
    ] = False,
    lock_file: Annotated[
        Path | None, typer.Option("--lock-file", help="Honour this lock file of versions.")
    ] = None,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Fetch assets concurrently into the local cache and print where they are.

    Prints one tab-separated line per spec (spec, path, status) on stdout, progress bars
    and a summary on stderr.
    """

    async def go() -> tuple[list[FetchedAsset], float]:
        settings = Settings.load(storage=storage, assets_dir=assets_dir, lock_file=lock_file)
        with _fetch_progress() as on_event:
            async with AssetsManager(settings=settings, on_event=on_event, offline=offline) as am:
                started = time.perf_counter()
                fetched = await am.fetch_many(specs, force=force)
                return fetched, time.perf_counter() - started

    fetched, elapsed = _run(go)
    for item in fetched:
        status = "cached" if item.from_cache else f"{item.size} bytes"
        # Plain tab-separated lines: meant for scripts as much as for people.
        typer.echo(f"{item.spec}\t{item.path}\t{status}")
    size = sum(item.size for item in fetched)
    objects = sum(item.objects for item in fetched)
    hits = sum(item.from_cache for item in fetched)
    err_console.print(
        f"{len(fetched)} asset(s), {hits} from cache: {objects} object(s), "
        f"{size / MiB:.1f} MiB in {elapsed:.2f} s ({size / MiB / max(elapsed, 1e-9):.1f} MiB/s)",
        highlight=False,
    )


@contextmanager
def _fetch_progress() -> Iterator[EventCallback]:
    """Rich progress: one bar per downloading asset and one for the total."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=True,
    )
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


@assets_app.command("lock")
def assets_lock(
    specs: Annotated[list[str], typer.Argument(help="Asset specs to resolve, e.g. models/clf:1.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Lock file to write.")] = Path(
        "aiomodelkit.lock"
    ),
    storage: StorageOption = None,
) -> None:
    """Resolve specs to exact versions now and write them (with checksums) to a lock file."""

    async def go() -> int:
        async with _manager(storage) as am:
            lock = await am.lock(specs, output)
            return len(lock.assets)

    count = _run(go)
    typer.echo(f"locked {count} spec(s) in {output}")


@app.command("demo")
def demo(
    size_mib: Annotated[
        int, typer.Option("--size-mib", help="Size of the largest example asset.")
    ] = 64,
) -> None:
    """Publish example assets to a local store in a temporary folder, then start a library of
    six models concurrently and one after another."""
    from ._demo import run_demo

    _run(lambda: run_demo(console, size_mib=size_mib))


def main() -> None:
    """Entry point of the ``aiomodelkit`` script."""
    sys.exit(app())


from . import _cli_library as _cli_library  # noqa: E402 - registers the library commands
