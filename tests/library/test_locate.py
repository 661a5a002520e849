"""locate_asset: a verbatim path, else the override dir, else the fetch function it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aiomodelkit import AssetNotFoundError, ConfigError
from aiomodelkit._fetch import FetchedAsset
from aiomodelkit._overrides import AssetPlan, locate_asset
from aiomodelkit._spec import AssetSpec
from aiomodelkit._versioning import get_versioning

if TYPE_CHECKING:
    from pathlib import Path

MAJOR_MINOR = get_versioning("major_minor")


class _Fetches:
    """A fetch function that records what it was asked for (pure logic: no store)."""

    def __init__(self, root: Path, *, from_cache: bool = False) -> None:
        self.root = root
        self.from_cache = from_cache
        self.asked: list[str] = []

    async def __call__(self, spec: AssetSpec) -> FetchedAsset:
        self.asked.append(str(spec))
        return FetchedAsset(spec, "1.3", self.root / spec.name / "1.3", self.from_cache)


async def test_a_verbatim_path_is_used_as_is(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    fetch = _Fetches(tmp_path)
    plan = AssetPlan(AssetSpec.parse("models/clf:1"), weights, "env_file", "AIOMODELKIT_X_FILE")
    found = await locate_asset(plan, fetch=fetch, override_dir=None, versioning=MAJOR_MINOR)
    assert (found.path, found.version, found.source) == (weights, None, "env_file")
    assert fetch.asked == []
    missing = AssetPlan(None, tmp_path / "absent", "asset_path", "asset_path")
    with pytest.raises(AssetNotFoundError, match="asset_path names a missing path"):
        await locate_asset(missing, fetch=fetch, override_dir=None, versioning=MAJOR_MINOR)


async def test_the_override_dir_comes_before_the_store(tmp_path: Path) -> None:
    override = tmp_path / "override"
    (override / "models" / "clf" / "1.1").mkdir(parents=True)
    (override / "models" / "clf" / "1.1" / "a.txt").write_text("override")
    fetch = _Fetches(tmp_path / "cache", from_cache=True)
    plan = AssetPlan(AssetSpec.parse("models/clf:1[a.txt]"))
    found = await locate_asset(plan, fetch=fetch, override_dir=override, versioning=MAJOR_MINOR)
    assert (found.version, found.source) == ("1.1", "override_dir")
    assert found.path == override / "models" / "clf" / "1.1" / "a.txt"
    # A version the override dir lacks falls through to the fetch function.
    other = AssetPlan(AssetSpec.parse("models/clf:2"))
    found = await locate_asset(other, fetch=fetch, override_dir=override, versioning=MAJOR_MINOR)
    assert (found.version, found.source) == ("1.3", "cache")
    assert fetch.asked == ["models/clf:2"]


async def test_the_fetch_reports_store_or_cache(tmp_path: Path) -> None:
    plan = AssetPlan(AssetSpec.parse("models/clf"))
    fetch = _Fetches(tmp_path)
    found = await locate_asset(plan, fetch=fetch, override_dir=None, versioning=MAJOR_MINOR)
    assert (found.path, found.source) == (tmp_path / "models/clf/1.3", "store")


async def test_nothing_to_locate_or_nothing_to_fetch_with_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nothing to locate"):
        await locate_asset(AssetPlan(None), fetch=None, override_dir=None, versioning=MAJOR_MINOR)
    plan = AssetPlan(AssetSpec.parse("models/clf"))
    with pytest.raises(ConfigError, match="no assets manager") as info:
        await locate_asset(plan, fetch=None, override_dir=None, versioning=MAJOR_MINOR)
    assert info.value.asset == "models/clf"
