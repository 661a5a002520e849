"""Settings: precedence of arguments, AIOMODELKIT_*, MODELKIT_* fallbacks and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiomodelkit import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.storage is None
    assert settings.versioning == "major_minor"
    assert settings.assets_dir == Path.home() / ".cache" / "aiomodelkit" / "assets"
    assert settings.max_connections == 64
    assert "@" in settings.identity()


def test_prefixed_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOMODELKIT_STORAGE", "s3://bucket/prefix")
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path))
    monkeypatch.setenv("AIOMODELKIT_VERSIONING", "simple_date")
    monkeypatch.setenv("AIOMODELKIT_PUSHED_BY", "ci@builder")
    settings = Settings()
    assert settings.storage == "s3://bucket/prefix"
    assert settings.assets_dir == tmp_path
    assert settings.versioning == "simple_date"
    assert settings.identity() == "ci@builder"
    # The pool holds the data budget and, on top, metadata's own (adaptive_concurrency).
    assert settings.store_options().max_connections == 64 + 8
    assert Settings(adaptive_concurrency=False).store_options().max_connections == 64


def test_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIOMODELKIT_STORAGE", "s3://from-env")
    monkeypatch.setenv("MODELKIT_STORAGE_PROVIDER", "gcs")
    monkeypatch.setenv("MODELKIT_STORAGE_BUCKET", "from-modelkit")
    assert Settings(storage="gs://explicit").storage == "gs://explicit"
    assert Settings.load(storage=None).storage == "s3://from-env"  # None means "not given"


def test_prefixed_beats_modelkit_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELKIT_ASSETS_DIR", str(tmp_path / "modelkit"))
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "ours"))
    assert Settings().assets_dir == tmp_path / "ours"


@pytest.mark.parametrize(
    ("provider", "bucket", "prefix", "expected"),
    [
        ("s3", "bkt", None, "s3://bkt/modelkit-assets"),
        ("gcs", "bkt", "team/a", "gs://bkt/team/a"),
        ("local", "/data", None, "file:///data/modelkit-assets"),
        ("", "ignored", None, None),
    ],
)
def test_modelkit_storage_fallback(
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    bucket: str,
    prefix: str | None,
    expected: str | None,
) -> None:
    monkeypatch.setenv("MODELKIT_STORAGE_PROVIDER", provider)
    monkeypatch.setenv("MODELKIT_STORAGE_BUCKET", bucket)
    if prefix is not None:
        monkeypatch.setenv("MODELKIT_STORAGE_PREFIX", prefix)
    assert Settings().storage == expected


def test_modelkit_dir_and_versioning_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELKIT_ASSETS_DIR", str(tmp_path))
    monkeypatch.setenv("MODELKIT_ASSETS_VERSIONING_SYSTEM", "simple_date")
    settings = Settings()
    assert settings.assets_dir == tmp_path
    assert settings.versioning == "simple_date"


def test_unprefixed_variables_are_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STORAGE", "ASSETS_DIR", "VERSIONING", "BUCKET", "PUSHED_BY", "MAX_CONNECTIONS"):
        monkeypatch.setenv(name, "1")
    settings = Settings()
    assert settings.storage is None
    assert settings.max_connections == 64
    assert settings.versioning == "major_minor"


def test_modelkit_provider_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELKIT_STORAGE_PROVIDER", "az")  # modelkit's Azure: supported
    monkeypatch.setenv("MODELKIT_STORAGE_BUCKET", "container")
    assert Settings().storage == "az://container/modelkit-assets"
    monkeypatch.setenv("MODELKIT_STORAGE_PROVIDER", "ftp")
    with pytest.raises(ConfigError, match="'ftp' is not supported"):
        Settings()
    monkeypatch.setenv("MODELKIT_STORAGE_PROVIDER", "s3")
    monkeypatch.setenv("MODELKIT_STORAGE_BUCKET", "")
    with pytest.raises(ConfigError, match="MODELKIT_STORAGE_BUCKET is empty"):
        Settings()


def test_invalid_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOMODELKIT_MAX_CONNECTIONS", "0")
    with pytest.raises(ConfigError, match="AIOMODELKIT_MAX_CONNECTIONS"):
        Settings.load()
    monkeypatch.delenv("AIOMODELKIT_MAX_CONNECTIONS")
    with pytest.raises(ConfigError, match="versioning"):
        Settings.load(versioning="semver")
    with pytest.raises(ConfigError, match="unknown_option"):
        Settings.load(unknown_option=1)


def test_the_multipart_threshold_is_a_setting_the_s3_store_follows() -> None:
    from aiomodelkit.stores import open_store

    settings = Settings(multipart_threshold=256 * 1024 * 1024)
    store = open_store("s3://bucket", options=settings.store_options())
    assert store._multipart_threshold == 256 * 1024 * 1024  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="AIOMODELKIT_MULTIPART_THRESHOLD"):
        Settings.load(multipart_threshold=1024)


@pytest.mark.parametrize(
    ("text", "size"),
    [("5368709120", 5 * 1024**3), ("256MiB", 256 * 1024**2), ("5 GiB", 5 * 1024**3)],
)
def test_sizes_on_the_command_line(text: str, size: int) -> None:
    from aiomodelkit._cli._options import parse_size

    assert parse_size(text) == size
