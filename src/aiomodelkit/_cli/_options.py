"""The options several commands share, and the one place the CLI builds its settings.

Each command calls :func:`load_settings` once, with its options, and hands the result
down as ``settings=`` to :class:`AssetsManager` or :class:`ModelLibrary`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from aiomodelkit._errors import ConfigError
from aiomodelkit._settings import Settings

__all__ = [
    "AssetsDirOption",
    "DryRunOption",
    "ForceOption",
    "ModuleArgument",
    "RequiredOption",
    "StorageOption",
    "YesOption",
    "load_settings",
    "parse_duration",
]

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
ForceOption = Annotated[bool, typer.Option("--force", help="Download even if cached.")]
_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str) -> int:
    """A size in bytes, with an optional binary unit: ``5368709120``, ``256MiB``, ``5 GiB``.

    Raises:
        typer.BadParameter: not a size.
    """
    number = text.strip().rstrip("BbIiKkMmGg ")
    unit = text.strip()[len(number) :].strip().lower()
    if not number.isdigit() or unit not in _UNITS:
        raise typer.BadParameter(f"{text!r} is not a size (bytes, or a number with KiB/MiB/GiB)")
    return int(number) * _UNITS[unit]


_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """A duration: a number and a unit (s, m, h, d, w), e.g. ``30d``, ``12h``, ``1.5h``.

    Raises:
        typer.BadParameter: not a duration.

    Example:
        >>> parse_duration("30d"), parse_duration("1.5h")
        (datetime.timedelta(days=30), datetime.timedelta(seconds=5400))
    """
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise typer.BadParameter(f"{text!r} is not a duration (a number and s, m, h, d or w: 30d)")
    return timedelta(seconds=float(found["number"]) * _SECONDS[found["unit"]])


MultipartThresholdOption = Annotated[
    int | None,
    typer.Option(
        "--multipart-threshold",
        parser=parse_size,
        metavar="SIZE",
        help="S3 uploads larger than this go in parts (e.g. 256MiB; up to 5GiB). Raise it for "
        "servers without multipart uploads. Default: AIOMODELKIT_MULTIPART_THRESHOLD (64MiB).",
    ),
]
AllowUnsafePublishOption = Annotated[
    bool,
    typer.Option(
        "--allow-unsafe-publish",
        help="Publish even to a store that ignores conditional writes, under a best-effort "
        "lease and a read-back check. Default: AIOMODELKIT_ALLOW_UNSAFE_PUBLISH.",
    ),
]
WatchIntervalOption = Annotated[
    float | None,
    typer.Option(
        "--watch-interval",
        metavar="SECONDS",
        help="Check for newer versions of partial specs every SECONDS while serving, and swap "
        "them in (POST /admin/reload checks at once). Default: AIOMODELKIT_WATCH_INTERVAL (off).",
        show_default=False,
    ),
]
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


def load_settings(
    *,
    storage: str | None = None,
    assets_dir: Path | None = None,
    lock_file: Path | None = None,
    multipart_threshold: int | None = None,
    watch_interval: float | None = None,
    require_store: bool = False,
) -> Settings:
    """The settings of one command: its options (when given) over the environment.

    Args:
        storage: the ``--storage`` option.
        assets_dir: the ``--assets-dir`` option.
        lock_file: the ``--lock-file`` option.
        multipart_threshold: the ``--multipart-threshold`` option.
        watch_interval: the ``--watch-interval`` option.
        require_store: refuse settings without a store (the command needs one).

    Raises:
        ConfigError: a setting is invalid, or ``require_store`` and no store is configured.
    """
    settings = Settings.load(
        storage=storage,
        assets_dir=assets_dir,
        lock_file=lock_file,
        multipart_threshold=multipart_threshold,
        watch_interval=watch_interval,
    )
    if require_store and settings.storage is None:
        raise ConfigError("no store configured: pass --storage URL or set AIOMODELKIT_STORAGE")
    return settings
