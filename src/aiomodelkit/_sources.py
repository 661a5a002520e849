"""The local files of a publication: listed, checked and hashed before anything is sent.

Each file is read once, feeding SHA-256 and XXH3-128 together (the meta records both;
fetches verify the fast one, see :mod:`._checksums`). Blocking (it reads every file): the
publisher runs :func:`scan_source` in a worker thread.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ._checksums import SHA256, XXH3_128, hash_file
from ._errors import ConfigError
from ._spec import validate_relative_path

__all__ = ["SourceFile", "scan_source"]


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One local file to publish."""

    relpath: str  # "" for a file asset
    path: Path
    size: int
    sha256: str
    xxh3_128: str


def scan_source(local_path: Path) -> tuple[bool, list[SourceFile]]:
    """List and hash the files to publish (blocking: run it in a worker thread).

    Regular files are published, following file symlinks; directory symlinks and special
    files are skipped, as empty directories are (the layout cannot represent them).

    Raises:
        ConfigError: the path does not exist, holds no file, or a file or directory in it
            cannot be read (never skipped: the version would silently lack it).
        InvalidAssetSpecError: a file name cannot be a key (backslash, control character).
    """
    try:
        return _scan(local_path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.filename and str(exc.filename) != str(local_path):
            reason = f"cannot read {str(exc.filename)!r}: {reason}"
        raise ConfigError(f"cannot publish {str(local_path)!r}: {reason}") from None


def _raise(exc: OSError) -> None:
    raise exc


def _scan(local_path: Path) -> tuple[bool, list[SourceFile]]:
    if local_path.is_file():
        return False, [_source_file("", local_path)]
    if not local_path.is_dir():
        raise ConfigError(f"nothing to publish at {str(local_path)!r}: no such file or directory")
    files: list[SourceFile] = []
    for directory, _dirnames, filenames in os.walk(local_path, onerror=_raise):
        for filename in filenames:
            path = Path(directory, filename)
            if not stat.S_ISREG(path.stat().st_mode):
                continue
            relpath = path.relative_to(local_path).as_posix()
            validate_relative_path(relpath, what="file name", allow_space=True)
            files.append(_source_file(relpath, path))
    if not files:
        raise ConfigError(f"nothing to publish: {str(local_path)!r} holds no file")
    files.sort(key=lambda f: f.relpath)
    return True, files


def _source_file(relpath: str, path: Path) -> SourceFile:
    # The size is the bytes hashed, so that size and digests describe the same content.
    size, digests = hash_file(path, (SHA256, XXH3_128))
    return SourceFile(relpath, path, size, digests[SHA256], digests[XXH3_128])
