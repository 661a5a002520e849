"""Where a model's asset comes from: ``asset_path``, env overrides, an override dir, the store.

Precedence, highest first (modelkit's order, with two of its surprises fixed):

==============================  ==================================================================
``asset_path``                  in ``model_settings`` or a ``required_models`` entry: used
                                verbatim, nothing is fetched
``AIOMODELKIT_<NAME>_FILE``     a path used verbatim, nothing is fetched
``assets_dir_override``         ``<dir>/<name>/<version>[/<sub-part>]``, honouring the version the
                                spec pins (modelkit ignores it); falls through when absent
the store                       fetched through the :class:`AssetsManager` into the cache
==============================  ==================================================================

``AIOMODELKIT_<NAME>_VERSION`` replaces the version that the last two ask for, **keeping
the sub-part** (modelkit drops it). ``<NAME>`` is the asset name upper-cased, each run of
``/``, ``-`` and ``.`` replaced by ``_``: ``models/my-clf`` → ``MODELS_MY_CLF``. modelkit's
``MODELKIT_<NAME>_FILE`` / ``_VERSION`` are read as fallbacks, with these semantics. The
variables themselves are read when :class:`~aiomodelkit.Settings` is built (its
``asset_overrides``; it is the one reader of the environment); this module only interprets
them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from ._errors import AssetNotFoundError, ConfigError, ModelkitError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ._fetch import FetchedAsset
    from ._spec import AssetSpec
    from ._versioning import VersioningSystem

    Fetch = Callable[[AssetSpec], Awaitable[FetchedAsset]]

__all__ = [
    "AssetPlan",
    "AssetSource",
    "LocatedAsset",
    "find_in_override_dir",
    "locate_asset",
    "plan_asset",
    "variable_stem",
]

AssetSource = Literal["asset_path", "env_file", "override_dir", "cache", "store"]
"""Where an asset was found: a verbatim path, the override dir, the cache or the store."""

_SEPARATORS = re.compile(r"[/.\-]+")
_PREFIXES = ("AIOMODELKIT_", "MODELKIT_")


def variable_stem(asset_name: str) -> str:
    """The ``<NAME>`` part of the override variables of an asset.

    Example:
        >>> variable_stem("models/my-clf.v2")
        'MODELS_MY_CLF_V2'
    """
    return _SEPARATORS.sub("_", asset_name).upper()


@dataclass(frozen=True, slots=True)
class AssetPlan:
    """What the library will do for one model's asset, decided before any I/O.

    Attributes:
        spec: the spec to look up or fetch (after a VERSION override), or None.
        path: a verbatim path (``asset_path`` or a FILE variable), or None.
        source: ``"asset_path"`` or ``"env_file"`` when ``path`` is set, else None.
        origin: what set ``path`` or the version, for messages (a variable or setting name).
    """

    spec: AssetSpec | None
    path: Path | None = None
    source: AssetSource | None = None
    origin: str | None = None


def _lookup(variables: Mapping[str, str], stem: str, suffix: str) -> tuple[str, str] | None:
    for prefix in _PREFIXES:
        name = f"{prefix}{stem}_{suffix}"
        if variables.get(name):
            return name, variables[name]
    return None


def plan_asset(
    spec: AssetSpec | None,
    model_settings: Mapping[str, Any],
    variables: Mapping[str, str],
    versioning: VersioningSystem,
    *,
    key: str,
) -> AssetPlan:
    """Apply ``asset_path``, FILE and VERSION overrides to one model's asset spec.

    Args:
        spec: the configured spec, or None for a model without an asset.
        model_settings: the merged settings, which may hold ``asset_path``.
        variables: override variables by upper-case name (``Settings.asset_overrides``).
        versioning: validates a VERSION override.
        key: the model's configuration key, for messages.

    Raises:
        ConfigError: ``asset_path`` is not a path.
        InvalidVersionError: the configured version, or a VERSION variable, is not valid for
            ``versioning``.
    """
    if spec is not None and spec.version is not None:
        try:  # a configured version this store cannot have: refused before any I/O
            versioning.validate(spec.version, spec=str(spec))
        except ModelkitError as exc:
            exc.add_note(f"in the configuration of model {key!r}")
            raise
    version = _lookup(variables, variable_stem(spec.name), "VERSION") if spec else None
    origin = None
    if spec is not None and version is not None:
        origin, value = version
        try:
            versioning.validate(value.strip(), asset=spec.name)
        except ModelkitError as exc:
            exc.add_note(f"from {origin}, for model {key!r}")
            raise
        spec = spec.with_version(value.strip())
    raw = model_settings.get("asset_path")
    if raw is not None:
        if not isinstance(raw, str | os.PathLike):
            raise ConfigError(f"model {key!r}: asset_path must be a path, not {raw!r}")
        return AssetPlan(spec, Path(raw), "asset_path", "asset_path")
    found = _lookup(variables, variable_stem(spec.name), "FILE") if spec else None
    if found is not None:
        return AssetPlan(spec, Path(found[1]), "env_file", found[0])
    return AssetPlan(spec, origin=origin)


def find_in_override_dir(
    root: Path, spec: AssetSpec, versioning: VersioningSystem
) -> tuple[str, Path] | None:
    """The version and path ``spec`` names under an override dir, or None (blocking).

    A complete version must be there as is; a partial or absent version picks the newest
    matching version present. Entries that are not valid versions (markers, staging
    copies) are ignored.
    """
    directory = root / spec.name
    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    versions = []
    for entry in entries:
        try:
            versions.append(versioning.validate(entry))
        except ModelkitError:
            continue
    try:
        version = versioning.resolve(versions, spec.version, asset=spec.name)
    except AssetNotFoundError:
        return None
    path = directory / version
    if spec.sub_part is not None:
        path = path.joinpath(*spec.sub_part.split("/"))
    return (version, path) if path.exists() else None


@dataclass(frozen=True, slots=True)
class LocatedAsset:
    """Where a model's asset was found.

    Attributes:
        path: the local path handed to the model.
        version: the exact version, when known (not for verbatim paths).
        source: ``asset_path``, ``env_file``, ``override_dir``, ``cache`` or ``store``.
    """

    path: Path
    version: str | None
    source: AssetSource


async def locate_asset(
    plan: AssetPlan,
    *,
    fetch: Fetch | None,
    override_dir: Path | None,
    versioning: VersioningSystem,
) -> LocatedAsset:
    """Find ``plan``'s asset: its verbatim path, else the override dir, else ``fetch`` it.

    Args:
        plan: what :func:`plan_asset` decided.
        fetch: fetches a spec into the cache (an assets manager's ``fetch``), or None
            when no model may need the store.
        override_dir: the ``assets_dir_override`` setting.
        versioning: picks the newest matching version in the override dir.

    Raises:
        AssetNotFoundError: a verbatim path is missing, or the store has no such asset.
        ConfigError: the asset must be fetched but there is nothing to fetch with.
    """
    asset = str(plan.spec or plan.path)
    if plan.path is not None:
        if not await anyio.Path(plan.path).exists():
            raise AssetNotFoundError(
                f"{plan.origin} names a missing path: {plan.path}", asset=asset
            )
        return LocatedAsset(plan.path, None, plan.source or "asset_path")
    if plan.spec is None:
        raise ConfigError("nothing to locate: no asset spec and no path")
    if override_dir is not None:
        found = await anyio.to_thread.run_sync(
            find_in_override_dir, override_dir, plan.spec, versioning
        )
        if found is not None:
            return LocatedAsset(found[1], found[0], "override_dir")
    if fetch is None:
        raise ConfigError("no assets manager to fetch with", asset=asset)
    fetched = await fetch(plan.spec)
    return LocatedAsset(fetched.path, fetched.version, "cache" if fetched.from_cache else "store")
