"""``cache.prune``: the rules, and what it never removes (pinned, in use, being downloaded),
across processes too; ``cache_max_bytes`` under a fetch loop."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, ClassVar

import anyio
import filelock
import pytest

from aiomodelkit import (
    AssetsManager,
    CacheError,
    ConfigError,
    Model,
    ModelLibrary,
    Settings,
    cache,
)
from aiomodelkit._cache_os import owner

from ._helpers import SIZES, SPECS, Store, set_last_used

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="in-use registration needs flock")


def _specs(versions: tuple[cache.CachedVersion, ...]) -> list[str]:
    return [v.spec for v in versions]


def _ages(root: Path, **days: float) -> None:
    """Set each version's last use ``days`` ago (keys: specs with ``_`` for ``/ : .``)."""
    now = time.time()
    for spec in SPECS:
        key = spec.replace("/", "_").replace(":", "_").replace(".", "_")
        set_last_used(root, spec, now - days.get(key, 0) * 86400)


def test_keep_latest(ours: Path) -> None:
    report = cache.prune(ours, keep_latest=1)
    assert set(_specs(report.removed)) == {"models/clf:0.0", "models/clf:0.1"}
    assert _specs(cache.scan(ours).versions) == ["models/clf:1.0", "models/tok:0.0"]
    assert (report.size_before, report.size_after, report.freed) == (730, 430, 300)
    assert not report.dry_run


def test_older_than(ours: Path) -> None:
    _ages(ours, models_clf_0_0=40, models_clf_0_1=10, models_tok_0_0=31)
    report = cache.prune(ours, older_than=timedelta(days=30))
    assert _specs(report.removed) == ["models/clf:0.0", "models/tok:0.0"]


def test_max_size_removes_the_least_recently_used_first(ours: Path) -> None:
    _ages(ours, models_clf_1_0=3, models_clf_0_1=1, models_clf_0_0=2, models_tok_0_0=0)
    report = cache.prune(ours, max_size=300)
    assert _specs(report.removed) == ["models/clf:1.0", "models/clf:0.0"]  # 730 - 400 - 100
    assert report.size_after == 230
    assert cache.scan(ours).total_size == 230


def test_filters_combine(ours: Path) -> None:
    _ages(ours, models_clf_1_0=100, models_clf_0_1=100, models_clf_0_0=1)
    # Older than 30 days AND not the newest of its asset: only 0.1.
    report = cache.prune(ours, older_than=timedelta(days=30), keep_latest=1)
    assert _specs(report.removed) == ["models/clf:0.1"]


def test_no_rule_removes_only_garbage(ours: Path) -> None:
    folder = ours / "models" / "clf"
    host = owner().rpartition("-")[0]
    stale = folder / f"1.1.incomplete-{host}-999999999-deadbeef"
    stale.mkdir()
    (stale / "part").write_bytes(b"x" * 5)
    live = folder / f"1.2.incomplete-{host}-{os.getpid()}-cafef00d"
    live.write_bytes(b"y")
    (ours / "models" / "tok" / "0.0" / ".SUCCESS").unlink()  # an interrupted download
    report = cache.prune(ours)
    assert _specs(report.removed) == ["models/tok:0.0"]
    assert [left.path for left in report.leftovers] == [stale]
    assert not stale.exists()
    assert live.exists()  # this process is alive: its download goes on
    assert _specs(cache.scan(ours).versions) == SPECS[:3]


def test_dry_run_changes_nothing(ours: Path) -> None:
    before = sorted(ours.rglob("*"))
    report = cache.prune(ours, max_size=0, dry_run=True)
    assert report.dry_run
    assert set(_specs(report.removed)) == set(SPECS)
    assert report.size_after == 0
    assert sorted(ours.rglob("*")) == before


def test_each_version_is_renamed_away_then_deleted(
    ours: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiomodelkit._cache_prune as prune_module

    deleted: list[Path] = []
    delete = prune_module._delete

    def spy(path: Path) -> None:
        assert ".replaced-" in path.name  # never the version's own path
        assert not path.with_name(path.name.partition(".replaced-")[0]).exists()
        deleted.append(path)
        delete(path)

    monkeypatch.setattr(prune_module, "_delete", spy)
    cache.prune(ours, max_size=0)
    assert len(deleted) == 4
    left = sorted(str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    # What stays: the download locks (never deleted, as modelkit's) and the tag.
    assert left == [
        ".locks/.in-use.lock",
        ".locks/models/clf/0.0.lock",
        ".locks/models/clf/0.1.lock",
        ".locks/models/clf/1.0.lock",
        ".locks/models/tok/0.0.lock",
        "CACHEDIR.TAG",
    ]


def test_versions_a_lock_file_pins_stay(store: Store, ours: Path, tmp_path: Path) -> None:
    lock = tmp_path / "service.lock"

    async def write_lock() -> None:
        async with AssetsManager(settings=store.settings(tmp_path / "other")) as am:
            await am.lock(["models/clf:0", "models/tok"], lock)

    anyio.run(write_lock)
    report = cache.prune(ours, max_size=0, keep_lock_files=[lock])
    assert set(_specs(report.removed)) == {"models/clf:1.0", "models/clf:0.0"}
    assert {(k.version.spec, k.reason) for k in report.kept} == {
        ("models/clf:0.1", "pinned by a lock file"),
        ("models/tok:0.0", "pinned by a lock file"),
    }
    with pytest.raises(ConfigError, match="does not exist"):
        cache.prune(ours, keep_lock_files=[tmp_path / "nosuch.lock"])


def test_a_version_being_downloaded_stays(ours: Path, theirs: Path) -> None:
    with filelock.FileLock(ours / ".locks" / "models" / "clf" / "0.1.lock"):  # force=True, say
        report = cache.prune(ours, max_size=0)
    assert [(k.version.spec, k.reason) for k in report.kept] == [
        ("models/clf:0.1", "being downloaded")
    ]
    # modelkit locks a whole name while it downloads (in place, without a marker yet).
    (theirs / "models" / "clf" / ".1.0.SUCCESS").unlink()
    with filelock.FileLock(theirs / ".cache" / "models" / "clf.lock"):
        report = cache.prune(theirs, keep_latest=1)
    assert _specs(report.removed) == []
    assert {(k.version.spec, k.reason) for k in report.kept} == {
        ("models/clf:0.0", "being downloaded by modelkit"),
    }
    report = cache.prune(theirs, keep_latest=1)  # modelkit is done: its partial copy goes too
    assert set(_specs(report.removed)) == {"models/clf:1.0", "models/clf:0.0"}


def test_a_modelkit_cache_is_pruned_like_ours(theirs: Path) -> None:
    report = cache.prune(theirs, keep_latest=1)
    assert set(_specs(report.removed)) == {"models/clf:0.1", "models/clf:0.0"}
    assert _specs(cache.scan(theirs).versions) == ["models/clf:1.0", "models/tok:0.0"]
    assert not (theirs / "models" / "clf" / ".0.0.SUCCESS").exists()  # no marker left behind


async def test_versions_an_open_manager_serves_stay(store: Store, ours: Path) -> None:
    async with AssetsManager(settings=store.settings(ours)) as am:
        await am.fetch("models/clf:0.0")
        report = await anyio.to_thread.run_sync(partial(cache.prune, ours, max_size=0))
        assert [(k.version.spec, k.reason) for k in report.kept] == [("models/clf:0.0", "in use")]
        assert (await am.fetch("models/clf:0.0")).from_cache
    report = await anyio.to_thread.run_sync(partial(cache.prune, ours, max_size=0))
    assert _specs(report.removed) == ["models/clf:0.0"]


class Tok(Model[str, str]):
    CONFIGURATIONS: ClassVar = {"tok": {"asset": "models/tok:0.0[vocab.txt]"}}

    def _predict(self, item: str) -> str:
        return item


async def test_versions_a_serving_library_uses_stay(store: Store, ours: Path) -> None:
    async with ModelLibrary([Tok], settings=store.settings(ours)) as lib:
        path = lib.get("tok").asset_path
        assert path is not None
        assert await anyio.Path(path).read_bytes() == b"v" * 10
        report = await anyio.to_thread.run_sync(partial(cache.prune, ours, max_size=0))
        assert [(k.version.spec, k.reason) for k in report.kept] == [("models/tok:0.0", "in use")]
        assert len(report.removed) == 3


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import anyio
    from aiomodelkit import AssetsManager, Settings
    from aiomodelkit.stores import LocalStore
    from aiomodelkit.testing import Fault, InstrumentedStore

    store_root, cache, gate = map(Path, sys.argv[1:4])


    def stall(key: str) -> bool:
        # Holds the whole process in the middle of downloading models/tok:0.0: its staging
        # directory exists and its download lock is held, until the test says "go".
        if key.startswith("models/tok/0.0/"):
            (gate / "ready").touch()
            while not (gate / "go").exists():
                time.sleep(0.01)
        return False


    async def main() -> None:
        store = InstrumentedStore(LocalStore(store_root))
        store.inject(Fault(match=stall))
        settings = Settings(assets_dir=cache, pushed_by="test")
        async with AssetsManager(storage=store, settings=settings) as am:
            await am.fetch("models/clf:0.0")  # a hit: in use from now on
            if sys.argv[4] == "hold":
                (gate / "ready").touch()
                await anyio.sleep_forever()
            print(await am.fetch("models/tok:0.0"), flush=True)
            (gate / "fetched").touch()
            while not (gate / "exit").exists():
                await anyio.sleep(0.01)


    anyio.run(main)
    """
)


@asynccontextmanager
async def _other_process(*argv: str) -> AsyncIterator[anyio.abc.Process]:
    """The holder script in another process, killed if the test fails (anyio's own exit
    would wait for it forever)."""
    async with await anyio.open_process([sys.executable, "-c", _HOLDER, *argv]) as process:
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()


async def _wait_for(path: Path, process: anyio.abc.Process) -> None:
    with anyio.fail_after(30):
        while not await anyio.Path(path).exists():
            assert process.returncode is None, "the other process ended early"
            await anyio.sleep(0.01)


async def test_another_process_mid_download(store: Store, tmp_path: Path) -> None:
    """Another process holds clf:0.0 and is downloading tok:0.0: prune takes neither, nor
    the staging copy, and that download then completes."""
    shared = tmp_path / "shared"
    async with AssetsManager(settings=store.settings(shared)) as am:
        await am.fetch_many(["models/clf:1.0", "models/clf:0.1", "models/clf:0.0"])
    gate = tmp_path / "gate"
    gate.mkdir()
    async with _other_process(str(store.root), str(shared), str(gate), "download") as other:
        await _wait_for(gate / "ready", other)
        staging = [p for p in (shared / "models" / "tok").iterdir() if ".incomplete-" in p.name]
        assert len(staging) == 1
        report = await anyio.to_thread.run_sync(partial(cache.prune, shared, max_size=0))
        assert set(_specs(report.removed)) == {"models/clf:1.0", "models/clf:0.1"}
        assert [(k.version.spec, k.reason) for k in report.kept] == [("models/clf:0.0", "in use")]
        assert report.leftovers == ()
        assert staging[0].is_dir()  # its owner runs: never stale
        await anyio.Path(gate / "go").touch()
        await _wait_for(gate / "fetched", other)
        listing = await anyio.to_thread.run_sync(cache.scan, shared)
        assert [(v.spec, v.complete, v.in_use) for v in listing.versions] == [
            ("models/clf:0.0", True, True),
            ("models/tok:0.0", True, True),
        ]
        report = await anyio.to_thread.run_sync(partial(cache.prune, shared, max_size=0))
        assert report.removed == ()
        await anyio.Path(gate / "exit").touch()
        assert await other.wait() == 0
    report = await anyio.to_thread.run_sync(partial(cache.prune, shared, max_size=0))
    assert set(_specs(report.removed)) == {"models/clf:0.0", "models/tok:0.0"}


async def test_a_killed_process_holds_nothing(store: Store, ours: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    async with _other_process(str(store.root), str(ours), str(gate), "hold") as other:
        await _wait_for(gate / "ready", other)
        report = await anyio.to_thread.run_sync(partial(cache.prune, ours, max_size=0))
        assert [k.version.spec for k in report.kept] == ["models/clf:0.0"]
        other.send_signal(signal.SIGKILL)  # no cleanup at all: the kernel drops the lock
        await other.wait()
    report = await anyio.to_thread.run_sync(partial(cache.prune, ours, max_size=0))
    assert _specs(report.removed) == ["models/clf:0.0"]
    assert os.listdir(ours / ".locks" / ".in-use") == []  # its registration was removed


async def test_cache_max_bytes_holds_under_a_fetch_loop(store: Store, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    limit = 650
    settings = store.settings(shared, cache_max_bytes=limit)
    loop = ["models/clf:0.1", "models/tok:0.0", "models/clf:1.0", "models/clf:0.1"] * 3
    async with AssetsManager(settings=settings) as service:  # a service serving clf:0.0
        await service.fetch("models/clf:0.0")
        for spec in loop:
            async with AssetsManager(settings=settings) as am:
                fetched = await am.fetch(spec)
            assert await anyio.Path(fetched.path).exists()
            listing = await anyio.to_thread.run_sync(cache.scan, shared)
            assert listing.total_size <= limit, [(v.spec, v.size) for v in listing.versions]
            assert "models/clf:0.0" in _specs(listing.versions)  # in use: never removed
    assert sum(SIZES.values()) > limit  # the loop did have to prune


async def test_cache_max_bytes_keeps_what_the_manager_itself_serves(
    store: Store, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    async with AssetsManager(settings=store.settings(shared, cache_max_bytes=150)) as am:
        await am.fetch("models/clf:0.0")
        await am.fetch("models/clf:0.1")  # over the limit, but both are served by this manager
        listing = await anyio.to_thread.run_sync(cache.scan, shared)
        assert _specs(listing.versions) == ["models/clf:0.1", "models/clf:0.0"]
    async with AssetsManager(settings=store.settings(shared, cache_max_bytes=150)) as am:
        await am.fetch("models/tok:0.0")  # now the others are free: the least recent go
    listing = await anyio.to_thread.run_sync(cache.scan, shared)
    assert _specs(listing.versions) == ["models/tok:0.0"]


def test_cache_max_bytes_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().cache_max_bytes is None  # off by default
    monkeypatch.setenv("AIOMODELKIT_CACHE_MAX_BYTES", "650")
    assert Settings.load().cache_max_bytes == 650
    monkeypatch.setenv("AIOMODELKIT_CACHE_MAX_BYTES", "-1")
    with pytest.raises(ConfigError, match=r"cache_max_bytes \(AIOMODELKIT_CACHE_MAX_BYTES\)"):
        Settings.load()


def test_bad_rules(ours: Path) -> None:
    with pytest.raises(ConfigError, match="keep_latest"):
        cache.prune(ours, keep_latest=0)
    with pytest.raises(ConfigError, match="older_than"):
        cache.prune(ours, older_than=timedelta(days=-1))
    with pytest.raises(ConfigError, match="max_size"):
        cache.prune(ours, max_size=-1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_cache_without_write_permission_is_refused(ours: Path) -> None:
    ours.chmod(0o555)
    try:
        with pytest.raises(CacheError, match="is read-only: prune removes nothing"):
            cache.prune(ours, max_size=0)
    finally:
        ours.chmod(0o755)
