"""What a cache holds: every version with its size, objects, last use, state and writer.

A walk of the cache root (never following symbolic links) that understands both writers:

* below the root, a folder is a piece of an asset name until an entry looks like a
  version: a complete version of either versioning system (``1.2``,
  ``2024-05-02T10-11-12Z``), or any entry with modelkit's ``.SUCCESS`` marker;
* a version is **complete** when it has that marker (``<name>/.<version>.SUCCESS`` for a
  file, ``<name>/<version>/.SUCCESS`` inside a directory); a version-like folder without one
  is an interrupted download (modelkit writes in place), unless versions sit inside it, which
  makes it part of a name;
* it was **written by aiomodelkit** when the cache kept a copy of its meta
  (``.meta/<name>/<version>.meta``): modelkit keeps none;
* ``<version>.incomplete-*`` and ``<version>.replaced-*`` are leftovers: a download in
  progress, or a copy being removed; **stale** when their owner no longer runs.

Entries whose name starts with a dot (markers, ``.locks``, ``.meta``, modelkit's ``.cache``)
are never versions: no asset name starts with one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ._cache_os import is_stale, registered_versions, used_stamp
from ._errors import ConfigError, InvalidAssetSpecError
from ._spec import validate_asset_name
from ._versioning import MAJOR_MINOR, SIMPLE_DATE

__all__ = ["CacheScan", "CachedVersion", "Leftover", "cache_root", "is_read_only", "scan"]

Writer = Literal["aiomodelkit", "modelkit"]
#: Sizes and object counts of versions, by (path, inode, mtime): versions never change, so
#: a repeated scan (the size limit after each publication) measures each version once.
SizeMemo = dict[tuple[str, int, int], tuple[int, int]]

_MARKER = ".SUCCESS"
_LEFTOVER = re.compile(r"(?P<version>.+?)\.(?:incomplete|replaced)-(?P<owner>.+)")
#: Folders deeper than this are not walked (a name has a handful of pieces).
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class CachedVersion:
    """One asset version in the cache.

    Attributes:
        name: the asset name.
        version: the version.
        path: where it is (a file, or a directory).
        size: the bytes of its files.
        objects: how many files it holds (markers not counted).
        last_used: when a manager last served or published it (UTC); for versions never
            served since aiomodelkit recorded use, when it was written.
        complete: it has its completion marker (else: an interrupted download).
        written_by: ``"aiomodelkit"`` (it kept the version's meta) or ``"modelkit"``.
        in_use: an open manager in a live process has registered it.
        is_directory: a directory asset (else a file asset).
    """

    name: str
    version: str
    path: Path
    size: int
    objects: int
    last_used: datetime
    complete: bool
    written_by: Writer
    in_use: bool
    is_directory: bool

    @property
    def spec(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class Leftover:
    """A staging copy (a download in progress) or a copy being removed.

    Attributes:
        path: where it is.
        name: the asset name.
        version: the version it belongs to.
        size: its bytes.
        stale: its owner no longer runs (or is a day old on another host): prune removes it.
    """

    path: Path
    name: str
    version: str
    size: int
    stale: bool


@dataclass(frozen=True, slots=True)
class CacheScan:
    """Everything one cache holds.

    Attributes:
        root: the cache directory.
        versions: every version, by name, newest version first.
        leftovers: staging and replaced copies.
        read_only: the cache cannot be written (a read-only volume): nothing can be pruned.
    """

    root: Path
    versions: tuple[CachedVersion, ...]
    leftovers: tuple[Leftover, ...]
    read_only: bool

    @property
    def total_size(self) -> int:
        """The bytes of every version."""
        return sum(v.size for v in self.versions)

    @property
    def total_objects(self) -> int:
        """The files of every version."""
        return sum(v.objects for v in self.versions)

    @property
    def leftover_size(self) -> int:
        """The bytes of every leftover."""
        return sum(left.size for left in self.leftovers)


def cache_root(assets_dir: str | os.PathLike[str]) -> Path:
    """The absolute cache directory, which must exist.

    Raises:
        ConfigError: it does not exist, or is not a directory.
    """
    root = Path(assets_dir).absolute()
    if not root.exists():
        raise ConfigError(f"no assets cache at {str(root)!r}: the directory does not exist")
    if not root.is_dir():
        raise ConfigError(f"the assets directory {str(root)!r} is a file, not a directory")
    return root


def is_read_only(root: Path) -> bool:
    """Whether the cache cannot be written (a read-only mount, or no write permission)."""
    statvfs = getattr(os, "statvfs", None)  # POSIX only
    if statvfs is not None:
        try:
            if statvfs(root).f_flag & os.ST_RDONLY:
                return True
        except OSError:
            pass
    return not os.access(root, os.W_OK)


def version_key(version: str) -> tuple[int, Any]:
    """Orders versions of one asset, newest greatest, whichever system wrote them."""
    for rank, system in enumerate((MAJOR_MINOR, SIMPLE_DATE)):
        try:
            system.validate(version)
        except ValueError:
            continue
        return rank, system.sort_key(version)
    return 2, version


def _is_version(entry: str) -> bool:
    for system in (MAJOR_MINOR, SIMPLE_DATE):
        try:
            system.validate(entry)
        except ValueError:
            continue
        return system.is_complete(entry)
    return False


def scan(assets_dir: str | os.PathLike[str]) -> CacheScan:
    """List every version and leftover in a cache, with sizes and states (blocking).

    Args:
        assets_dir: the cache directory (``AIOMODELKIT_ASSETS_DIR``).

    Raises:
        ConfigError: the directory does not exist.
    """
    return scan_root(cache_root(assets_dir))


def scan_root(root: Path, memo: SizeMemo | None = None) -> CacheScan:
    """:func:`scan` of an existing root, measuring through ``memo`` if given."""
    walker = _Walker(root, memo)
    walker.walk(root, (), 0)
    in_use = registered_versions(root)
    versions = [walker.version(found, in_use) for found in walker.found]
    by_name: dict[str, list[CachedVersion]] = {}
    for version in versions:
        by_name.setdefault(version.name, []).append(version)
    ordered = [
        version
        for name in sorted(by_name)
        for version in sorted(by_name[name], key=lambda v: version_key(v.version), reverse=True)
    ]
    leftovers = sorted(walker.leftovers, key=lambda left: str(left.path))
    return CacheScan(root, tuple(ordered), tuple(leftovers), is_read_only(root))


@dataclass(frozen=True, slots=True)
class _Found:
    name: str
    version: str
    path: Path
    is_directory: bool
    complete: bool


class _Walker:
    def __init__(self, root: Path, memo: SizeMemo | None) -> None:
        self.root = root
        self.memo = memo
        self.found: list[_Found] = []
        self.leftovers: list[Leftover] = []

    def walk(self, directory: Path, parts: tuple[str, ...], depth: int) -> bool:
        """Record what ``directory`` holds; whether it holds any version or leftover."""
        try:
            with os.scandir(directory) as scanned:
                entries = sorted(scanned, key=lambda entry: entry.name)
        except OSError:
            return False
        markers = {e.name[1 : -len(_MARKER)] for e in entries if e.name.endswith(_MARKER)}
        held = False
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_dir = entry.is_dir(follow_symlinks=False)
            if parts and (leftover := _LEFTOVER.fullmatch(entry.name)):
                name, version = "/".join(parts), leftover["version"]
                stale = is_stale(leftover["owner"], path)
                size = measure_tree(path, is_dir)[0]
                self.leftovers.append(Leftover(path, name, version, size, stale))
                held = True
            elif parts and is_dir and (path / _MARKER).is_file():
                held = self._add(parts, entry.name, path, True, True)
            elif parts and not is_dir and (entry.name in markers or _is_version(entry.name)):
                if entry.is_file(follow_symlinks=False):
                    held = self._add(parts, entry.name, path, False, entry.name in markers)
            elif is_dir and depth < _MAX_DEPTH:
                inner = self.walk(path, (*parts, entry.name), depth + 1)
                # A version-like folder holding no version: an interrupted download.
                if not inner and parts and _is_version(entry.name):
                    inner = self._add(parts, entry.name, path, True, False)
                held = held or inner
        return held

    def _add(
        self, parts: tuple[str, ...], version: str, path: Path, is_dir: bool, complete: bool
    ) -> bool:
        name = "/".join(parts)
        try:
            validate_asset_name(name)
        except InvalidAssetSpecError:
            return False  # not something a spec could name
        self.found.append(_Found(name, version, path, is_dir, complete))
        return True

    def version(self, found: _Found, in_use: set[tuple[str, str]]) -> CachedVersion:
        size, objects = self._measure(found.path, found.is_directory)
        try:
            used = used_stamp(self.root, found.name, found.version).stat().st_mtime
        except OSError:
            try:
                used = found.path.lstat().st_mtime
            except OSError:
                used = 0.0
        meta = self.root / ".meta" / found.name / f"{found.version}.meta"
        return CachedVersion(
            name=found.name,
            version=found.version,
            path=found.path,
            size=size,
            objects=objects,
            last_used=datetime.fromtimestamp(used, UTC),
            complete=found.complete,
            written_by="aiomodelkit" if meta.is_file() else "modelkit",
            in_use=(found.name, found.version) in in_use,
            is_directory=found.is_directory,
        )

    def _measure(self, path: Path, is_dir: bool) -> tuple[int, int]:
        if self.memo is None:
            return measure_tree(path, is_dir)
        try:
            info = path.lstat()
        except OSError:
            return 0, 0
        key = (str(path), info.st_ino, info.st_mtime_ns)
        if key not in self.memo:
            self.memo[key] = measure_tree(path, is_dir)
        return self.memo[key]


def measure_tree(path: Path, is_dir: bool = True) -> tuple[int, int]:
    """The bytes and the number of regular files under ``path`` (blocking; its completion
    marker left out, symbolic links not followed, files removed meanwhile skipped)."""
    if not is_dir:
        try:
            return path.lstat().st_size, 1
        except OSError:
            return 0, 0
    size = objects = 0
    stack = [str(path)]
    top = True
    while stack:
        try:
            scanned = os.scandir(stack.pop())
        except OSError:
            continue
        with scanned:
            for entry in scanned:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        if top and entry.name == _MARKER:
                            continue
                        size += entry.stat(follow_symlinks=False).st_size
                        objects += 1
                except OSError:
                    continue
        top = False
    return size, objects
