"""Lock files of resolved versions: resolve ``name:1`` at build time, start exactly so later.

A lock file maps each spec (without sub-part) to the exact version it resolved to and the
size and checksums of every object, as the store's ``.meta`` recorded them::

    {
      "aiomodelkit_lock": 1,
      "assets": {
        "models/clf:1": {"name": "models/clf", "version": "1.3",
                         "files": {"": {"size": 1024, "sha256": "...", "xxh3_128": "..."}}}
      }
    }

A fetch that honours it never reads a ``.versions`` index for a locked spec, refuses
(with :class:`~aiomodelkit.IntegrityError`) a version whose meta no longer matches the
lock, since versions are immutable, and verifies each object's SHA-256 (the pin: XXH3-128
is no cryptographic hash, see :mod:`._checksums`). ``xxh3_128`` is recorded when the meta
has it, and compared when the lock has it: locks written before it existed still match.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, IntegrityError
from ._layout import AssetMeta, FileEntry
from ._spec import AssetSpec

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["LockFile", "LockedAsset"]

_FORMAT = 1


def lock_key(spec: AssetSpec) -> str:
    """The lock entry a spec uses: its name and requested version, without sub-part."""
    return str(spec.with_sub_part(None))


@dataclass(frozen=True, slots=True)
class LockedAsset:
    """One resolved spec.

    Attributes:
        name: the asset name.
        version: the exact version.
        files: the objects and checksums the meta recorded.
    """

    name: str
    version: str
    files: tuple[FileEntry, ...] = ()

    def check(self, meta: AssetMeta) -> None:
        """Refuse a meta whose files differ from the locked ones.

        Raises:
            IntegrityError: the version's meta changed since the lock was written.
        """
        if self.files and set(self.files) != _as_locked(meta.files, self.files):
            raise IntegrityError(
                f"the store's meta for version {self.version} differs from the lock file",
                asset=self.name,
            )


@dataclass(frozen=True, slots=True)
class LockFile:
    """Resolved versions keyed by spec (see the module docstring for the format)."""

    assets: Mapping[str, LockedAsset] = field(default_factory=dict)

    def get(self, spec: AssetSpec) -> LockedAsset | None:
        """The locked resolution of ``spec``, if any."""
        entry = self.assets.get(lock_key(spec))
        return entry if entry is not None and entry.name == spec.name else None

    @classmethod
    def load(cls, path: Path) -> LockFile:
        """Read a lock file (blocking).

        Raises:
            ConfigError: the file is missing or malformed.
        """
        try:
            data = json.loads(path.read_bytes())
            if data.get("aiomodelkit_lock") != _FORMAT:
                raise ValueError(f"unknown format {data.get('aiomodelkit_lock')!r}")
            assets = {key: _entry(key, value) for key, value in data["assets"].items()}
        except FileNotFoundError:
            raise ConfigError(f"lock file {str(path)!r} does not exist") from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ConfigError(f"lock file {str(path)!r} is malformed: {reason}") from None
        except OSError as exc:  # a directory, no permission...
            raise ConfigError(
                f"lock file {str(path)!r} cannot be read: {exc.strerror or exc}"
            ) from None
        return cls(assets)

    def dump(self) -> bytes:
        """Serialise, sorted so that the file diffs well."""
        assets: dict[str, Any] = {
            key: {
                "name": entry.name,
                "version": entry.version,
                "files": {f.path: _dump_entry(f) for f in entry.files},
            }
            for key, entry in sorted(self.assets.items())
        }
        return json.dumps({"aiomodelkit_lock": _FORMAT, "assets": assets}, indent=2).encode()

    def save(self, path: Path) -> None:
        """Write atomically (blocking); a failed write leaves nothing behind.

        Raises:
            ConfigError: the file cannot be written there (no such directory, a directory
                in its place, no permission, a read-only filesystem).
        """
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_bytes(self.dump() + b"\n")
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise ConfigError(
                f"cannot write the lock file {str(path)!r}: {exc.strerror or exc}"
            ) from None


def _as_locked(files: tuple[FileEntry, ...], locked: tuple[FileEntry, ...]) -> set[FileEntry]:
    """A meta's entries as the lock would record them: no XXH3-128 where the lock has none."""
    without = {f.path for f in locked if f.xxh3_128 is None}
    return {replace(f, xxh3_128=None) if f.path in without else f for f in files}


def _dump_entry(entry: FileEntry) -> dict[str, Any]:
    dumped: dict[str, Any] = {"size": entry.size, "sha256": entry.sha256}
    if entry.xxh3_128 is not None:
        dumped["xxh3_128"] = entry.xxh3_128
    return dumped


def _entry(key: str, value: Mapping[str, Any]) -> LockedAsset:
    spec = AssetSpec.parse(key)
    name, version = value["name"], value["version"]
    if name != spec.name or not isinstance(version, str):
        raise ValueError(f"entry {key!r} does not match its name")
    AssetSpec(name, version)  # validates the version's characters
    files = tuple(
        FileEntry(path, detail.get("size"), detail.get("sha256"), detail.get("xxh3_128"))
        for path, detail in value.get("files", {}).items()
    )
    return LockedAsset(name, version, files)
