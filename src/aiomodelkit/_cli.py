"""The ``aiomodelkit`` command line (typer + rich).

User errors print one line and exit with status 1; nothing prints a traceback for them.
"""

from __future__ import annotations

import sys
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
from ._events import BytesReceived, Event, EventCallback, ObjectUploaded
from ._manager import AssetsManager
from ._settings import Settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

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
    except ModelkitError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


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
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Fetch assets into the local cache and print where they are."""

    async def go() -> list[tuple[str, str, str]]:
        settings = Settings.load(storage=storage, assets_dir=assets_dir)
        with _byte_progress("fetch") as (progress, task):

            def on_event(event: Event) -> None:
                if isinstance(event, BytesReceived):
                    progress.advance(task, event.size)

            async with AssetsManager(settings=settings, on_event=on_event) as am:
                rows: list[tuple[str, str, str]] = []
                for spec in specs:
                    fetched = await am.fetch(spec, force=force)
                    status = "cached" if fetched.from_cache else f"{fetched.size} bytes"
                    rows.append((str(fetched.spec), str(fetched.path), status))
                return rows

    for spec, path, status in _run(go):
        # Plain tab-separated lines: meant for scripts as much as for people.
        typer.echo(f"{spec}\t{path}\t{status}")


@app.command("demo")
def demo(
    size_mib: Annotated[int, typer.Option("--size-mib", help="Size of the sample asset.")] = 64,
) -> None:
    """Publish a sample asset to a local store in a temporary folder, then fetch it."""
    from ._demo import run_demo

    _run(lambda: run_demo(console, size_mib=size_mib))


def main() -> None:
    """Entry point of the ``aiomodelkit`` script."""
    sys.exit(app())
