"""Asset specs: ``name[:version][[sub/part]]``, parsed once and safe to turn into paths.

The grammar is modelkit's, minus what could escape a directory once a name or a sub-part
becomes a path or a key: names are ``/``-separated segments of ASCII letters, digits, ``-``,
``_`` and ``.``; no segment is empty, ``.`` or ``..``; nothing is absolute; no backslash,
whitespace or control character appears anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from ._errors import InvalidAssetSpecError, InvalidVersionError

__all__ = [
    "AssetSpec",
    "VersionValidator",
    "validate_asset_name",
    "validate_relative_path",
    "validate_version_text",
]


class VersionValidator(Protocol):
    """What :meth:`AssetSpec.parse` needs of a versioning system (any
    :class:`~aiomodelkit.VersioningSystem`); a protocol, so that specs sit below versioning."""

    def validate(self, version: str, *, spec: str | None = None) -> str:
        """Return ``version`` if this system accepts it.

        Raises:
            InvalidVersionError: it does not.
        """
        ...


# A single file-name component may be at most 255 bytes on every common filesystem.
MAX_SEGMENT_BYTES = 255
# S3 keys are at most 1024 bytes; the prefix and version need room too.
MAX_NAME_BYTES = 512
MAX_VERSION_LENGTH = 64

_NAME_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_VERSION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
# name, then optional ":version", then optional "[sub-part]" at the very end.
_SPEC = re.compile(r"(?P<name>[^:\[\]]*)(?::(?P<version>[^:\[\]]*))?(?:\[(?P<sub>[^\[\]]*)\])?")
# Suffixes the remote layout uses for its own objects (`<name>.versions`, `<v>.meta`).
_RESERVED_SUFFIXES = (".versions", ".meta")


def _check_common(text: str, what: str, spec: str | None, *, allow_space: bool = False) -> None:
    if not text:
        raise InvalidAssetSpecError(f"{what} is empty", spec=spec)
    if "\\" in text:
        raise InvalidAssetSpecError(f"{what} {text!r} contains a backslash", spec=spec)
    if "\x00" in text:
        raise InvalidAssetSpecError(f"{what} {text!r} contains a NUL byte", spec=spec)
    for char in text:
        if char == " " and allow_space:
            continue
        if char.isspace() or unicodedata.category(char).startswith("C"):
            raise InvalidAssetSpecError(
                f"{what} {text!r} contains whitespace or a control character ({char!r})", spec=spec
            )
    if text.startswith("/"):
        raise InvalidAssetSpecError(f"{what} {text!r} must be relative (no leading '/')", spec=spec)


def _check_segments(text: str, what: str, spec: str | None) -> list[str]:
    segments = text.split("/")
    for segment in segments:
        if segment == "":
            raise InvalidAssetSpecError(f"{what} {text!r} has an empty path segment", spec=spec)
        if segment in (".", ".."):
            raise InvalidAssetSpecError(f"{what} {text!r} has a {segment!r} segment", spec=spec)
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidAssetSpecError(
                f"{what} has a segment longer than {MAX_SEGMENT_BYTES} bytes", spec=spec
            )
    return segments


def validate_asset_name(name: str, *, spec: str | None = None) -> str:
    """Check that ``name`` is a safe asset name and return it.

    Raises:
        InvalidAssetSpecError: naming the offending part.
    """
    _check_common(name, "asset name", spec)
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidAssetSpecError(f"asset name is longer than {MAX_NAME_BYTES} bytes", spec=spec)
    for segment in _check_segments(name, "asset name", spec):
        if not _NAME_SEGMENT.fullmatch(segment):
            raise InvalidAssetSpecError(
                f"asset name segment {segment!r} must use only ASCII letters, digits, '-', '_' "
                "and '.'",
                spec=spec,
            )
    if not (name[0].isalnum() and name[-1].isalnum()):
        raise InvalidAssetSpecError(
            f"asset name {name!r} must start and end with an ASCII letter or digit", spec=spec
        )
    if name.endswith(_RESERVED_SUFFIXES):
        raise InvalidAssetSpecError(
            f"asset name {name!r} ends with a suffix the store layout reserves "
            f"({', '.join(_RESERVED_SUFFIXES)})",
            spec=spec,
        )
    return name


def validate_relative_path(
    path: str, *, what: str = "sub-part", spec: str | None = None, allow_space: bool = False
) -> str:
    """Check that ``path`` is a relative ``/``-separated path that stays inside its root.

    Used for sub-parts and for the file list of a directory asset's ``.meta``; unicode is
    allowed (and plain spaces with ``allow_space``, for file names inside an asset),
    anything that could climb out of a directory is not.

    Raises:
        InvalidAssetSpecError: naming the offending part.
    """
    _check_common(path, what, spec, allow_space=allow_space)
    for segment in _check_segments(path, what, spec):
        if ":" in segment and len(segment) >= 2 and segment[1] == ":":
            raise InvalidAssetSpecError(f"{what} {path!r} looks like a drive letter", spec=spec)
    return path


def validate_version_text(version: str, *, spec: str | None = None) -> str:
    """The generic version check every versioning system starts from.

    Raises:
        InvalidVersionError: the version is empty, too long or has unsafe characters.
    """
    if not version:
        raise InvalidVersionError("version is empty", spec=spec)
    if len(version) > MAX_VERSION_LENGTH or not _VERSION.fullmatch(version):
        raise InvalidVersionError(
            f"version {version!r} must be at most {MAX_VERSION_LENGTH} ASCII letters, digits, "
            "'.', '-' or '_', starting and ending with a letter or digit",
            spec=spec,
        )
    return version


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """A parsed asset spec such as ``models/clf:1.2[weights/model.bin]``.

    Attributes:
        name: the asset name, ``/``-separated (``category/name``).
        version: the requested version, complete (``1.2``) or partial (``1``), or None for
            the newest.
        sub_part: a relative path inside the asset, or None for the whole asset.

    Example:
        >>> spec = AssetSpec.parse("models/clf:1.2[weights/model.bin]")
        >>> spec.name, spec.version, spec.sub_part
        ('models/clf', '1.2', 'weights/model.bin')
        >>> str(spec)
        'models/clf:1.2[weights/model.bin]'
    """

    name: str
    version: str | None = None
    sub_part: str | None = None

    def __post_init__(self) -> None:
        text = self._format()
        validate_asset_name(self.name, spec=text)
        if self.version is not None:
            validate_version_text(self.version, spec=text)
        if self.sub_part is not None:
            validate_relative_path(self.sub_part, spec=text)
            # Brackets would make str(spec) unparsable (the sub-part is the one trailing [...]).
            if "[" in self.sub_part or "]" in self.sub_part:
                raise InvalidAssetSpecError(
                    f"sub-part {self.sub_part!r} contains a bracket", spec=text
                )

    @classmethod
    def parse(cls, text: str, *, versioning: VersionValidator | None = None) -> AssetSpec:
        """Parse ``name[:version][[sub/part]]``.

        Args:
            text: the spec.
            versioning: when given, the version is also validated by this system.

        Raises:
            InvalidAssetSpecError: the text does not parse or names an unsafe path.
            InvalidVersionError: ``versioning`` refuses the version.
        """
        if not isinstance(text, str):
            raise InvalidAssetSpecError(
                f"an asset spec must be a string, not {type(text).__name__}"
            )
        match = _SPEC.fullmatch(text)
        if match is None:
            raise InvalidAssetSpecError(
                "expected name[:version][[sub/part]] with at most one ':' and one trailing '[...]'",
                spec=text,
            )
        name, version, sub_part = match.group("name", "version", "sub")
        if version is not None and not version:
            raise InvalidAssetSpecError("version after ':' is empty", spec=text)
        if sub_part is not None and not sub_part:
            raise InvalidAssetSpecError("sub-part between '[' and ']' is empty", spec=text)
        spec = cls(name=name, version=version, sub_part=sub_part)
        if versioning is not None and version is not None:
            versioning.validate(version, spec=text)
        return spec

    def with_version(self, version: str | None) -> AssetSpec:
        """A copy of this spec with another version (the sub-part is kept)."""
        return AssetSpec(self.name, version, self.sub_part)

    def with_sub_part(self, sub_part: str | None) -> AssetSpec:
        """A copy of this spec with another sub-part (or none)."""
        return AssetSpec(self.name, self.version, sub_part)

    def _format(self) -> str:
        text = self.name
        if self.version is not None:
            text += f":{self.version}"
        if self.sub_part is not None:
            text += f"[{self.sub_part}]"
        return text

    def __str__(self) -> str:
        return self._format()

    def __repr__(self) -> str:
        return f"AssetSpec({self._format()!r})"
