"""Verifying a cache: every file of a version re-hashed against the checksums of its meta.

The cache keeps a copy of each version's meta (``.meta/<name>/<version>.meta``), with the
size and checksums of every object when aiomodelkit published it. Each file is re-hashed
with the cheapest checksum its meta records: XXH3-128 (0.05 s of CPU per GiB) when present,
else SHA-256 (0.61 s; see :mod:`._checksums`). A version is **corrupt**
when a file is missing, is not in the meta, has another size or another hash; **incomplete**
when its completion marker is missing (an interrupted download); **unchecked** when there
is nothing to check against (written by modelkit, or published by modelkit without
checksums); else **ok**. Repairing is downloading again through the normal atomic path:
``await manager.fetch_many([check.version.spec for check in failed], force=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._cache_scan import cache_root, scan_root
from ._checksums import LABELS, from_meta, hash_file, summary
from ._errors import AssetNotFoundError, ModelkitError
from ._layout import parse_meta
from ._spec import AssetSpec
from ._versioning import get_versioning

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from ._cache_scan import CachedVersion
    from ._versioning import VersioningSystem

__all__ = ["VersionCheck", "verify"]

Status = Literal["ok", "unchecked", "corrupt", "incomplete"]
_MARKER = ".SUCCESS"


@dataclass(frozen=True, slots=True)
class VersionCheck:
    """The verdict on one cached version.

    Attributes:
        version: the version checked.
        status: ``"ok"``, ``"unchecked"`` (nothing to check against), ``"corrupt"`` or
            ``"incomplete"``.
        problems: what is wrong (or why nothing could be checked), one phrase each.
        verified_with: the checksums the files were re-hashed with (``xxh3_128``,
            ``sha256``, both joined by ``+`` when files differ); None if none was.
    """

    version: CachedVersion
    status: Status
    problems: tuple[str, ...] = ()
    verified_with: str | None = None

    @property
    def failed(self) -> bool:
        """Corrupt or incomplete: the version should be downloaded again."""
        return self.status in ("corrupt", "incomplete")

    def describe(self) -> str:
        """One line: ``models/clf:1.0 is corrupt: w.bin: 3 bytes, expected 5``."""
        text = f"{self.version.spec} is {self.status}"
        if self.problems:
            text += f": {self.problems[0]}"
        if len(self.problems) > 1:
            text += f" (and {len(self.problems) - 1} more)"
        return text


def verify(
    assets_dir: str | os.PathLike[str],
    specs: Iterable[str | AssetSpec] = (),
    *,
    versioning: str | VersioningSystem = "major_minor",
) -> tuple[VersionCheck, ...]:
    """Re-hash cached versions against their stored checksums (blocking).

    Args:
        assets_dir: the cache directory.
        specs: which versions: ``name`` (all of its cached versions), ``name:1`` (those of
            major 1), ``name:1.2``; none means every version in the cache.
        versioning: how the specs' versions read (``major_minor`` or ``simple_date``).

    Returns:
        One check per version, in the order of :func:`~aiomodelkit.cache.scan`.

    Raises:
        ConfigError: the directory does not exist.
        InvalidAssetSpecError: a spec does not parse.
        AssetNotFoundError: a spec matches no version in the cache.
    """
    root = cache_root(assets_dir)
    system = get_versioning(versioning)
    parsed = [
        s if isinstance(s, AssetSpec) else AssetSpec.parse(s, versioning=system) for s in specs
    ]
    versions = scan_root(root).versions
    if parsed:
        chosen = []
        for spec in parsed:
            matching = [v for v in versions if _matches(spec, v, system)]
            if not matching:
                raise _not_cached(spec, system, root, [v for v in versions if v.name == spec.name])
            chosen.extend(matching)
        versions = tuple(dict.fromkeys(chosen))  # each once, in the order of the specs
    return tuple(check_version(root, version) for version in versions)


def _not_cached(
    spec: AssetSpec, system: VersioningSystem, root: Path, others: list[CachedVersion]
) -> AssetNotFoundError:
    if spec.version is None:
        what = "no version"
    elif system.is_complete(spec.version):
        what = f"no version {spec.version}"
    else:
        what = f"no version matching {spec.version}"
    return AssetNotFoundError(
        f"{what} of {spec.name!r} in the cache {str(root)!r}",
        asset=spec.name,
        available_versions=[v.version for v in others],
    )


def _matches(spec: AssetSpec, version: CachedVersion, system: VersioningSystem) -> bool:
    if version.name != spec.name:
        return False
    if spec.version is None:
        return True
    try:
        return system.matches(spec.version, version.version)
    except ValueError:  # a version of the other system
        return False


def check_version(root: Path, version: CachedVersion) -> VersionCheck:
    """Check one version against the meta the cache kept (blocking)."""
    if not version.complete:
        return VersionCheck(
            version, "incomplete", ("no completion marker: an interrupted download",)
        )
    try:
        raw = (root / ".meta" / version.name / f"{version.version}.meta").read_bytes()
    except FileNotFoundError:
        return VersionCheck(version, "unchecked", ("no stored checksums (written by modelkit)",))
    except OSError as exc:
        return VersionCheck(
            version, "corrupt", (f"its stored meta cannot be read: {exc.strerror}",)
        )
    try:
        meta = parse_meta(raw, name=version.name, version=version.version)
    except ModelkitError as exc:
        return VersionCheck(version, "corrupt", (f"its stored meta is malformed: {exc.message}",))
    if meta.is_directory != version.is_directory:
        kind = "a directory" if meta.is_directory else "a file"
        return VersionCheck(version, "corrupt", (f"the meta says it is {kind}",))
    if not meta.files:
        return VersionCheck(version, "unchecked", ("its meta lists no files",))
    expected = {entry.path: entry for entry in meta.files}
    actual = _files(version.path) if version.is_directory else {"": version.path}
    problems = [f"{path} is missing" for path in sorted(expected.keys() - actual.keys())]
    problems += [f"{path} is not in the meta" for path in sorted(actual.keys() - expected.keys())]
    hashed: set[str] = set()
    for relpath in sorted(expected.keys() & actual.keys()):
        entry, label = expected[relpath], relpath or "the file"
        try:
            size = actual[relpath].stat().st_size
            if entry.size is not None and size != entry.size:
                problems.append(f"{label}: {size} bytes, expected {entry.size}")
                continue
            checksum = from_meta(entry)
            if checksum is not None:
                _, digests = hash_file(actual[relpath], (checksum.algorithm,))
                hashed.add(checksum.algorithm)
                if digests[checksum.algorithm] != checksum.hexdigest:
                    what = LABELS[checksum.algorithm]
                    problems.append(f"{label}: its {what} differs from the meta's")
        except OSError as exc:
            problems.append(f"{label} cannot be read: {exc.strerror or exc}")
    if problems:
        return VersionCheck(version, "corrupt", tuple(problems), summary(hashed))
    if not hashed:
        return VersionCheck(version, "unchecked", ("its meta has no checksums (modelkit's)",))
    return VersionCheck(version, "ok", verified_with=summary(hashed))


def _files(directory: Path) -> dict[str, Path]:
    """Every regular file under ``directory`` by ``/``-separated relative path (its marker
    and symbolic links left out)."""
    found: dict[str, Path] = {}
    for parent, folders, files in os.walk(directory):
        folders.sort()
        for name in files:
            path = os.path.join(parent, name)
            relpath = os.path.relpath(path, directory).replace(os.sep, "/")
            if relpath != _MARKER and not os.path.islink(path):
                found[relpath] = directory / relpath
    return found
