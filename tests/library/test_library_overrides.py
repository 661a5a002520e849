"""ModelLibrary asset overrides (version, file, directory) and warm starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from aiomodelkit import AssetNotFoundError, AssetsManager, Settings, _singleflight
from aiomodelkit._errors import LoadError
from aiomodelkit._library import ModelLibrary
from aiomodelkit._model import Model
from aiomodelkit.stores import MemoryStore
from aiomodelkit.testing import InstrumentedStore

from ._helpers import _settings, publish

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path


class Weights(Model[str, str]):
    """Predicts the text of its asset (a ``weights.txt`` file)."""

    CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/clf:0.0[weights.txt]"}}

    def _load(self) -> None:
        assert self.asset_path is not None
        self.text = self.asset_path.read_text()

    def _predict(self, item: str) -> str:
        return self.text


async def _predict_clf(store: MemoryStore, settings: Settings, **options: Any) -> tuple[str, Any]:
    async with (
        AssetsManager(storage=store, settings=settings) as am,
        ModelLibrary(Weights, assets_manager=am, settings=settings, **options) as lib,
    ):
        return await lib.get("clf", Weights).predict(""), lib.status()["clf"]


async def test_version_override_keeps_the_sub_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/clf", "v0")
    await publish(store, tmp_path, "models/clf", "v1")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_VERSION", "0.1")
    text, status = await _predict_clf(store, _settings(tmp_path))
    assert text == "v1"
    assert str(status.asset) == "models/clf:0.1[weights.txt]"  # modelkit would drop [weights.txt]
    assert status.asset_path.name == "weights.txt"
    assert ModelLibrary(Weights).list_assets() == {"clf": status.asset}


async def test_file_override_skips_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore()
    local = tmp_path / "local.txt"
    local.write_text("from env")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(local))
    text, status = await _predict_clf(store, _settings(tmp_path))
    assert (text, status.asset_path, status.asset_source) == ("from env", local, "env_file")
    assert store.requests == 0
    assert ModelLibrary(Weights).list_assets() == {}
    # modelkit's variable is a fallback.
    monkeypatch.delenv("AIOMODELKIT_MODELS_CLF_FILE")
    monkeypatch.setenv("MODELKIT_MODELS_CLF_FILE", str(local))
    assert (await _predict_clf(store, _settings(tmp_path)))[0] == "from env"
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(tmp_path / "absent"))
    with pytest.raises(LoadError, match="AIOMODELKIT_MODELS_CLF_FILE names a missing path") as info:
        await _predict_clf(store, _settings(tmp_path))
    assert isinstance(info.value.__cause__, AssetNotFoundError)
    assert store.requests == 0


def _override_dir(tmp_path: Path) -> Path:
    root = tmp_path / "override"
    for version in ("0.0", "0.1"):
        (root / "models" / "clf" / version).mkdir(parents=True)
        (root / "models" / "clf" / version / "weights.txt").write_text(f"override {version}")
    (root / "models" / "clf" / "0.1.incomplete-0123abcd").mkdir()  # never picked
    return root


async def test_override_dir_honours_the_version(tmp_path: Path) -> None:
    store = MemoryStore()  # empty: any fetch would fail
    settings = _settings(tmp_path, assets_dir_override=_override_dir(tmp_path))
    text, status = await _predict_clf(store, settings)
    assert (text, status.asset_source, status.asset_version) == (
        "override 0.0",  # the pinned version, not the newest there (as modelkit would)
        "override_dir",
        "0.0",
    )
    partial = {"clf": {"asset": "models/clf:0[weights.txt]"}}
    assert (await _predict_clf(store, settings, configuration=partial))[0] == "override 0.1"
    assert store.requests == 0
    # Absent from the override dir: falls through to the store.
    await publish(store, tmp_path, "models/other", "from the store")
    other = {"clf": {"asset": "models/other[weights.txt]"}}
    text, status = await _predict_clf(store, settings, configuration=other)
    assert (text, status.asset_source) == ("from the store", "store")


async def test_override_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    await publish(store, tmp_path, "models/clf", "store")
    explicit, env_file = tmp_path / "explicit.txt", tmp_path / "env.txt"
    explicit.write_text("asset_path")
    env_file.write_text("env file")
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(env_file))
    with_dir = _settings(tmp_path, assets_dir_override=_override_dir(tmp_path))
    by_setting = {"clf": {"asset_path": str(explicit)}}
    assert (await _predict_clf(store, with_dir, required_models=by_setting))[0] == "asset_path"
    assert (await _predict_clf(store, with_dir))[0] == "env file"
    monkeypatch.delenv("AIOMODELKIT_MODELS_CLF_FILE")
    # Settings read the environment when they are built: these still hold the FILE variable.
    assert (await _predict_clf(store, with_dir))[0] == "env file"
    with_dir = _settings(tmp_path, assets_dir_override=tmp_path / "override")
    assert (await _predict_clf(store, with_dir))[0] == "override 0.0"
    assert (await _predict_clf(store, _settings(tmp_path)))[0] == "store"


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
async def test_a_warm_start_looks_up_every_asset_in_one_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    """Pinned and cached: one worker-thread hop for every lookup, no store client."""
    store = MemoryStore()
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w")
    keys = [f"m{index:02d}" for index in range(50)]
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        for key in keys:
            await am.new(source, f"models/{key}")
            await am.fetch(f"models/{key}:0.0")
    configurations = {key: {"asset": f"models/{key}:0.0"} for key in keys}

    class Warm(Model[int, int]):
        CONFIGURATIONS: ClassVar = configurations

        async def _load(self) -> None:
            assert self.asset_path is not None

        def _predict(self, item: int) -> int:
            return item

    rounds: list[int] = []
    run_all = _singleflight._run_all

    def spy(calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        rounds.append(len(calls))
        return run_all(calls)

    monkeypatch.setattr(_singleflight, "_run_all", spy)
    counted = InstrumentedStore(store)
    settings = _settings(tmp_path, offline=offline)
    async with (
        AssetsManager(storage=counted, settings=settings) as am,
        ModelLibrary([Warm], assets_manager=am, settings=settings) as lib,
    ):
        sources = {status.asset_source for status in lib.status().values()}
        assert am.store is not None
        assert not am.store.opened  # type: ignore[attr-defined]
    assert sources == {"cache"}
    assert rounds == [50]
    assert counted.requests == 0
