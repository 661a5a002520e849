"""modelkit's remote layout: keys, ``.versions`` indexes and ``.meta`` files.

Under a store's prefix::

    <name>.versions              {"versions": ["1.0", "0.1", "0.0"]}   newest first
    <name>/<version>             a file asset's bytes
    <name>/<version>/<relpath>   one object per file of a directory asset
    <name>/<version>.meta        {"push_date": ..., "is_directory": ..., "contents": [...]}

modelkit 0.1.3 writes and reads exactly ``push_date``, ``is_directory`` and ``contents``
(``json.load``, then those keys by name). We add optional fields it ignores: ``pushed_by``,
``aiomodelkit_version``, and per-object ``size``, ``sha256`` and ``xxh3_128`` (``files`` for
a directory, top-level for a file) so that every download can be verified end to end, with
the fast XXH3-128 (:mod:`._checksums`).

Everything read from a store is untrusted: indexes and metas are size-bounded, their
JSON is checked field by field, and every path in ``contents`` is validated before it can
become a local path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._errors import InvalidAssetSpecError, InvalidStoreDataError, InvalidVersionError
from ._spec import validate_relative_path

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._versioning import VersioningSystem

__all__ = [
    "AssetMeta",
    "FileEntry",
    "data_key",
    "dump_index",
    "dump_meta",
    "meta_key",
    "parse_index",
    "parse_meta",
    "tree_checksum",
    "versions_key",
]

#: Largest index or meta we accept from a store (a meta lists every file of an asset).
MAX_METADATA_BYTES = 64 * 1024 * 1024
#: Most files a directory asset may list.
MAX_FILES = 1_000_000
_HEX = {"sha256": re.compile(r"[0-9a-f]{64}"), "xxh3_128": re.compile(r"[0-9a-f]{32}")}
#: The checksums an object may carry in a meta (always beside its size).
_DIGESTS = ("sha256", "xxh3_128")


def versions_key(name: str) -> str:
    """The key of an asset's index of versions."""
    return f"{name}.versions"


def meta_key(name: str, version: str) -> str:
    """The key of one version's ``.meta``."""
    return f"{name}/{version}.meta"


def data_key(name: str, version: str, relpath: str | None = None) -> str:
    """The key of a file asset (``relpath`` None) or of one file of a directory asset."""
    return f"{name}/{version}" if relpath is None else f"{name}/{version}/{relpath}"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One object of an asset version.

    Attributes:
        path: the path relative to the version (``""`` for a file asset).
        size: the size in bytes, when the meta records it.
        sha256: the hex SHA-256, when the meta records it.
        xxh3_128: the hex XXH3-128 (canonical, big-endian: ``xxh128sum``'s), when the meta
            records it (not modelkit's, nor ours published before issue 17).
    """

    path: str
    size: int | None = None
    sha256: str | None = None
    xxh3_128: str | None = None


@dataclass(frozen=True, slots=True)
class AssetMeta:
    """A parsed ``.meta``.

    Attributes:
        is_directory: whether the version is a directory of files.
        files: the objects of the version (one entry with path ``""`` for a file asset;
            empty for a directory asset whose meta has no ``contents``).
        push_date: when it was published, if recorded.
        pushed_by: who published it (aiomodelkit only).
        aiomodelkit_version: the publisher's aiomodelkit version (aiomodelkit only).
    """

    is_directory: bool
    files: tuple[FileEntry, ...] = ()
    push_date: datetime | None = None
    pushed_by: str | None = None
    aiomodelkit_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def holds(self, sub_part: str) -> bool | None:
        """Whether ``sub_part`` names a file or a folder of this version (None: unknown).

        A directory asset whose meta lists no contents (modelkit's oldest) cannot tell.

        Example:
            >>> meta = AssetMeta(True, (FileEntry("sub/w.bin", 1), FileEntry("v.txt", 2)))
            >>> meta.holds("sub/w.bin"), meta.holds("sub"), meta.holds("su"), meta.holds("x")
            (True, True, False, False)
        """
        if not self.is_directory:
            return False
        if not self.files:
            return None
        folder = sub_part.rstrip("/") + "/"
        return any(f.path == sub_part or f.path.startswith(folder) for f in self.files)

    @property
    def total_size(self) -> int | None:
        """The sum of the file sizes, if every size is known."""
        sizes = [entry.size for entry in self.files]
        return None if any(size is None for size in sizes) else sum(s for s in sizes if s)


def _load_json(raw: bytes, *, what: str, key: str, asset: str) -> dict[str, Any]:
    if len(raw) > MAX_METADATA_BYTES:
        raise InvalidStoreDataError(
            f"{what} is larger than {MAX_METADATA_BYTES} bytes", key=key, asset=asset
        )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidStoreDataError(
            f"{what} is not valid JSON: {exc}", key=key, asset=asset
        ) from None
    except RecursionError:  # hostile nesting, far under the size limit
        raise InvalidStoreDataError(
            f"{what} is nested too deeply to be metadata", key=key, asset=asset
        ) from None
    if not isinstance(data, dict):
        raise InvalidStoreDataError(f"{what} must be a JSON object", key=key, asset=asset)
    return data


def parse_index(raw: bytes, *, name: str, versioning: VersioningSystem) -> list[str]:
    """Parse a ``.versions`` index into valid versions, newest first.

    Raises:
        InvalidStoreDataError: malformed JSON, or an entry the versioning system refuses.
    """
    key = versions_key(name)
    data = _load_json(raw, what="version index", key=key, asset=name)
    versions = data.get("versions")
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise InvalidStoreDataError(
            'version index must hold {"versions": [strings]}', key=key, asset=name
        )
    try:
        return versioning.sort(versions)
    except InvalidVersionError as exc:
        raise InvalidStoreDataError(
            f"version index lists an invalid version: {exc.message}", key=key, asset=name
        ) from None


def dump_index(versions: list[str]) -> bytes:
    """Serialise an index (versions must already be sorted newest first)."""
    return json.dumps({"versions": versions}).encode()


def _check_path(path: Any, *, key: str, asset: str) -> str:
    if not isinstance(path, str):
        raise InvalidStoreDataError("meta contents must be strings", key=key, asset=asset)
    # Older modelkit stores wrote contents with a leading slash.
    relative = path[1:] if path.startswith("/") else path
    try:
        return validate_relative_path(relative, what="meta contents entry", allow_space=True)
    except InvalidAssetSpecError as exc:
        raise InvalidStoreDataError(exc.message, key=key, asset=asset) from None


def _check_entry(raw: Any, path: str, *, key: str, asset: str) -> FileEntry:
    if raw is None:
        return FileEntry(path)
    if not isinstance(raw, dict):
        raise InvalidStoreDataError(
            f"meta entry for {path!r} must be an object", key=key, asset=asset
        )
    size = raw.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise InvalidStoreDataError(
            f"meta size for {path!r} is not a byte count", key=key, asset=asset
        )
    digests = {name: raw.get(name) for name in _DIGESTS}
    for name, value in digests.items():
        if value is not None and (not isinstance(value, str) or not _HEX[name].fullmatch(value)):
            raise InvalidStoreDataError(
                f"meta {name} for {path!r} is not a hex digest", key=key, asset=asset
            )
    return FileEntry(path, size, digests["sha256"], digests["xxh3_128"])


def _check_tree(paths: list[str], *, key: str, asset: str) -> None:
    # A path that is both a file and a parent directory ("a" and "a/b") cannot be laid out.
    seen = set(paths)
    if len(seen) != len(paths):
        raise InvalidStoreDataError("meta contents lists a file twice", key=key, asset=asset)
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in seen:
                raise InvalidStoreDataError(
                    f"meta contents lists {'/'.join(parts[:depth])!r} as a file and a directory",
                    key=key,
                    asset=asset,
                )


def parse_meta(raw: bytes, *, name: str, version: str) -> AssetMeta:
    """Parse and validate a ``.meta`` written by modelkit or aiomodelkit.

    Raises:
        InvalidStoreDataError: malformed JSON, wrong types, or unsafe paths.
    """
    key = meta_key(name, version)
    data = _load_json(raw, what="meta", key=key, asset=name)
    is_directory = data.get("is_directory")
    if not isinstance(is_directory, bool):
        raise InvalidStoreDataError("meta needs a boolean is_directory", key=key, asset=name)
    push_date = _parse_date(data.get("push_date"), key=key, asset=name)
    pushed_by = data.get("pushed_by")
    our_version = data.get("aiomodelkit_version")
    if not isinstance(pushed_by, str | None) or not isinstance(our_version, str | None):
        raise InvalidStoreDataError(
            "meta pushed_by/aiomodelkit_version must be strings", key=key, asset=name
        )
    if is_directory:
        contents = data.get("contents")
        if contents is None:
            files: tuple[FileEntry, ...] = ()
        else:
            if not isinstance(contents, list):
                raise InvalidStoreDataError("meta contents must be a list", key=key, asset=name)
            if len(contents) > MAX_FILES:
                raise InvalidStoreDataError(
                    f"meta lists more than {MAX_FILES} files", key=key, asset=name
                )
            paths = [_check_path(p, key=key, asset=name) for p in contents]
            _check_tree(paths, key=key, asset=name)
            details = data.get("files", {})
            if not isinstance(details, dict):
                raise InvalidStoreDataError("meta files must be an object", key=key, asset=name)
            files = tuple(_check_entry(details.get(p), p, key=key, asset=name) for p in paths)
    else:
        files = (
            _check_entry({k: data.get(k) for k in ("size", *_DIGESTS)}, "", key=key, asset=name),
        )
    known = {
        "is_directory",
        "push_date",
        "contents",
        "files",
        "size",
        *_DIGESTS,
        "pushed_by",
        "aiomodelkit_version",
    }
    return AssetMeta(
        is_directory=is_directory,
        files=files,
        push_date=push_date,
        pushed_by=pushed_by,
        aiomodelkit_version=our_version,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _parse_date(value: Any, *, key: str, asset: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidStoreDataError("meta push_date must be a string", key=key, asset=asset)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidStoreDataError(
            f"meta push_date {value!r} is not ISO-8601", key=key, asset=asset
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def dump_meta(meta: AssetMeta) -> bytes:
    """Serialise a meta that modelkit 0.1.3 can read (its three fields come first)."""
    push_date = meta.push_date or datetime.now(UTC)
    data: dict[str, Any] = {
        "push_date": push_date.astimezone(UTC).isoformat(timespec="microseconds"),
        "is_directory": meta.is_directory,
    }
    if meta.is_directory:
        ordered = sorted(meta.files, key=lambda entry: entry.path)
        data["contents"] = [entry.path for entry in ordered]
        data["files"] = {entry.path: _dump_entry(entry) for entry in ordered}
    elif meta.files:
        data.update(_dump_entry(meta.files[0]))
    if meta.pushed_by is not None:
        data["pushed_by"] = meta.pushed_by
    if meta.aiomodelkit_version is not None:
        data["aiomodelkit_version"] = meta.aiomodelkit_version
    return json.dumps(data, ensure_ascii=False).encode()


def _dump_entry(entry: FileEntry) -> dict[str, Any]:
    dumped: dict[str, Any] = {"size": entry.size, "sha256": entry.sha256}
    if entry.xxh3_128 is not None:  # metas of older versions of ours have none
        dumped["xxh3_128"] = entry.xxh3_128
    return dumped


def tree_checksum(meta: AssetMeta) -> str | None:
    """One digest naming a version's exact content (from every object's SHA-256), for logs."""
    if not meta.files or not all(entry.sha256 for entry in meta.files):
        return None
    lines = "".join(f"{entry.path}\t{entry.sha256}\n" for entry in meta.files)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
