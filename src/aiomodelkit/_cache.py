"""The local cache of assets, laid out as modelkit lays it out so model code still finds files.

::

    ASSETS_DIR/
      CACHEDIR.TAG                             tells backup tools this is a cache
      <name>/<version>                         a file asset
      <name>/.<version>.SUCCESS                its modelkit completion marker
      <name>/<version>/...                     a directory asset
      <name>/<version>/.SUCCESS                its modelkit completion marker
      <name>/<version>.incomplete-<8 hex>      staging of one download in progress

Correctness comes from the atomic rename of a fully downloaded and verified staging copy
onto ``<name>/<version>``: no reader ever sees a partial asset. We also write modelkit's
``.SUCCESS`` markers (inside the staging directory before the rename, or before renaming a
file) so that modelkit can read our cache, and we require them, as modelkit does, so that a
cache partly written by modelkit (which downloads in place) is never mistaken for complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import TYPE_CHECKING

from ._errors import InvalidStoreDataError

if TYPE_CHECKING:
    from pathlib import Path

    from ._versioning import VersioningSystem

__all__ = ["AssetCache"]

_MARKER = ".SUCCESS"
_STAGING = ".incomplete-"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by aiomodelkit.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


class AssetCache:
    """Paths and publication inside one assets directory (blocking: call from a thread)."""

    def __init__(self, assets_dir: Path) -> None:
        self.root = assets_dir.absolute()

    def version_path(self, name: str, version: str) -> Path:
        """The final path of a version; refuses anything that would leave the cache."""
        path = self.root / name / version
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise InvalidStoreDataError(
                "asset path resolves outside the assets directory", asset=name, key=str(path)
            )
        return path

    def _marker(self, path: Path, is_directory: bool) -> Path:
        return path / _MARKER if is_directory else path.with_name(f".{path.name}{_MARKER}")

    def is_complete(self, name: str, version: str) -> bool:
        """Whether a version is fully in the cache."""
        path = self.version_path(name, version)
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

    def new_staging(self, name: str, version: str, is_directory: bool) -> Path:
        """Create a process-unique staging location beside the final path."""
        final = self.version_path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        self._tag()
        staging = final.with_name(f"{final.name}{_STAGING}{uuid.uuid4().hex[:8]}")
        if is_directory:
            staging.mkdir()
        return staging

    def publish(self, name: str, version: str, staging: Path, is_directory: bool) -> bool:
        """Move a verified staging copy into place; False if another copy won the race."""
        final = self.version_path(name, version)
        if self.is_complete(name, version):
            self.discard(staging)
            return False
        if is_directory:
            (staging / _MARKER).touch()
            self._remove_incomplete(final)
            try:
                os.rename(staging, final)
            except OSError:
                if not self.is_complete(name, version):
                    raise
                self.discard(staging)
                return False
        else:
            # Marker first: a crash between the two leaves a marker without a file, which
            # reads as incomplete and is re-downloaded.
            self._marker(final, False).touch()
            self._remove_incomplete(final)
            os.replace(staging, final)
        return True

    def _remove_incomplete(self, final: Path) -> None:
        # Only an incomplete leftover (for example modelkit's interrupted in-place
        # download) can sit here; a complete version was detected by the caller.
        if final.is_dir() and not (final / _MARKER).exists():
            shutil.rmtree(final)

    def discard(self, staging: Path) -> None:
        """Remove a staging copy, file or directory."""
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)

    def _tag(self) -> None:
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            tmp = tag.with_name(f"CACHEDIR.TAG{_STAGING}{uuid.uuid4().hex[:8]}")
            tmp.write_text(_CACHEDIR_TAG)
            os.replace(tmp, tag)
