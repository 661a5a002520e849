"""The ``aiomodelkit assets`` commands: new, update, list, versions, fetch, lock.

Each works on one store through an :class:`AssetsManager` built from the command's
settings. The docstring of each command is its ``--help`` text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from aiomodelkit._errors import ConfigError, ModelkitError
from aiomodelkit._events import Event, EventCallback, ObjectUploaded
from aiomodelkit._manager import AssetsManager
from aiomodelkit._values import format_size

from ._options import (
    AllowUnsafePublishOption,
    AssetsDirOption,
    DryRunOption,
    ForceOption,
    MultipartThresholdOption,
    StorageOption,
    YesOption,
    load_settings,
)
from ._output import console, err_console, print_error, run, user_errors
from ._progress import FetchReport, byte_progress, fetch_and_report

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiomodelkit._publish import PublishResult

__all__ = [
    "assets_fetch",
    "assets_list",
    "assets_lock",
    "assets_new",
    "assets_update",
    "assets_versions",
]


def _manager(
    storage: str | None,
    on_event: EventCallback | None = None,
    *,
    allow_unsafe_publish: bool = False,
    multipart_threshold: int | None = None,
) -> AssetsManager:
    """A manager of the configured store (``--storage``, else the environment).

    Raises:
        ConfigError: a setting is invalid, or no store is configured.
    """
    settings = load_settings(
        storage=storage, require_store=True, multipart_threshold=multipart_threshold
    )
    if allow_unsafe_publish:  # the flag turns it on; left out, the setting decides
        settings = settings.model_copy(update={"allow_unsafe_publish": True})
    return AssetsManager(settings=settings, on_event=on_event)


def _publish(
    action: str,
    local_path: Path,
    name: str,
    storage: str | None,
    yes: bool,
    dry_run: bool,
    call: Callable[[AssetsManager, bool], Awaitable[PublishResult]],
    allow_unsafe_publish: bool = False,
    multipart_threshold: int | None = None,
) -> None:
    """Plan a publication (``call`` in a dry run), show it, confirm, then publish."""

    async def go() -> PublishResult:
        with byte_progress(f"{action} {name}") as (progress, task):

            def on_event(event: Event) -> None:
                if isinstance(event, ObjectUploaded):
                    progress.advance(task, event.size)

            manager = _manager(
                storage,
                on_event,
                allow_unsafe_publish=allow_unsafe_publish,
                multipart_threshold=multipart_threshold,
            )
            async with manager as am:
                plan = await call(am, True)
                progress.update(task, total=plan.size)
                verb = "Would publish" if dry_run else "Publish"
                where = am.store.url if am.store else ""
                err_console.print(
                    f"{verb} {escape(str(local_path))} as [bold]{escape(str(plan.spec))}[/] "
                    f"({plan.objects} object(s), {format_size(plan.size)}) to {escape(where)}",
                    highlight=False,
                )
                if dry_run:
                    return plan
                if not yes and not typer.confirm("Proceed?", err=True):
                    raise typer.Abort()
                return await call(am, False)

    result = run(go)
    if not result.dry_run:
        typer.echo(f"published {result.spec}")


def assets_new(
    local_path: Annotated[Path, typer.Argument(help="File or directory to publish.")],
    name: Annotated[str, typer.Argument(help="Asset name, e.g. models/classifier.")],
    storage: StorageOption = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    allow_unsafe_publish: AllowUnsafePublishOption = False,
    multipart_threshold: MultipartThresholdOption = None,
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
        allow_unsafe_publish,
        multipart_threshold,
    )


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
    allow_unsafe_publish: AllowUnsafePublishOption = False,
    multipart_threshold: MultipartThresholdOption = None,
) -> None:
    """Publish PATH as the next version of the existing asset NAME."""
    if bump_major and major is not None:
        with user_errors():  # refused before the store is even opened
            raise ConfigError(
                f"--bump-major and --major {major} contradict each other: start a new major "
                "version, or publish the next minor of one major, not both",
                asset=name,
            )
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
        allow_unsafe_publish,
        multipart_threshold,
    )


def assets_list(storage: StorageOption = None) -> None:
    """List every asset in the store with its versions.

    An asset whose index cannot be read (malformed, or of another versioning system) is
    named in one error line each, after the others are listed; the status is then 1.
    """

    async def go() -> list[tuple[str, list[str] | ModelkitError]]:
        async with _manager(storage) as am:
            names = await am.list_assets()
            rows: list[tuple[str, list[str] | ModelkitError]] = [(n, []) for n in names]

            async def versions(index: int, name: str) -> None:
                try:
                    rows[index] = (name, await am.versions(name))
                except ModelkitError as exc:  # this asset only: list the others
                    rows[index] = (name, exc)

            async with anyio.create_task_group() as tg:
                for index, name in enumerate(names):
                    tg.start_soon(versions, index, name)
            return rows

    rows = run(go)
    table = Table("asset", "versions (newest first)")
    for name, result in rows:
        table.add_row(
            name, "(unreadable)" if isinstance(result, ModelkitError) else ", ".join(result)
        )
    console.print(table)
    failed = [(name, error) for name, error in rows if isinstance(error, ModelkitError)]
    for name, error in failed:
        print_error(f"cannot list the versions of {name}: {error}")
    if failed:
        raise typer.Exit(1)


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
    for row in run(go):
        table.add_row(*row)
    console.print(table)


def assets_fetch(
    specs: Annotated[list[str], typer.Argument(help="Asset specs, e.g. models/clf:1.2[sub/file].")],
    force: ForceOption = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use only the cache; never touch the network.")
    ] = False,
    lock_file: Annotated[
        Path | None,
        typer.Option("--lock-file", help="Honour this lock file of versions (it must exist)."),
    ] = None,
    allow_unlocked: Annotated[
        bool,
        typer.Option(
            "--allow-unlocked",
            help="With a lock file, resolve specs it does not cover, with a warning.",
        ),
    ] = False,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Fetch assets concurrently into the local cache and print where they are.

    Prints one tab-separated line per spec (spec, path, status) on stdout, progress bars
    and a summary on stderr.
    """
    with user_errors():
        settings = load_settings(storage=storage, assets_dir=assets_dir, lock_file=lock_file)
        if allow_unlocked:
            settings = settings.model_copy(update={"allow_unlocked": True})
    # A flag left out defers to the settings (AIOMODELKIT_FORCE_DOWNLOAD, AIOMODELKIT_OFFLINE).
    fetch_and_report(
        settings,
        specs,
        force=force or settings.force_download,
        offline=offline or None,
        summary=_fetch_summary,
    )


def _fetch_summary(report: FetchReport) -> str:
    rate = format_size(report.size / max(report.elapsed, 1e-9))
    return (
        f"{len(report.fetched)} asset(s), {report.hits} from cache: {report.objects} object(s), "
        f"{format_size(report.size)} in {report.elapsed:.2f} s ({rate}/s)"
    )


def assets_lock(
    specs: Annotated[list[str], typer.Argument(help="Asset specs to resolve, e.g. models/clf:1.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Lock file to write.")] = Path(
        "aiomodelkit.lock"
    ),
    storage: StorageOption = None,
) -> None:
    """Resolve specs to exact versions now and write them (with checksums) to a lock file."""

    async def go() -> int:
        # Writing a lock file reads none: AIOMODELKIT_LOCK_FILE may name the one being made.
        settings = load_settings(storage=storage, require_store=True)
        settings = settings.model_copy(update={"lock_file": None})
        async with AssetsManager(settings=settings) as am:
            lock = await am.lock(specs, output)
            return len(lock.assets)

    count = run(go)
    typer.echo(f"locked {count} spec(s) in {output}")
