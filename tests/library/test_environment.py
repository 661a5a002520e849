"""Settings are the one reader of the environment: given settings, nothing else reads it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import pytest

from aiomodelkit import AssetsManager, ModelLibrary, Settings
from aiomodelkit._model import Model

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class _PoisonedEnviron(dict[str, str]):
    """Stands in for ``os.environ``: any read fails the test that caused it.

    Except looking for OpenTelemetry's own variables (``in``; they are absent here): once
    the application has imported it, its API looks for ``OTEL_PYTHON_TRACER_PROVIDER`` while
    our spans look for a provider, as the AWS credential chain reads ``AWS_*`` for S3 stores.
    """

    def _read(self, *args: Any) -> NoReturn:
        raise AssertionError(f"the environment was read: {args!r}")

    def __getitem__(self, key: str) -> NoReturn:
        self._read(key)

    def get(self, *args: Any) -> NoReturn:
        self._read(*args)

    def __contains__(self, key: object) -> bool:
        if not str(key).startswith("OTEL_"):
            self._read(key)
        return False

    def __iter__(self) -> Iterator[str]:
        self._read("iteration")

    def keys(self) -> NoReturn:
        self._read("keys")

    def items(self) -> NoReturn:
        self._read("items")

    def copy(self) -> NoReturn:
        self._read("copy")


class Weights(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/clf[weights.txt]"}}

    def _load(self) -> None:
        assert self.asset_path is not None
        self.text = self.asset_path.read_text()

    def _predict(self, item: str) -> str:
        return self.text


def test_poisoned_environ_refuses_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", _PoisonedEnviron())
    with pytest.raises(AssertionError, match="the environment was read"):
        os.getenv("HOME")  # noqa: TID251 - proves that the poisoned environ refuses reads
    with pytest.raises(AssertionError, match="the environment was read"):
        Settings.load()


async def test_explicit_settings_mean_no_environment_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "weights.txt").write_text("from the store")
    (tmp_path / "store").mkdir()
    settings = Settings(
        storage=(tmp_path / "store").as_uri(), assets_dir=tmp_path / "cache", pushed_by="t"
    )
    async with AssetsManager(settings=settings) as am:
        await am.new(source, "models/clf")
    # Variables that would change the outcome if anything below the entry point read them.
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AIOMODELKIT_STORAGE", "s3://nowhere")
    monkeypatch.setattr(os, "environ", _PoisonedEnviron())
    async with ModelLibrary(Weights, settings=settings) as lib:
        assert await lib.get("clf", Weights).predict("") == "from the store"
        assert lib.list_assets() == {"clf": lib.status()["clf"].asset}
    async with AssetsManager(settings=settings) as am:
        assert (await am.fetch("models/clf:0.0")).from_cache
        assert await am.versions("models/clf") == ["0.0"]


def test_settings_carry_the_per_asset_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMODELKIT_MODELS_CLF_VERSION", "1.2")
    monkeypatch.setenv("MODELKIT_MODELS_TOK_FILE", "/models/tok")
    monkeypatch.setenv("AIOMODELKIT_LOCK_FILE", "/a/setting/not/an/override")
    assert Settings().asset_overrides == {
        "AIOMODELKIT_MODELS_CLF_VERSION": "1.2",
        "MODELKIT_MODELS_TOK_FILE": "/models/tok",
    }
    # Explicit values win over the environment, as for every setting.
    assert Settings(asset_overrides={}).asset_overrides == {}
