"""Versioning systems: how versions are validated, ordered, resolved and incremented.

A store is configured with one system (``major_minor`` by default, or ``simple_date``);
nothing here is process-global.

Example:
    >>> MAJOR_MINOR.resolve(["10.0", "1.3", "1.12", "0.1"], "1")
    '1.12'
    >>> MAJOR_MINOR.next_version(["1.3", "0.1"], bump_major=True)
    '2.0'
"""

from __future__ import annotations

import abc
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import AssetNotFoundError, ConfigError, InvalidVersionError
from ._spec import validate_version_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MAJOR_MINOR",
    "SIMPLE_DATE",
    "MajorMinorVersioning",
    "SimpleDateVersioning",
    "VersioningSystem",
    "get_versioning",
]


class VersioningSystem(abc.ABC):
    """The rules for one family of version strings."""

    #: the name used in settings (``AIOMODELKIT_VERSIONING``).
    name: ClassVar[str]

    @abc.abstractmethod
    def _check(self, version: str) -> None:
        """Raise ValueError with a reason if ``version`` is not valid for this system."""

    @abc.abstractmethod
    def sort_key(self, version: str) -> Any:
        """A key under which newer versions compare greater (the version must be valid)."""

    @abc.abstractmethod
    def initial_version(self) -> str:
        """The version of an asset's first publication."""

    @abc.abstractmethod
    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        """The version to publish after ``versions``.

        Raises:
            AssetNotFoundError: ``major`` has no versions.
            ConfigError: this system takes no such option.
        """

    def is_complete(self, version: str) -> bool:
        """Whether ``version`` pins one exact version (rather than a family such as ``1``)."""
        return True

    def matches(self, partial: str, version: str) -> bool:
        """Whether the complete ``version`` belongs to the (possibly partial) ``partial``."""
        return partial == version

    def validate(self, version: str, *, spec: str | None = None, asset: str | None = None) -> str:
        """Return ``version`` if valid, else raise.

        Raises:
            InvalidVersionError: naming the version and the rule it breaks.
        """
        validate_version_text(version, spec=spec)
        try:
            self._check(version)
        except ValueError as exc:
            raise InvalidVersionError(
                f"version {version!r} is not valid for {self.name} versioning: {exc}",
                spec=spec,
                asset=asset,
            ) from None
        return version

    def sort(self, versions: Iterable[str]) -> list[str]:
        """Distinct valid versions, newest first.

        Raises:
            InvalidVersionError: one of them is not valid for this system.
        """
        unique = {self.validate(v): None for v in versions}
        return sorted(unique, key=self.sort_key, reverse=True)

    def resolve(self, versions: Iterable[str], requested: str | None, *, asset: str = "") -> str:
        """Pick the version a spec asks for among ``versions``.

        ``None`` means the newest; a partial version the newest in its family; a complete
        version itself.

        Raises:
            AssetNotFoundError: nothing matches; the error lists the available versions.
        """
        ordered = self.sort(versions)
        if requested is None:
            if ordered:
                return ordered[0]
            raise AssetNotFoundError.no_version(asset, None, store_url=None, available=ordered)
        self.validate(requested, asset=asset)
        for version in ordered:
            if self.matches(requested, version):
                return version
        raise AssetNotFoundError.no_version(
            asset,
            requested,
            store_url=None,
            partial=not self.is_complete(requested),
            available=ordered,
        )


class MajorMinorVersioning(VersioningSystem):
    """``MAJOR.MINOR`` versions (modelkit's default): ``name:1`` is the newest ``1.x``.

    Numbers are compared as integers and written without leading zeros, so ``1.10`` is newer
    than ``1.9`` and ``1`` never matches ``10.x``.
    """

    name = "major_minor"
    _PATTERN = re.compile(r"(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?")

    def _check(self, version: str) -> None:
        if not self._PATTERN.fullmatch(version):
            raise ValueError("expected MAJOR or MAJOR.MINOR, integers without leading zeros")

    def _parts(self, version: str) -> tuple[int, int | None]:
        if not self._PATTERN.fullmatch(version):
            self.validate(version)  # raises InvalidVersionError, never a bare ValueError
        major, _, minor = version.partition(".")
        return int(major), (int(minor) if minor else None)

    def sort_key(self, version: str) -> tuple[int, int]:
        major, minor = self._parts(version)
        return major, (minor if minor is not None else -1)

    def is_complete(self, version: str) -> bool:
        return self._parts(version)[1] is not None

    def matches(self, partial: str, version: str) -> bool:
        want_major, want_minor = self._parts(partial)
        major, minor = self._parts(version)
        return major == want_major and (want_minor is None or minor == want_minor)

    def initial_version(self) -> str:
        return "0.0"

    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        ordered = self.sort(versions)
        if not ordered:
            return self.initial_version()
        if bump_major:
            return f"{self._parts(ordered[0])[0] + 1}.0"
        if major is not None:
            self.validate(major)
            if self.is_complete(major):
                raise InvalidVersionError(f"major {major!r} must be a bare integer such as '1'")
            newest = self.resolve(ordered, major)
        else:
            newest = ordered[0]
        newest_major, newest_minor = self._parts(newest)
        return f"{newest_major}.{(newest_minor or 0) + 1}"


class SimpleDateVersioning(VersioningSystem):
    """UTC timestamps ``YYYY-MM-DDThh-mm-ssZ``: every version is complete, newest wins.

    Two publications in the same second get distinct versions (the second one is moved one
    second later), unlike modelkit where they collide.
    """

    name = "simple_date"
    _FORMAT = "%Y-%m-%dT%H-%M-%SZ"
    _PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z")

    def _check(self, version: str) -> None:
        if not self._PATTERN.fullmatch(version):
            raise ValueError("expected YYYY-MM-DDThh-mm-ssZ")
        datetime.strptime(version, self._FORMAT)  # raises ValueError for 2024-13-45

    def sort_key(self, version: str) -> str:
        # Fixed-width, zero-padded fields: lexicographic order is chronological order.
        return version

    def initial_version(self) -> str:
        return datetime.now(UTC).strftime(self._FORMAT)

    def next_version(
        self, versions: Sequence[str], *, bump_major: bool = False, major: str | None = None
    ) -> str:
        if bump_major or major is not None:
            raise ConfigError("simple_date versioning has no major versions")
        candidate = datetime.now(UTC).replace(microsecond=0)
        ordered = self.sort(versions)
        if ordered:
            newest = datetime.strptime(ordered[0], self._FORMAT).replace(tzinfo=UTC)
            try:
                candidate = max(candidate, newest + timedelta(seconds=1))
            except OverflowError:  # 9999-12-31T23-59-59Z: no representable successor
                raise InvalidVersionError(
                    f"no simple_date version can follow {ordered[0]!r}"
                ) from None
        return candidate.strftime(self._FORMAT)


MAJOR_MINOR = MajorMinorVersioning()
SIMPLE_DATE = SimpleDateVersioning()
_SYSTEMS: dict[str, VersioningSystem] = {s.name: s for s in (MAJOR_MINOR, SIMPLE_DATE)}


def get_versioning(name: str | VersioningSystem) -> VersioningSystem:
    """The versioning system called ``name`` (``major_minor`` or ``simple_date``).

    Raises:
        ConfigError: no system has that name.
    """
    if isinstance(name, VersioningSystem):
        return name
    try:
        return _SYSTEMS[name]
    except KeyError:
        raise ConfigError(
            f"unknown versioning system {name!r}; choose one of {', '.join(sorted(_SYSTEMS))}"
        ) from None
