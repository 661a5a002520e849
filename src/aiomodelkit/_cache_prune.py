"""Pruning a cache: which versions go, and removing each without harming anyone using it.

Rules, combined (a version goes when it passes every filter given):

* ``older_than``: not used for that long (see ``last_used`` in :mod:`._cache_scan`);
* ``keep_latest=N``: not one of the N newest versions of its asset;
* ``max_size``: of the versions that pass the filters, the least recently used go first,
  only as many as it takes to bring the cache down to that many bytes.

With no rule at all, only garbage goes: leftovers of dead processes and interrupted
downloads. Never removed, whatever the rules: a version a lock file pins, a version an open
manager of a live process has registered as in use, a version being downloaded (its
download lock, or modelkit's lock of its name, is held). Each removal is atomic: the version
is renamed away (``<version>.replaced-<owner>``) under the exclusive side of the in-use
guard (see :mod:`._cache_os`), then deleted; a reader never sees a half-deleted version.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ._cache_os import exclusive, lock_held, open_guard, owner, registered_versions, used_stamp
from ._cache_scan import cache_root, is_read_only, scan_root, version_key
from ._errors import CacheError, ConfigError
from ._lockfile import LockFile
from ._values import format_size

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from ._cache import AssetCache
    from ._cache_scan import CachedVersion, CacheScan, Leftover, SizeMemo

__all__ = ["KeptVersion", "PruneReport", "prune", "size_limit"]

logger = logging.getLogger("aiomodelkit")

_MARKER = ".SUCCESS"
_REPLACED = ".replaced-"


@dataclass(frozen=True, slots=True)
class KeptVersion:
    """A version the rules chose that was kept.

    Attributes:
        version: the version.
        reason: ``"pinned by a lock file"``, ``"in use"``, ``"being downloaded"``, or why it
            could not be moved.
    """

    version: CachedVersion
    reason: str


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune removed (or, in a dry run, would remove).

    Attributes:
        removed: the versions removed.
        kept: versions the rules chose but that had to stay.
        leftovers: stale staging and replaced copies removed.
        size_before: the bytes of versions and leftovers before.
        size_after: the bytes after.
        dry_run: nothing was removed.
    """

    removed: tuple[CachedVersion, ...]
    kept: tuple[KeptVersion, ...]
    leftovers: tuple[Leftover, ...]
    size_before: int
    size_after: int
    dry_run: bool

    @property
    def freed(self) -> int:
        """The bytes removed."""
        return self.size_before - self.size_after


def prune(
    assets_dir: str | os.PathLike[str],
    *,
    older_than: timedelta | None = None,
    max_size: int | None = None,
    keep_latest: int | None = None,
    keep_lock_files: Iterable[str | os.PathLike[str]] = (),
    dry_run: bool = False,
) -> PruneReport:
    """Remove versions by age, total size and rank (blocking); see the module docstring.

    Args:
        assets_dir: the cache directory.
        older_than: remove versions not used for this long.
        max_size: remove least recently used versions until the cache holds this many
            bytes at most.
        keep_latest: keep the N newest versions of each asset.
        keep_lock_files: never remove the versions these lock files pin.
        dry_run: decide, remove nothing.

    Raises:
        ConfigError: the directory does not exist, a rule is negative, or a lock file is
            missing or malformed.
        CacheError: the cache is read-only.
    """
    root = cache_root(assets_dir)
    if older_than is not None and older_than < timedelta(0):
        raise ConfigError("older_than must not be negative")
    if max_size is not None and max_size < 0:
        raise ConfigError("max_size must not be negative")
    if keep_latest is not None and keep_latest < 1:
        raise ConfigError("keep_latest must be at least 1")
    pins = {
        (entry.name, entry.version)
        for path in keep_lock_files
        for entry in LockFile.load(Path(path)).assets.values()
    }
    rules = _Rules(older_than, max_size, keep_latest, frozenset(pins))
    return _prune(root, rules, dry_run=dry_run)


@dataclass(frozen=True, slots=True)
class _Rules:
    older_than: timedelta | None = None
    max_size: int | None = None
    keep_latest: int | None = None
    pins: frozenset[tuple[str, str]] = frozenset()


_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _refuse(root: Path, exc: OSError | None = None) -> CacheError:
    """The one line a prune of a cache it cannot write to ends with."""
    if exc is None or exc.errno in _READ_ONLY:
        return CacheError(f"the assets cache {str(root)!r} is read-only: prune removes nothing")
    reason = exc.strerror or type(exc).__name__
    return CacheError(f"cannot prune the assets cache {str(root)!r}: {reason}")


def _prune(
    root: Path, rules: _Rules, *, dry_run: bool, memo: SizeMemo | None = None
) -> PruneReport:
    if is_read_only(root):
        raise _refuse(root)
    guard = None
    if not dry_run:
        try:  # the first write: where it fails, nothing was touched, nothing walked
            guard = open_guard(root)
        except OSError as exc:
            raise _refuse(root, exc) from None
    moved: list[Path] = []
    try:
        # The walk (sizes) happens outside the guard; what matters (is a version in use?)
        # is decided again under it, right before each rename.
        listing = scan_root(root, memo)
        garbage = [left for left in listing.leftovers if left.stale]
        broken = [v for v in listing.versions if not v.complete]
        candidates = _candidates(listing, rules)
        if guard is None:
            in_use = registered_versions(root)
            return _decide(root, rules, listing, garbage, broken, candidates, in_use, None)
        with exclusive(guard):
            in_use = registered_versions(root, remove_dead=True)
            report = _decide(root, rules, listing, garbage, broken, candidates, in_use, moved)
    finally:
        if guard is not None:
            os.close(guard)
        for path in moved:
            _delete(path)
    for leftover in garbage:
        _delete(leftover.path)
    return report


def _candidates(listing: CacheScan, rules: _Rules) -> list[CachedVersion]:
    """The complete versions the rules choose, least recently used first."""
    if rules.older_than is None and rules.max_size is None and rules.keep_latest is None:
        return []
    cutoff = datetime.now(UTC) - rules.older_than if rules.older_than is not None else None
    rank: dict[str, int] = {}
    chosen = []
    for version in listing.versions:  # newest first within each asset
        if not version.complete:
            continue
        position = rank[version.name] = rank.get(version.name, -1) + 1
        if cutoff is not None and version.last_used > cutoff:
            continue
        if rules.keep_latest is not None and position < rules.keep_latest:
            continue
        chosen.append(version)
    return sorted(chosen, key=lambda v: (v.last_used, v.name, version_key(v.version)))


def _decide(
    root: Path,
    rules: _Rules,
    listing: CacheScan,
    garbage: list[Leftover],
    broken: list[CachedVersion],
    candidates: list[CachedVersion],
    in_use: set[tuple[str, str]],
    moved: list[Path] | None,
) -> PruneReport:
    """Choose and (unless ``moved`` is None: a dry run) rename away, in order: garbage
    first, then the candidates until the size rule is met."""
    before = listing.total_size + listing.leftover_size
    size = before - sum(left.size for left in garbage)
    removed: list[CachedVersion] = []
    kept: list[KeptVersion] = []
    for version in [*broken, *candidates]:
        if version.complete and rules.max_size is not None and size <= rules.max_size:
            break
        reason = _protected(root, version, in_use, rules.pins)
        if reason is None and moved is not None:
            try:
                moved.append(_move_away(root, version))
            except FileNotFoundError:
                continue  # removed meanwhile (another prune)
            except OSError as exc:
                reason = f"cannot be moved: {exc.strerror or exc}"
        if reason is not None:
            if version.complete:
                kept.append(KeptVersion(version, reason))
            continue
        removed.append(version)
        size -= version.size
    return PruneReport(tuple(removed), tuple(kept), tuple(garbage), before, size, moved is None)


def _protected(
    root: Path,
    version: CachedVersion,
    in_use: Collection[tuple[str, str]],
    pins: Collection[tuple[str, str]],
) -> str | None:
    key = (version.name, version.version)
    if key in pins:
        return "pinned by a lock file"
    if key in in_use:
        return "in use"
    if lock_held(root / ".locks" / version.name / f"{version.version}.lock"):
        return "being downloaded"
    if lock_held(root / ".cache" / f"{version.name}.lock"):  # modelkit locks a whole name
        return "being downloaded by modelkit"
    return None


def _move_away(root: Path, version: CachedVersion) -> Path:
    """Rename a version out of its place (atomic), then drop its marker, meta and stamp."""
    path = version.path
    aside = path.with_name(f"{path.name}{_REPLACED}{owner()}-{uuid.uuid4().hex[:8]}")
    os.rename(path, aside)
    for leftover in (
        path.with_name(f".{path.name}{_MARKER}"),  # a file asset's marker, beside it
        root / ".meta" / version.name / f"{version.version}.meta",
        used_stamp(root, version.name, version.version),
    ):
        try:
            leftover.unlink(missing_ok=True)
        except OSError as exc:
            logger.debug("could not remove %s: %s", leftover, exc)
    return aside


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logger.debug("could not remove %s: %s", path, exc)


def size_limit(
    max_bytes: int | None, lock: LockFile | None = None
) -> Callable[[AssetCache], None] | None:
    """What a manager runs after each publication to keep its cache under ``max_bytes``
    (``cache_max_bytes``): least recently used versions not in use go first; versions
    ``lock`` pins stay. None if there is no limit.

    One prune at a time per manager, each measuring only the versions it has not seen.
    """
    if max_bytes is None:
        return None
    pins = frozenset((e.name, e.version) for e in lock.assets.values()) if lock else frozenset()
    rules = _Rules(max_size=max_bytes, pins=pins)
    memo: SizeMemo = {}
    one_at_a_time = threading.Lock()

    def enforce(cache: AssetCache) -> None:
        with one_at_a_time:
            started = time.perf_counter()
            report = _prune(cache.root, rules, dry_run=False, memo=memo)
        if report.removed:
            logger.info(
                "cache_max_bytes: removed %s (%s) in %.3f s",
                ", ".join(v.spec for v in report.removed),
                format_size(report.freed),
                time.perf_counter() - started,
            )
        if report.size_after > max_bytes:
            logger.info(
                "cache_max_bytes: the cache holds %s, over %s: the rest is in use, pinned "
                "or being downloaded",
                format_size(report.size_after),
                format_size(max_bytes),
            )

    return enforce
