"""Issue 13, first items: bad versions, contradictory flags, a file as the assets directory, a
mistyped or partial lock file and an unreadable index are each one typed error (one line from
the CLI), raised before anything is read or written."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pytest
from typer.testing import CliRunner

from aiomodelkit import (
    AssetsManager,
    CacheError,
    ConfigError,
    InvalidVersionError,
    ModelLibrary,
    Settings,
)
from aiomodelkit._cli import app
from aiomodelkit._model import Model
from aiomodelkit._spec import AssetSpec
from aiomodelkit.stores import MemoryStore
from aiomodelkit.testing import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
BAD_VERSIONS = ["1.2.3", "1.x", "x", "01", "1.02"]


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(assets_dir=tmp_path / "cache", pushed_by="t", **values)  # type: ignore[arg-type]


async def _published(tmp_path: Path) -> InstrumentedStore:
    store = InstrumentedStore(MemoryStore())
    source = tmp_path / "w.bin"
    source.write_bytes(b"w")
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.new(source, "models/clf")
    return store


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_a_bad_version_is_one_typed_error_before_any_request(
    tmp_path: Path, version: str, offline: bool
) -> None:
    store = await _published(tmp_path)
    before = store.requests
    async with AssetsManager(storage=store, settings=_settings(tmp_path), offline=offline) as am:
        with pytest.raises(InvalidVersionError, match="major_minor versioning") as text:
            await am.fetch(f"models/clf:{version}")
        assert text.value.spec == f"models/clf:{version}"
        with pytest.raises(InvalidVersionError, match="major_minor versioning"):
            await am.fetch(AssetSpec("models/clf", version))
        with pytest.raises(InvalidVersionError):
            await am.fetch_many(["models/clf:0.0", f"models/clf:{version}"])
    assert store.requests == before


def test_versioning_never_lets_a_bare_value_error_out() -> None:
    from aiomodelkit._versioning import get_versioning

    versioning = get_versioning("major_minor")
    for version in BAD_VERSIONS:
        with pytest.raises(InvalidVersionError):
            versioning.is_complete(version)
        with pytest.raises(InvalidVersionError):
            versioning.matches(version, "1.2")


class _Clf(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"clf": {"asset": "models/clf:1.2.3"}}

    def _predict(self, item: str) -> str:
        return item


async def test_a_library_refuses_a_bad_configured_version_before_any_io(tmp_path: Path) -> None:
    store = await _published(tmp_path)
    before = store.requests
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        library = ModelLibrary(_Clf, assets_manager=am, settings=_settings(tmp_path))
        with pytest.raises(InvalidVersionError, match=r"'1\.2\.3'") as info:
            async with library:
                pass
    assert "in the configuration of model 'clf'" in info.value.__notes__
    assert store.requests == before


async def test_contradictory_update_options_publish_nothing(tmp_path: Path) -> None:
    store = await _published(tmp_path)
    before = store.requests
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        with pytest.raises(ConfigError, match="contradict"):
            await am.update(tmp_path / "w.bin", "models/clf", bump_major=True, major="0")
        assert store.requests == before  # refused before the store was asked anything
        assert await am.versions("models/clf") == ["0.0"]


async def test_an_assets_dir_that_is_a_file_is_a_cache_error(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    with pytest.raises(CacheError, match="is a file, not a directory"):
        async with AssetsManager(a_file, storage=MemoryStore(), settings=_settings(tmp_path)):
            pass
    assert a_file.read_text() == "x"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("AIOMODELKIT_STORAGE", root.as_uri())
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AIOMODELKIT_PUSHED_BY", "cli-tester")
    (tmp_path / "w.bin").write_bytes(b"w")
    done = runner.invoke(app, ["assets", "new", str(tmp_path / "w.bin"), "models/clf", "--yes"])
    assert done.exit_code == 0, done.output
    return root


def _one_error_line(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert result.exit_code == 1  # type: ignore[attr-defined]
    return lines[0]


@pytest.mark.parametrize("extra", [[], ["--offline"]], ids=["online", "offline"])
@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_cli_bad_version_is_one_line(store: Path, version: str, extra: list[str]) -> None:
    result = runner.invoke(app, ["assets", "fetch", f"models/clf:{version}", *extra])
    line = _one_error_line(result)
    assert f"version '{version}' is not valid for major_minor versioning" in line


def test_cli_contradictory_update_flags_publish_nothing(store: Path, tmp_path: Path) -> None:
    args = ["assets", "update", str(tmp_path / "w.bin"), "models/clf", "--yes"]
    result = runner.invoke(app, [*args, "--bump-major", "--major", "0"])
    assert "--bump-major and --major 0 contradict" in _one_error_line(result)
    listed = runner.invoke(app, ["assets", "versions", "models/clf"])
    assert "1.0" not in listed.stdout
    assert "0.1" not in listed.stdout


def test_cli_assets_dir_that_is_a_file_is_one_line(store: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = runner.invoke(app, ["assets", "fetch", "models/clf:0.0", "--assets-dir", str(a_file)])
    assert "is a file, not a directory" in _one_error_line(result)


def test_cli_list_names_an_unreadable_asset_and_lists_the_others(store: Path) -> None:
    (store / "models" / "dated.versions").write_text('{"versions": ["2024-01-01T00-00-00Z"]}')
    result = runner.invoke(app, ["assets", "list"])
    line = _one_error_line(result)
    assert line.startswith("error: cannot list the versions of models/dated:")
    assert "major_minor" in line
    assert "models/clf" in result.stdout
    assert "0.0" in result.stdout


def test_cli_version() -> None:
    from aiomodelkit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aiomodelkit {__version__}"


async def test_a_named_lock_file_must_exist(tmp_path: Path) -> None:
    store = await _published(tmp_path)
    settings = _settings(tmp_path, lock_file=tmp_path / "nosuch.lock")
    with pytest.raises(ConfigError, match=r"lock file '.*nosuch\.lock' does not exist"):
        async with AssetsManager(storage=store, settings=settings):
            pass


async def test_a_spec_the_lock_file_does_not_cover_is_refused_unless_allowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await _published(tmp_path)
    lock_path = tmp_path / "assets.lock"
    async with AssetsManager(storage=store, settings=_settings(tmp_path)) as am:
        await am.lock(["models/clf:0"], lock_path)
    before = store.requests
    async with AssetsManager(
        storage=store, settings=_settings(tmp_path, lock_file=lock_path)
    ) as am:
        assert (await am.fetch("models/clf:0")).source == "lock"
        assert (await am.fetch("models/clf:0.0")).version == "0.0"  # exact: needs no lock
        with pytest.raises(ConfigError, match=r"models/clf is not in the lock file .*assets\.lock"):
            await am.fetch("models/clf")
    allowed = _settings(tmp_path, lock_file=lock_path, allow_unlocked=True)
    async with AssetsManager(storage=store, settings=allowed) as am:
        unlocked = await am.fetch("models/clf")
    assert (unlocked.version, unlocked.source) == ("0.0", "cache")  # resolved from the index
    assert "models/clf is not in the lock file" in caplog.text
    assert store.requests > before  # only the allowed one asked the store


def test_cli_lock_file_typo_and_uncovered_spec(store: Path, tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["assets", "fetch", "models/clf:0", "--lock-file", str(tmp_path / "nosuch.lock")]
    )
    assert "nosuch.lock' does not exist" in _one_error_line(missing)
    lock = tmp_path / "aiomodelkit.lock"
    locked = runner.invoke(app, ["assets", "lock", "models/clf:0", "-o", str(lock)])
    assert locked.exit_code == 0, locked.output
    uncovered = runner.invoke(app, ["assets", "fetch", "models/clf", "--lock-file", str(lock)])
    assert "models/clf is not in the lock file" in _one_error_line(uncovered)
    allowed = runner.invoke(
        app, ["assets", "fetch", "models/clf", "--lock-file", str(lock), "--allow-unlocked"]
    )
    assert allowed.exit_code == 0, allowed.output
    # The library's warning reaches the user as one labelled line, not a bare message.
    (warning,) = [line for line in allowed.stderr.splitlines() if "lock file" in line]
    assert warning == f"warning: models/clf is not in the lock file {lock}: resolved afresh"


def test_cli_lock_writes_the_lock_file_the_environment_names(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "from-env.lock"
    monkeypatch.setenv("AIOMODELKIT_LOCK_FILE", str(lock))
    locked = runner.invoke(app, ["assets", "lock", "models/clf:0", "-o", str(lock)])
    assert locked.exit_code == 0, locked.output
    fetched = runner.invoke(app, ["assets", "fetch", "models/clf:0"])
    assert fetched.exit_code == 0, fetched.output
