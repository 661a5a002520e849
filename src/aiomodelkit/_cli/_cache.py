"""The ``aiomodelkit cache`` commands: ls, verify, prune.

They work on the cache directory alone (``--assets-dir``, else the settings); only
``verify --repair`` reads the store. The functions of :mod:`aiomodelkit.cache` block, so each
runs in a worker thread that a signal abandons (every removal is a rename first, so an
interrupted prune leaves nothing half-removed). The docstring of each command is its
``--help`` text.
"""

from __future__ import annotations

import enum
import json
from datetime import timedelta  # noqa: TC003 - typer reads the annotations at run time
from functools import partial
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer

from aiomodelkit._cache_prune import prune
from aiomodelkit._cache_scan import cache_root, is_read_only, scan
from aiomodelkit._cache_verify import verify
from aiomodelkit._errors import CacheError
from aiomodelkit._manager import AssetsManager
from aiomodelkit._values import format_size

from ._options import AssetsDirOption, StorageOption, load_settings, parse_duration, parse_size
from ._output import err_console, print_error, run, user_errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiomodelkit._cache_scan import CachedVersion, CacheScan

__all__ = ["cache_ls", "cache_prune", "cache_verify"]

T = TypeVar("T")


class SortBy(enum.StrEnum):
    """The orders of ``cache ls``."""

    name = "name"
    size = "size"
    last_used = "last-used"


def _in_thread(func: Callable[[], T]) -> T:
    """``func()`` in a worker thread under :func:`run` (user errors as one line each; a
    signal stops the command at once)."""

    async def go() -> T:
        return await anyio.to_thread.run_sync(func, abandon_on_cancel=True)

    return run(go)


def _table(rows: list[list[str]], right: frozenset[int]) -> list[str]:
    """Rows as columns two spaces apart, the ``right`` ones aligned right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _when(version: CachedVersion) -> str:
    return version.last_used.strftime("%Y-%m-%d %H:%M")


def _totals(listing: CacheScan) -> str:
    assets = len({v.name for v in listing.versions})
    text = (
        f"total: {len(listing.versions)} version(s) of {assets} asset(s), "
        f"{format_size(listing.total_size)} in {listing.total_objects} object(s)"
    )
    incomplete = sum(not v.complete for v in listing.versions)
    if incomplete:
        text += f"; {incomplete} incomplete"
    live = [left for left in listing.leftovers if not left.stale]
    if live:
        text += f"; {len(live)} download(s) in progress"
    if stale := [left for left in listing.leftovers if left.stale]:
        size = format_size(sum(left.size for left in stale))
        text += f"; {len(stale)} stale leftover(s), {size} (prune removes them)"
    return text + ("; read-only" if listing.read_only else "")


def _as_json(listing: CacheScan) -> dict[str, Any]:
    return {
        "assets_dir": str(listing.root),
        "read_only": listing.read_only,
        "versions": [
            {
                "name": v.name,
                "version": v.version,
                "path": str(v.path),
                "size": v.size,
                "objects": v.objects,
                "last_used": v.last_used.isoformat(timespec="seconds"),
                "complete": v.complete,
                "in_use": v.in_use,
                "written_by": v.written_by,
                "is_directory": v.is_directory,
            }
            for v in listing.versions
        ],
        "leftovers": [
            {
                "path": str(left.path),
                "name": left.name,
                "version": left.version,
                "size": left.size,
                "stale": left.stale,
            }
            for left in listing.leftovers
        ],
        "total": {
            "versions": len(listing.versions),
            "size": listing.total_size,
            "objects": listing.total_objects,
        },
    }


def cache_ls(
    assets_dir: AssetsDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
    sort: Annotated[
        SortBy,
        typer.Option(
            "--sort",
            help="By asset (newest version first), size (largest first) or last use "
            "(least recent first: what prune --max-size removes first).",
        ),
    ] = SortBy.name,
) -> None:
    """List every asset version in the cache, with totals.

    For each: its size and objects, when a manager last used it (UTC), whether it is
    complete (else: an interrupted download), whether an open manager of a live process
    uses it, and who wrote it (modelkit keeps no checksums in the cache). Works on a
    read-only cache.
    """
    with user_errors():
        directory = load_settings(assets_dir=assets_dir).assets_dir
    listing = _in_thread(partial(scan, directory))
    if as_json:
        typer.echo(json.dumps(_as_json(listing), indent=2))
        return
    versions = list(listing.versions)
    if sort is SortBy.size:
        versions.sort(key=lambda v: -v.size)
    elif sort is SortBy.last_used:
        versions.sort(key=lambda v: v.last_used)
    header = ["ASSET", "VERSION", "SIZE", "OBJECTS", "LAST USED", "COMPLETE", "IN USE", "WRITER"]
    rows = [header] + [
        [
            v.name,
            v.version,
            format_size(v.size),
            str(v.objects),
            _when(v),
            "yes" if v.complete else "no",
            "yes" if v.in_use else "no",
            v.written_by,
        ]
        for v in versions
    ]
    for line in _table(rows, frozenset({2, 3})) if versions else []:
        typer.echo(line)
    typer.echo(_totals(listing))


def cache_verify(
    specs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Versions to check: name, name:1 or name:1.2. Default: all.", show_default=False
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Download corrupt and incomplete versions again from the store."
        ),
    ] = False,
    assets_dir: AssetsDirOption = None,
    storage: StorageOption = None,
) -> None:
    """Re-hash cached versions against the checksums of their stored meta.

    Prints one tab-separated line per version on stdout (spec, status, first problem):
    ok, unchecked (nothing to check against: written by modelkit), corrupt (a file missing,
    extra, or of another size or hash) or incomplete (an interrupted download). Each
    corrupt or incomplete version is also named on an error line, and the status is 1.
    With --repair they are downloaded again (verified, then swapped in atomically); the
    status is then 0 once all are repaired.
    """
    with user_errors():
        settings = load_settings(storage=storage, assets_dir=assets_dir, require_store=repair)
    checks = _in_thread(
        partial(verify, settings.assets_dir, specs or (), versioning=settings.versioning)
    )
    for check in checks:
        detail = check.problems[0] if check.problems else ""
        typer.echo(f"{check.version.spec}\t{check.status}\t{detail}".rstrip("\t"))
    failed = [check for check in checks if check.failed]
    if not failed:
        return
    if not repair:
        for check in failed:
            print_error(check.describe())
        raise typer.Exit(1)

    async def download_again() -> None:
        await anyio.to_thread.run_sync(_writable, settings.assets_dir)
        async with AssetsManager(settings=settings) as am:
            await am.fetch_many([check.version.spec for check in failed], force=True)

    run(download_again)
    for check in failed:
        typer.echo(f"{check.version.spec}\trepaired")


def _writable(directory: Path) -> None:
    root = cache_root(directory)
    if is_read_only(root):
        raise CacheError(f"the assets cache {str(root)!r} is read-only: nothing can be repaired")


def cache_prune(
    older_than: Annotated[
        timedelta | None,
        typer.Option(
            "--older-than",
            parser=parse_duration,
            metavar="AGE",
            help="Remove versions not used for AGE (30d, 12h, 90m).",
            show_default=False,
        ),
    ] = None,
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size",
            parser=parse_size,
            metavar="SIZE",
            help="Remove the least recently used versions until the cache holds at most SIZE "
            "(e.g. 10GiB).",
            show_default=False,
        ),
    ] = None,
    keep_latest: Annotated[
        int | None,
        typer.Option(
            "--keep-latest",
            min=1,
            metavar="N",
            help="Keep the N newest versions of each asset; remove the others (those the "
            "other rules choose, if given).",
            show_default=False,
        ),
    ] = None,
    keep_lock_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--keep-lock-file",
            metavar="FILE",
            help="Never remove the versions this lock file pins; repeat for several.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
    assets_dir: AssetsDirOption = None,
) -> None:
    """Remove cached versions by age, total size or rank, and leftovers of dead processes.

    A version goes when it passes every filter given (--older-than, --keep-latest); with
    --max-size, only the least recently used of those, until the cache fits. Never removed:
    versions a --keep-lock-file pins, versions an open manager or library of a live process
    uses, versions being downloaded. Without any rule, only garbage goes: staging copies of
    dead processes and interrupted downloads. Each version is renamed away, then deleted.
    Prints one tab-separated line per version removed (or that would be) and per version
    kept despite the rules, with why; a summary on stderr. Refuses a read-only cache.
    """
    with user_errors():
        directory = load_settings(assets_dir=assets_dir).assets_dir
    report = _in_thread(
        partial(
            prune,
            directory,
            older_than=older_than,
            max_size=max_size,
            keep_latest=keep_latest,
            keep_lock_files=keep_lock_file or (),
            dry_run=dry_run,
        )
    )
    verb = "would remove" if dry_run else "removed"
    for version in report.removed:
        typer.echo(f"{verb}\t{version.spec}\t{format_size(version.size)}")
    for leftover in report.leftovers:
        typer.echo(f"{verb}\t{leftover.path}\t{format_size(leftover.size)}")
    for kept in report.kept:
        typer.echo(f"kept\t{kept.version.spec}\t{kept.reason}")
    holds = "would hold" if dry_run else "holds"
    err_console.print(
        f"{verb} {len(report.removed)} version(s) and {len(report.leftovers)} leftover(s), "
        f"{format_size(report.freed)}; the cache {holds} {format_size(report.size_after)}",
        highlight=False,
    )
    if max_size is not None and report.size_after > max_size:
        err_console.print(
            f"[yellow]warning:[/] still over --max-size {format_size(max_size)}: the rest is "
            "in use, pinned or being downloaded",
            highlight=False,
        )
