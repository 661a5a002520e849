"""Crashes, full disks, unwritable caches and cancellation never leave a partial asset."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import anyio
import pytest

from aiomodelkit import AssetsManager, ModelLibrary, Settings
from aiomodelkit.stores import LocalStore, MemoryStore
from aiomodelkit.stores._base import MiB
from aiomodelkit.testing import Fault, InstrumentedStore


def _settings(cache: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"assets_dir": cache, "retry_backoff": 0.001, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def _partial_or_staging(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if ".incomplete-" in p.name or ".replaced-" in p.name]


async def _publish(store_root: Path, tmp_path: Path, name: str, files: dict[str, bytes]) -> None:
    source = tmp_path / f"src-{name.replace('/', '_')}"
    for relpath, data in files.items():
        (source / relpath).parent.mkdir(parents=True, exist_ok=True)
        (source / relpath).write_bytes(data)
    async with AssetsManager(
        storage=store_root.as_uri(), settings=_settings(tmp_path / "publisher-cache")
    ) as am:
        await am.new(source, name)


_SLOW_FETCH = textwrap.dedent(
    """
    import sys, anyio
    from aiomodelkit import AssetsManager, Settings, BytesReceived
    from aiomodelkit.stores import LocalStore
    from aiomodelkit.testing import Fault, InstrumentedStore
    store_root, cache = sys.argv[1:]
    store = InstrumentedStore(LocalStore(store_root))
    store.inject(Fault(lambda key: key.endswith(".bin"), times=10**6, chunk_delay=0.05))
    said = False
    def on_event(event):
        global said
        if isinstance(event, BytesReceived) and not said:
            said = True
            print("downloading", flush=True)
    async def main():
        settings = Settings(assets_dir=cache, chunk_size=64 * 1024)
        async with AssetsManager(storage=store, settings=settings, on_event=on_event) as am:
            await am.fetch("models/big:0.0")
        print("finished", flush=True)
    anyio.run(main)
    """
)


async def test_sigkill_mid_download_then_recovery(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    store_root.mkdir()
    payload = {f"part-{i}.bin": os.urandom(2 * MiB) for i in range(4)}
    await _publish(store_root, tmp_path, "models/big", payload)
    cache = tmp_path / "cache"
    final = cache / "models" / "big" / "0.0"
    # The child is killed mid-download; the test only waits for it, nothing else runs here.
    with subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", _SLOW_FETCH, str(store_root), str(cache)],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "downloading"
            assert not final.exists()
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            child.kill()
    leftovers = _partial_or_staging(cache)
    assert leftovers, "the killed process left its staging behind, as a crash does"
    assert not final.exists()  # nothing partial ever appeared at the final path
    async with AssetsManager(storage=LocalStore(store_root), settings=_settings(cache)) as am:
        fetched = await am.fetch("models/big:0.0")
    assert {p.name: p.read_bytes() for p in fetched.path.glob("*.bin")} == payload
    assert _partial_or_staging(cache) == []  # the dead process's staging was removed


def _isolated(
    script: str, *args: str, as_nobody: bool = False, tmpfs: Path | None = None
) -> dict[str, object]:
    """Run a fetch script in a private mount namespace (tmpfs) or as an unprivileged user."""
    command = [sys.executable, "-c", script, *args]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    if tmpfs is not None:
        quoted = " ".join(f"'{part}'" for part in command)
        command = [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount -t tmpfs -o size=6m tmpfs '{tmpfs}' && {quoted}",
        ]
    # A minimal environment for the child: it needs PATH to find unshare and sh.
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}  # noqa: TID251
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_FILL_DISK = textwrap.dedent(
    """
    import json, os, sys, anyio
    from pathlib import Path
    from aiomodelkit import AssetsManager, Settings, CacheError
    store_root, cache = sys.argv[1:]
    async def main():
        settings = Settings(assets_dir=cache)
        out = {}
        async with AssetsManager(storage=Path(store_root).as_uri(), settings=settings) as am:
            small = await am.fetch("models/small:0.0")
            try:
                await am.fetch("models/big:0.0")
            except CacheError as exc:
                out["error"] = type(exc).__name__
                out["message"] = str(exc)
                out["asset"] = exc.asset
            again = await am.fetch("models/small:0.0")
        content = (again.path / "s.bin").read_bytes()
        out["small_intact"] = again.from_cache and content == b"s" * 1000
        out["big_published"] = (Path(cache) / "models" / "big" / "0.0").exists()
        out["leftovers"] = [p.name for p in Path(cache).rglob("*") if ".incomplete-" in p.name]
        print(json.dumps(out))
    anyio.run(main)
    """
)


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (root)")
async def test_disk_full_is_a_clear_error_and_keeps_the_cache(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    store_root.mkdir()
    await _publish(store_root, tmp_path, "models/small", {"s.bin": b"s" * 1000})
    await _publish(store_root, tmp_path, "models/big", {"b.bin": os.urandom(8 * MiB)})
    cache = tmp_path / "cache"
    cache.mkdir()
    result = _isolated(_FILL_DISK, str(store_root), str(cache), tmpfs=cache)
    assert result["error"] == "CacheError"
    assert "No space left on device" in str(result["message"])
    assert result["asset"] == "models/big"
    assert result["small_intact"] is True
    assert result["big_published"] is False
    assert result["leftovers"] == []


_READ_ONLY_CACHE = textwrap.dedent(
    """
    import json, sys, anyio
    from pathlib import Path
    from aiomodelkit import AssetsManager, Settings, CacheError
    store_root, cache = sys.argv[1:]
    async def main():
        out = {}
        settings = Settings(assets_dir=cache)
        async with AssetsManager(storage=Path(store_root).as_uri(), settings=settings) as am:
            hit = await am.fetch("models/small:0.0")
            out["hit"] = hit.from_cache and (hit.path / "s.bin").read_bytes() == b"s" * 1000
            try:
                await am.fetch("models/big:0.0")
            except CacheError as exc:
                out["error"] = str(exc)
        print(json.dumps(out))
    anyio.run(main)
    """
)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop privileges")
async def test_permission_denied_in_the_cache(tmp_path: Path) -> None:
    # pytest's tmp_path is private to root; an unprivileged user needs its own tree.
    shared = Path(tempfile.mkdtemp(prefix="aiomodelkit-perm-"))
    try:
        shared.chmod(0o755)  # noqa: ASYNC240 - test setup, nothing else runs on this loop
        store_root = shared / "store"
        store_root.mkdir()
        await _publish(store_root, tmp_path, "models/small", {"s.bin": b"s" * 1000})
        await _publish(store_root, tmp_path, "models/big", {"b.bin": b"b" * 1000})
        for path in [store_root, *store_root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        cache = shared / "cache"
        async with AssetsManager(storage=store_root.as_uri(), settings=_settings(cache)) as am:
            await am.fetch("models/small:0.0")
        for path in [cache, *cache.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)  # readable, not writable
        result = _isolated(_READ_ONLY_CACHE, str(store_root), str(cache), as_nobody=True)
        assert result["hit"] is True  # a cache hit needs no lock and no write
        assert "Permission denied" in str(result["error"])
        assert not (cache / "models" / "big").exists()
        assert (cache / "models" / "small" / "0.0" / "s.bin").read_bytes() == b"s" * 1000
    finally:
        for path in [shared, *shared.rglob("*")]:  # noqa: ASYNC240 - test cleanup
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(shared)


async def _consistent(cache: Path, expected: dict[str, dict[str, bytes]]) -> None:
    assert _partial_or_staging(cache) == []
    for name, files in expected.items():
        final = cache / name / "0.0"
        if final.exists():  # absent is fine; present means complete and byte-exact
            found = {
                p.relative_to(final).as_posix(): p.read_bytes()
                for p in final.rglob("*")
                if p.is_file() and p.name != ".SUCCESS"
            }
            assert found == files
            assert (final / ".SUCCESS").exists()


@pytest.mark.parametrize("seed", range(6))
async def test_cancellation_at_random_points_of_fetch_many(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    inner = MemoryStore()
    expected = {
        f"models/m{i}": {f"f{j}.bin": rng.randbytes(rng.randrange(1, 300_000)) for j in range(5)}
        for i in range(4)
    }
    async with AssetsManager(storage=inner, settings=_settings(tmp_path / "publish")) as am:
        for name, files in expected.items():
            source = tmp_path / f"src-{name.replace('/', '_')}"
            for relpath, data in files.items():
                source.mkdir(parents=True, exist_ok=True)
                (source / relpath).write_bytes(data)
            await am.new(source, name)
    store = InstrumentedStore(inner)
    store.inject(Fault(lambda key: key.endswith(".bin"), times=10**6, chunk_delay=0.002))
    cache = tmp_path / "cache"
    settings = _settings(cache, chunk_size=64 * 1024)
    async with AssetsManager(storage=store, settings=settings) as am:
        with anyio.move_on_after(rng.uniform(0, 0.08)):
            await am.fetch_many(list(expected))
    await _consistent(cache, expected)
    store.faults.clear()
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.fetch_many(list(expected))
    await _consistent(cache, expected)
    assert all((cache / name / "0.0").exists() for name in expected)


@pytest.mark.parametrize("seed", range(4))
async def test_cancellation_at_random_points_of_library_startup(tmp_path: Path, seed: int) -> None:
    from aiomodelkit import Model

    rng = random.Random(seed)
    inner = MemoryStore()
    expected = {f"models/m{i}": {"w.bin": rng.randbytes(200_000)} for i in range(3)}
    async with AssetsManager(storage=inner, settings=_settings(tmp_path / "publish")) as am:
        for name, files in expected.items():
            source = tmp_path / f"src-{name.replace('/', '_')}"
            source.mkdir()
            (source / "w.bin").write_bytes(files["w.bin"])
            await am.new(source, name)

    class Weights(Model[int, int]):
        CONFIGURATIONS = {  # noqa: RUF012 - modelkit's declaration style
            f"m{i}": {"asset": f"models/m{i}:0.0", "model_dependencies": [f"m{i - 1}"] if i else []}
            for i in range(3)
        }

        async def _load(self) -> None:
            await anyio.sleep(0.01)

        def _predict(self, item: int) -> int:
            return item

    store = InstrumentedStore(inner)
    store.inject(Fault(lambda key: key.endswith(".bin"), times=10**6, chunk_delay=0.002))
    cache = tmp_path / "cache"
    settings = _settings(cache, chunk_size=32 * 1024)
    async with AssetsManager(storage=store, settings=settings) as am:
        with anyio.move_on_after(rng.uniform(0, 0.1)):
            async with ModelLibrary(models=Weights, settings=settings, assets_manager=am):
                pass
    await _consistent(cache, expected)
