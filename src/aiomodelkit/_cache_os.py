"""What the cache asks of the operating system: owners, locks, timestamps, an exchange.

Beyond plain files, the cache keeps three records, each cheap enough for every cache hit,
and uses one system call that Python does not wrap (:func:`exchange`):

* **Owners.** Staging and replaced copies are named ``<host>-<pid>-<8 hex>``, so a later
  process can tell whether their owner still runs (:func:`is_stale`).
* **Last used**: the modification time of ``.meta/<name>/.<version>.used``, an empty file
  touched (one ``utime``) on every hit and publication by an :class:`~aiomodelkit.AssetsManager`.
* **In use**: an open manager lists every version it served or published in its
  registration, ``.locks/.in-use/<host>-<pid>-<8 hex>.use``, a file it holds an exclusive
  ``flock`` on until it closes. The kernel drops the lock when the process dies, however it
  dies: a registration that someone else can lock belongs to a dead process and counts for
  nothing (``prune`` deletes it). One descriptor per open manager, whatever the number of
  versions (a lock per version would take a descriptor each, and a process has ~1,024).

Their cost on a warm start, measured on ext4 (``lookup`` of 500 cached versions): 47 µs per
lookup without them, +17 µs the first time a manager registers a version, +13 µs on each later
hit (the ``utime``); all in the worker-thread hop the lookup makes anyway.

A registration and a removal exclude each other through ``.locks/.in-use.lock``: a manager
appends a version to its registration, then checks that the version is still complete,
under a shared lock; ``prune`` reads every registration and renames its victims away under
the exclusive one. Either the manager registers first and prune sees it, or prune removes
first and the manager finds the version gone (and downloads it again). Both hold that lock
for microseconds, never while waiting for anything else.

A cache the process cannot write to (a read-only volume) records nothing: hits stay free of
writes. **Windows** has no ``flock``: nothing is registered there, and prune only skips the
versions it cannot rename (files held open), so do not prune a cache a service is using.
On NFS, Linux maps ``flock`` to byte-range locks (NFSv4), so registrations hold across
hosts; where a filesystem ignores locks, a version may be pruned under a running process,
whose open files stay readable until it closes them (POSIX).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = [
    "UseRegistry",
    "exchange",
    "exclusive",
    "is_stale",
    "lock_held",
    "open_guard",
    "owner",
    "registered_versions",
    "used_stamp",
]

logger = logging.getLogger("aiomodelkit")

#: Staging this old is removed even if its owner cannot be checked (another host).
STALE_AFTER_S = 24 * 3600
#: The lock that orders registrations and removals, and the folder of registrations (both
#: under ``.locks/``; a leading dot, which no asset name has, keeps them apart from names).
GUARD = ".in-use.lock"
REGISTRATIONS = ".in-use"
_HOST = socket.gethostname()
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load (not on Linux or macOS)
    _LIBC = None


def owner() -> str:
    """``<host>-<pid>`` of this process, as it names its staging copies and registrations."""
    host = "".join(c for c in _HOST if c.isalnum() or c == "-")[:32] or "host"
    return f"{host}-{os.getpid()}"


def is_stale(suffix: str, path: Path) -> bool:
    """Whether a staging entry's owner (``<host>-<pid>-<hex>``) is gone."""
    parts = suffix.split("-")
    try:
        age = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if len(parts) >= 3 and parts[-2].isdigit():
        owner_host = "-".join(parts[:-2])
        pid = int(parts[-2])
        if owner_host == owner().rpartition("-")[0]:
            if pid == os.getpid():
                return False  # ours, in use by another task of this process
            return not _alive(pid)
    return age > STALE_AFTER_S


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def used_stamp(root: Path, name: str, version: str) -> Path:
    """The file whose modification time says when a version was last used."""
    return root / ".meta" / name / f".{version}.used"


def _touch(stamp: str) -> None:
    try:
        os.utime(stamp)  # the usual case: one system call
    except FileNotFoundError:
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        os.close(os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


class UseRegistry:
    """This process's record of the versions one manager uses (see the module docstring).

    Every method blocks: call them from a worker thread. Failures to record (a full disk, a
    read-only cache) are logged at debug level and turn recording off: they never fail a
    fetch.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._meta = os.path.join(root, ".meta")
        self._mutex = threading.Lock()
        self._held: set[tuple[str, str]] = set()
        self._path: Path | None = None
        self._fd: int | None = None
        self._guard_fd: int | None = None
        self._pid = os.getpid()
        self._enabled: bool | None = None  # decided on first use (it takes a system call)

    def _on(self) -> bool:
        if self._enabled is None:
            self._enabled = os.access(self._root, os.W_OK)
        return self._enabled

    def _off(self, exc: OSError) -> None:
        logger.debug("not recording cache use in %s: %s", self._root, exc)
        self._enabled = False

    def hold(self, name: str, version: str, check: Callable[[], bool] = lambda: True) -> bool:
        """Stamp the version as used now and register it as in use; returns ``check()``,
        run where no prune can remove the version (so True means: there, and kept)."""
        if not self._on():
            return check()
        try:
            # Plain strings: on a warm start this runs once per model (pathlib costs ~10 µs).
            _touch(os.path.join(self._meta, name, f".{version}.used"))
        except OSError as exc:
            self._off(exc)
            return check()
        if sys.platform == "win32" or (name, version) in self._held:
            return check()
        with self._mutex:
            try:
                if self._guard_fd is None:
                    self._guard_fd = open_guard(self._root)
                fcntl.flock(self._guard_fd, fcntl.LOCK_SH)
            except OSError as exc:
                self._off(exc)
                return check()
            try:
                if (name, version) not in self._held:
                    os.write(self._registration(), f"{name}\t{version}\n".encode())
                    self._held.add((name, version))
                return check()
            except OSError as exc:
                self._off(exc)
                return check()
            finally:
                fcntl.flock(self._guard_fd, fcntl.LOCK_UN)

    def _registration(self) -> int:
        if self._fd is None:
            directory = self._root / ".locks" / REGISTRATIONS
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{owner()}-{uuid.uuid4().hex[:8]}.use"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
            # Created and locked under the shared guard: prune, which reads registrations
            # under the exclusive one, never sees this file unlocked while we live. (Blocking:
            # a listing may be probing it for a microsecond.)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd, self._path = fd, path
        return self._fd

    def release(self, name: str, version: str) -> None:
        """Stop registering one version as in use (a library swapped it out); its stamp
        stays. The registration is rewritten under the shared guard, as :meth:`hold`
        writes it, so a prune never reads it half-written."""
        with self._mutex:
            if (name, version) not in self._held or self._fd is None or self._guard_fd is None:
                return
            self._held.discard((name, version))
            lines = "".join(f"{n}\t{v}\n" for n, v in sorted(self._held))
            try:
                fcntl.flock(self._guard_fd, fcntl.LOCK_SH)
                try:
                    os.ftruncate(self._fd, 0)  # O_APPEND: the next write starts at 0
                    os.write(self._fd, lines.encode())
                finally:
                    fcntl.flock(self._guard_fd, fcntl.LOCK_UN)
            except OSError as exc:
                self._off(exc)

    def release_all(self) -> None:
        """Drop the registration (the manager closes); the last-used stamps stay."""
        with self._mutex:
            fd, path, guard = self._fd, self._path, self._guard_fd
            self._fd = self._path = self._guard_fd = None
            self._held.clear()
        if fd is not None:
            if path is not None and os.getpid() == self._pid:  # a forked child: not its file
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)
        if guard is not None:
            os.close(guard)


def open_guard(root: Path) -> int:
    """Open (creating it if needed) the lock that orders registrations and removals.

    Raises:
        OSError: it cannot be created (a read-only cache): prune's first write fails here.
    """
    path = root / ".locks" / GUARD
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextlib.contextmanager
def exclusive(guard: int) -> Iterator[None]:
    """Hold the exclusive side of the guard: no version is registered meanwhile."""
    if sys.platform == "win32":
        yield
        return
    fcntl.flock(guard, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(guard, fcntl.LOCK_UN)


def registered_versions(root: Path, *, remove_dead: bool = False) -> set[tuple[str, str]]:
    """``(name, version)`` of every version a live process has registered as in use.

    Args:
        root: the cache root.
        remove_dead: delete the registrations of dead processes (under the exclusive guard).
    """
    directory = root / ".locks" / REGISTRATIONS
    try:
        entries = os.listdir(directory)
    except OSError:
        return set()
    found: set[tuple[str, str]] = set()
    for entry in entries:
        if not entry.endswith(".use"):
            continue
        path = directory / entry
        try:
            with path.open("rb") as handle:
                if not _is_locked(handle.fileno()):
                    if remove_dead:
                        path.unlink(missing_ok=True)
                    continue
                lines = handle.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        for line in lines:
            name, tab, version = line.partition("\t")
            if tab:
                found.add((name, version))
    return found


def _is_locked(fd: int) -> bool:
    """Whether another open file holds a lock on this file (our probe is dropped at close)."""
    if sys.platform == "win32":
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


def lock_held(path: Path) -> bool:
    """Whether a process holds the file lock ``path`` (a download in progress); a missing
    file is a lock nobody holds."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _is_locked(fd)
    finally:
        os.close(fd)


def exchange(new: Path, old: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the call is unavailable (other systems, some filesystems): the
    caller then renames the old copy aside first, leaving a moment with no copy at all,
    but never a partial one.
    """
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange)
    return bool(result == 0)
