"""The local cache of assets, laid out as modelkit lays it out so model code still finds files.

::

    ASSETS_DIR/
      CACHEDIR.TAG                                  tells backup tools this is a cache
      .locks/<name>/<version>.lock                  cross-process "one downloader" lock
      .locks/.in-use/<host>-<pid>-<8 hex>.use       versions an open manager uses (_cache_os)
      .locks/.in-use.lock                           orders registrations and removals
      .meta/<name>/<version>.meta                   copy of the store's meta, for audit logs
      .meta/<name>/.<version>.used                  its mtime: when the version was last used
      <name>/<version>                              a file asset
      <name>/.<version>.SUCCESS                     its modelkit completion marker
      <name>/<version>/...                          a directory asset
      <name>/<version>/.SUCCESS                     its modelkit completion marker
      <name>/<version>.incomplete-<pid>-<8 hex>     one download in progress (staging)
      <name>/<version>.replaced-<pid>-<8 hex>       an old copy being removed (force, prune)

Correctness comes from the atomic rename of a fully downloaded and verified staging copy
onto ``<name>/<version>``: no reader ever sees a partial asset, and if another process
published first, our copy is discarded. The lock only saves duplicate downloads; where
locking silently does nothing (some network filesystems), the result is the same, with
more work. Staging left by a dead process (its pid no longer runs on this host, or it is
older than a day) is removed before the next download of that version.

We also write modelkit's ``.SUCCESS`` markers (inside the staging directory before the
rename, or before renaming a file) so that modelkit can read our cache, and we require
them, as modelkit does, so that a cache partly written by modelkit (which downloads in
place) is never mistaken for complete.

A cache that tracks use (the one an open manager holds) also stamps each hit and
publication with the time and registers the version as in use, in the same worker-thread
hop (see :mod:`._cache_os`), so that ``prune`` never removes it.

Every method blocks: call them from a worker thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from typing import TYPE_CHECKING, TypeAlias

import filelock

from ._cache_os import UseRegistry
from ._cache_os import exchange as _exchange
from ._cache_os import is_stale as _is_stale
from ._cache_os import owner as _owner
from ._errors import InvalidStoreDataError, ModelkitError
from ._layout import parse_meta, tree_checksum

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from ._versioning import VersioningSystem

__all__ = ["AssetCache", "CachedCopy", "VersionClaim"]

logger = logging.getLogger("aiomodelkit")

CachedCopy: TypeAlias = "tuple[Path, str | None]"
"""A complete cached version: its path and the content checksum of its meta (if kept)."""

_MARKER = ".SUCCESS"
_STAGING = ".incomplete-"
_REPLACED = ".replaced-"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by aiomodelkit.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


class AssetCache:
    """Paths, staging and publication inside one assets directory.

    Args:
        assets_dir: the cache root.
        track_use: stamp hits and publications with the time and register their versions as
            in use by this process until :meth:`release_uses` (what an open manager does).
        after_publish: called (in the same worker thread) after each publication, e.g. to
            keep the cache under a size limit; its errors are logged, never raised.
    """

    def __init__(
        self,
        assets_dir: Path,
        *,
        track_use: bool = False,
        after_publish: Callable[[AssetCache], object] | None = None,
    ) -> None:
        self.root = assets_dir.absolute()
        self._real_root: Path | None = None  # resolved on first use (no I/O here)
        self._uses = UseRegistry(self.root) if track_use else None
        self._after_publish = after_publish

    def version_path(self, name: str, version: str) -> Path:
        """The final path of a version; refuses anything that would leave the cache."""
        path = self.root / name / version
        if self._real_root is None:
            self._real_root = self.root.resolve()
        if not path.resolve().is_relative_to(self._real_root):
            raise InvalidStoreDataError(
                "asset path resolves outside the assets directory", asset=name, key=str(path)
            )
        return path

    def lock_path(self, name: str, version: str) -> Path:
        """The lock file guarding downloads of one version (created on demand)."""
        path = self.root / ".locks" / name / f"{version}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_meta(self, name: str, version: str, raw: bytes) -> None:
        """Keep a copy of a published version's meta (checksums for audit records)."""
        path = self.root / ".meta" / name / f"{version}.meta"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}{_STAGING}{_owner()}-{uuid.uuid4().hex[:8]}")
        tmp.write_bytes(raw)
        os.replace(tmp, path)

    def lookup(self, name: str, version: str, sub_part: str | None) -> CachedCopy | None:
        """A complete cached version: its path (with the sub-part) and content checksum.

        None if the version, or the sub-part inside it, is not in the cache. One call does
        everything a warm start needs (in a cache that tracks use, stamping and registering
        the version too), so it costs one worker-thread hop.
        """
        path = self.version_path(name, version)
        if not self._complete_at(path):
            return None
        if self._uses is not None:
            # Stamped, registered as in use, then looked at again: a prune may have removed
            # it since the look above.
            def still_there() -> bool:
                return self._complete_at(path)

            if not self._uses.hold(name, version, still_there):
                return None
        if sub_part is not None:
            path = path.joinpath(*sub_part.split("/"))
            if not path.exists():
                return None
        checksum = None
        raw = self.read_meta(name, version)
        if raw is not None:
            try:
                checksum = tree_checksum(parse_meta(raw, name=name, version=version))
            except ModelkitError:
                pass  # only feeds audit records
        return path, checksum

    def read_meta(self, name: str, version: str) -> bytes | None:
        """The saved meta of a version, if any (caches filled by modelkit have none)."""
        try:
            return (self.root / ".meta" / name / f"{version}.meta").read_bytes()
        except OSError:
            return None

    def release_use(self, name: str, version: str) -> None:
        """Stop registering one version as in use by this process (blocking)."""
        if self._uses is not None:
            self._uses.release(name, version)

    def release_uses(self) -> None:
        """Stop registering this process's versions as in use (the manager closes)."""
        if self._uses is not None:
            self._uses.release_all()

    def _marker(self, path: Path, is_directory: bool) -> Path:
        return path / _MARKER if is_directory else path.with_name(f".{path.name}{_MARKER}")

    def is_complete(self, name: str, version: str) -> bool:
        """Whether a version is fully in the cache."""
        return self._complete_at(self.version_path(name, version))

    def _complete_at(self, path: Path) -> bool:
        if path.is_dir():
            return (path / _MARKER).is_file()
        return path.is_file() and self._marker(path, False).is_file()

    def local_versions(self, name: str, versioning: VersioningSystem) -> list[str]:
        """Complete cached versions of ``name``, newest first."""
        directory = self.root / name
        try:
            entries = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            try:
                versioning.validate(entry)
            except ValueError:
                continue
            if self.is_complete(name, entry):
                found.append(entry)
        return versioning.sort(found)

    def new_staging(
        self, name: str, version: str, is_directory: bool, relpaths: Iterable[str] = ()
    ) -> Path:
        """Create a process-unique staging location beside the final path.

        For a directory asset, every parent directory of ``relpaths`` is created at once,
        so that writing each file needs no ``mkdir``.
        """
        final = self.version_path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._tag()
        staging = final.with_name(f"{final.name}{_STAGING}{_owner()}-{uuid.uuid4().hex[:8]}")
        if is_directory:
            staging.mkdir()
            for parent in {os.path.dirname(relpath) for relpath in relpaths} - {""}:
                (staging / parent).mkdir(parents=True, exist_ok=True)
        return staging

    def remove_stale(self, name: str, version: str) -> list[Path]:
        """Remove staging and replaced copies of a version left by dead processes."""
        directory = self.root / name
        removed: list[Path] = []
        try:
            entries = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return removed
        for entry in entries:
            for marker in (_STAGING, _REPLACED):
                if entry.startswith(version + marker):
                    path = directory / entry
                    if _is_stale(entry[len(version) + len(marker) :], path):
                        self.discard(path)
                        removed.append(path)
        return removed

    def publish(
        self, name: str, version: str, staging: Path, is_directory: bool, *, replace: bool = False
    ) -> bool:
        """Move a verified staging copy into place.

        Returns False (and discards ours) if a complete copy is already there, unless
        ``replace``, which swaps the old copy out.
        """
        if self._uses is not None:
            self._uses.hold(name, version)  # before the rename: no prune takes it after
        published = self._place(name, version, staging, is_directory, replace)
        if published and self._after_publish is not None:
            try:
                self._after_publish(self)
            except (OSError, ModelkitError) as exc:  # housekeeping: never fail a download
                logger.warning("after publishing %s:%s: %s", name, version, exc)
        return published

    def _place(
        self, name: str, version: str, staging: Path, is_directory: bool, replace: bool
    ) -> bool:
        final = self.version_path(name, version)
        if self.is_complete(name, version) and not replace:
            self.discard(staging)
            return False
        if is_directory:
            (staging / _MARKER).touch()
            # Swap only when replacing on purpose: over a leftover, a plain rename fails if
            # another process published meanwhile, and then ours is discarded.
            if replace and final.exists() and _exchange(staging, final):
                # Swapped in one step: readers saw the old copy, then the new one.
                self.discard(staging)  # now holds the old copy
                return True
            # Rename first: it fails if anything sits at the final path. Only then look at
            # what does: a complete copy (another process published first) is never moved,
            # since its readers may be reading it; only an incomplete leftover (modelkit's
            # interrupted in-place download) is moved aside, and ours renamed once more.
            for attempt in range(2):
                try:
                    os.rename(staging, final)
                except OSError:
                    if not replace and self.is_complete(name, version):
                        self.discard(staging)  # another process published first
                        return False
                    if attempt:
                        raise
                    self._move_aside(final)  # a leftover, or the old copy force replaces
                else:
                    break
        else:
            # Marker first: a crash between the two leaves a marker without a file, which
            # reads as incomplete and is downloaded again.
            self._marker(final, False).touch()
            if final.is_dir():
                self._move_aside(final)
            os.replace(staging, final)  # atomic, even over an existing file
        return True

    def _move_aside(self, final: Path) -> None:
        # Whatever sits at the final path (an old copy replaced by force, or modelkit's
        # interrupted in-place download) is renamed away first, then removed.
        if not final.exists():
            return
        aside = final.with_name(f"{final.name}{_REPLACED}{_owner()}-{uuid.uuid4().hex[:8]}")
        os.rename(final, aside)
        self.discard(aside)

    def discard(self, path: Path) -> None:
        """Remove a staging copy, file or directory."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def _tag(self) -> None:
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            tmp = tag.with_name(f"CACHEDIR.TAG{_STAGING}{_owner()}-{uuid.uuid4().hex[:8]}")
            tmp.write_text(_CACHEDIR_TAG)
            os.replace(tmp, tag)


class VersionClaim:
    """One fetch's attempt to become the process that downloads a version.

    Each :meth:`attempt` is one blocking look (one worker-thread hop): it finds the version
    complete, or takes the version's file lock, or sees another process holding it. A
    waiter thus also notices a copy published before its downloader let go of the lock.

    Args:
        cache: the cache holding the version.
        name: the asset name.
        version: the exact version.
        force: download even if a complete copy is there.
        locking: take the cross-process lock (off where file locks hang).
    """

    def __init__(
        self, cache: AssetCache, name: str, version: str, *, force: bool, locking: bool
    ) -> None:
        self._cache = cache
        self._name = name
        self._version = version
        self._force = force
        self._locking = locking
        self._lock: filelock.BaseFileLock | None = None
        self.held = False

    @property
    def what(self) -> str:
        """``name:version``, for messages."""
        return f"{self._name}:{self._version}"

    def attempt(self) -> CachedCopy | bool:
        """The complete cached copy; else True once this fetch may download (the lock is
        held, stale staging of dead processes removed), or False while another has it."""
        if not self._force and (found := self._complete()) is not None:
            return found
        if self._locking and self._lock is None:
            try:
                path = self._cache.lock_path(self._name, self._version)
            except OSError as exc:
                # A read-only cache can still serve hits; a download will fail later, clearly.
                logger.debug(
                    "no lock for %s:%s (%s); continuing without", self._name, self._version, exc
                )
                self._locking = False
            else:
                self._lock = filelock.FileLock(path, thread_local=False)
        if self._lock is not None:
            try:
                self._lock.acquire(blocking=False)
            except filelock.Timeout:
                return False
            self.held = True
            # Another process may have published between our look and the lock.
            if not self._force and (found := self._complete()) is not None:
                self.release()
                return found
        self._cache.remove_stale(self._name, self._version)
        return True

    def release(self) -> None:
        """Let go of the lock, if held."""
        if self.held and self._lock is not None:
            self.held = False
            self._lock.release()

    def _complete(self) -> CachedCopy | None:
        return self._cache.lookup(self._name, self._version, None)
