"""A store in a plain local directory (the embedded default, and modelkit's ``local`` driver).

Keys map to files under the root: ``<root>/models/clf/1.0``. Writes go to a temporary file
in the same directory and are moved into place, so a reader never sees half an object;
``if_absent`` uses a hard link (atomic create-if-missing on POSIX) and ``if_match`` a
per-key file lock, so conditional writes hold across processes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat as stat_module
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import filelock

from aiomodelkit._errors import (
    AssetNotFoundError,
    BucketNotFoundError,
    InvalidAssetSpecError,
    InvalidStoreDataError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
)
from aiomodelkit._lifecycle import AsyncResource
from aiomodelkit._spec import validate_relative_path

from ._base import (
    ObjectInfo,
    ObjectStream,
    StoreOptions,
    check_read_conditions,
    raise_if_unchanged,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["LocalStore"]

_TMP_MARKER = ".aiomodelkit-tmp-"
_LOCK_DIR = ".aiomodelkit-locks"


class LocalStore(AsyncResource):
    """A store rooted at a local directory.

    Args:
        root: the directory that holds the keys (modelkit's bucket and prefix joined). It
            must exist; like a bucket, it is not created for you.
        options: read chunk size and listing page size.

    Example:
        >>> store = LocalStore("/srv/models/modelkit-assets")
        >>> store.url
        'file:///srv/models/modelkit-assets'
    """

    _shareable = True  # Nothing to close: files are opened per operation.

    def __init__(
        self, root: str | os.PathLike[str], *, options: StoreOptions | None = None
    ) -> None:
        self._root = Path(root).expanduser().absolute()
        self._options = options or StoreOptions()

    def __repr__(self) -> str:
        return f"LocalStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        """The directory holding the keys."""
        return self._root

    @property
    def url(self) -> str:
        return self._root.as_uri()

    @property
    def supports_conditional_writes(self) -> bool:
        return True

    # -- paths and errors ---------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The path of a key, after checking the key's shape (no I/O)."""
        try:
            validate_relative_path(key, what="key", allow_space=True)
        except InvalidAssetSpecError as exc:
            raise InvalidStoreDataError(exc.message, key=key, store_url=self.url) from None
        return self._root / key

    def _check_inside(self, path: Path, key: str) -> None:
        """Refuse a path that a symlink leads outside the store (blocking)."""
        if not path.resolve().is_relative_to(self._root.resolve()):
            raise InvalidStoreDataError(
                "key resolves outside the store root (symlink)", key=key, store_url=self.url
            )

    @asynccontextmanager
    async def _map_errors(self, key: str | None) -> AsyncIterator[None]:
        try:
            yield
        except (FileNotFoundError, NotADirectoryError) as exc:
            problem = await anyio.to_thread.run_sync(self._root_problem)
            if problem is not None:
                raise BucketNotFoundError(problem, store_url=self.url) from exc
            raise AssetNotFoundError.no_object(key or "", store_url=self.url) from exc
        except PermissionError as exc:
            raise StorePermissionError(
                f"permission denied: {exc.strerror}", key=key, store_url=self.url
            ) from exc
        except IsADirectoryError as exc:
            raise AssetNotFoundError.no_object(
                key or "", store_url=self.url, detail="the key is a directory"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror}",
                key=key,
                store_url=self.url,
            ) from exc

    def _root_problem(self) -> str | None:
        """What is wrong with the root directory, if anything (blocking)."""
        if self._root.is_dir():
            return None
        if self._root.exists():
            return "the local store's root is not a directory"
        return "the local store's root directory does not exist"

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=_token(st),
            updated=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    # -- reads --------------------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        async with self._map_errors(key):
            st = await anyio.to_thread.run_sync(self._stat_sync, path, key)
        return self._info(key, st)

    def _stat_sync(self, path: Path, key: str) -> os.stat_result:
        self._check_inside(path, key)
        st = os.stat(path)
        if not stat_module.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        return st

    @asynccontextmanager
    async def read(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> AsyncIterator[ObjectStream]:
        check_read_conditions(offset, length, if_match, if_none_match)
        path = self._path(key)
        end = None if length is None else offset + length
        async with self._map_errors(key):
            # One worker-thread call opens, checks and reads the first chunk: a small
            # object costs one thread hop in all.
            fd, st, first = await anyio.to_thread.run_sync(
                self._open_sync, path, key, offset, end, if_match, if_none_match
            )
        try:
            yield ObjectStream(self._info(key, st), self._chunks(fd, first, key, offset, end, st))
        finally:
            if fd is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(os.close, fd)

    def _open_sync(
        self,
        path: Path,
        key: str,
        offset: int,
        end: int | None,
        if_match: str | None,
        if_none_match: str | None,
    ) -> tuple[int | None, os.stat_result, bytes]:
        self._check_inside(path, key)
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            if if_match is not None and _token(st) != if_match:
                raise PreconditionFailedError(
                    "object changed since it was pinned", key=key, store_url=self.url
                )
            # Before any byte is read: an unchanged object costs one open and one fstat.
            raise_if_unchanged(_token(st), if_none_match, key, store_url=self.url)
            if offset > st.st_size or offset < 0:
                raise StoreError(
                    f"range start {offset} is beyond the object's {st.st_size} bytes",
                    key=key,
                    store_url=self.url,
                )
            stop = st.st_size if end is None else min(end, st.st_size)
            first = os.pread(fd, min(self._options.chunk_size, stop - offset), offset)
            if offset + len(first) >= stop:
                os.close(fd)
                return None, st, first
            return fd, st, first
        except BaseException:
            os.close(fd)
            raise

    async def _chunks(
        self,
        fd: int | None,
        first: bytes,
        key: str,
        offset: int,
        end: int | None,
        st: os.stat_result,
    ) -> AsyncIterator[bytes]:
        if first:
            yield first
        if fd is None:
            return
        position = offset + len(first)
        stop = st.st_size if end is None else min(end, st.st_size)
        while position < stop:
            async with self._map_errors(key):
                chunk = await anyio.to_thread.run_sync(
                    os.pread, fd, min(self._options.chunk_size, stop - position), position
                )
            if not chunk:
                return  # the file shrank: the caller's size check reports it
            position += len(chunk)
            yield chunk

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async with self._map_errors(None):
            if not await anyio.to_thread.run_sync(self._root.is_dir):
                raise FileNotFoundError(errno.ENOENT, "no root")
            found = await anyio.to_thread.run_sync(self._scan, prefix)
        for key, st in found:
            yield self._info(key, st)

    def _scan(self, prefix: str) -> list[tuple[str, os.stat_result]]:
        # Walk only the directory that can contain the prefix, then filter by string
        # prefix (object-store semantics: "a/b" matches "a/b.versions" and "a/b/1.0").
        start = self._root / prefix.rpartition("/")[0] if "/" in prefix else self._root
        found: list[tuple[str, os.stat_result]] = []
        if not start.is_dir():
            return found
        root_text = str(self._root)
        for directory, dirnames, filenames in os.walk(start):
            if directory == root_text and _LOCK_DIR in dirnames:
                dirnames.remove(_LOCK_DIR)
            for filename in filenames:
                if _TMP_MARKER in filename:
                    continue
                path = os.path.join(directory, filename)
                key = os.path.relpath(path, root_text).replace(os.sep, "/")
                if not key.startswith(prefix):
                    continue
                st = os.stat(path, follow_symlinks=False)
                if stat_module.S_ISREG(st.st_mode):
                    found.append((key, st))
        found.sort(key=lambda item: item[0].encode())
        return found

    # -- writes -------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        async with self._map_errors(key):
            st = await anyio.to_thread.run_sync(
                self._put_sync, key, path, data, if_absent, if_match
            )
        return self._info(key, st)

    def _put_sync(
        self, key: str, path: Path, data: bytes | Path, if_absent: bool, if_match: str | None
    ) -> os.stat_result:
        if not self._root.is_dir():
            raise FileNotFoundError(errno.ENOENT, "no root")
        self._check_inside(path, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}{_TMP_MARKER}{uuid.uuid4().hex[:8]}")
        try:
            if isinstance(data, bytes):
                with open(tmp, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            else:
                shutil.copyfile(data, tmp)
            if if_absent:
                try:
                    os.link(tmp, path)  # fails if the key exists: atomic create-if-absent
                except FileExistsError:
                    raise PreconditionFailedError(
                        "object already exists", key=key, store_url=self.url
                    ) from None
            elif if_match is not None:
                with self._key_lock(key):
                    try:
                        current = _token(os.stat(path))
                    except FileNotFoundError:
                        current = None
                    if current != if_match:
                        raise PreconditionFailedError(
                            "object changed since it was read", key=key, store_url=self.url
                        )
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)
            return os.stat(path)
        finally:
            tmp.unlink(missing_ok=True)

    def _key_lock(self, key: str) -> filelock.BaseFileLock:
        lock_dir = self._root / _LOCK_DIR
        lock_dir.mkdir(exist_ok=True)
        # Hash the key: a deep key flattened into one file name could pass 255 bytes.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return filelock.FileLock(lock_dir / f"{digest}.lock")

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def delete() -> None:
            self._check_inside(path, key)
            path.unlink(missing_ok=True)

        async with self._map_errors(key):
            await anyio.to_thread.run_sync(delete)


def _token(st: os.stat_result) -> str:
    # Every write replaces the file (new inode), so inode + mtime + size pins one content.
    return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"
