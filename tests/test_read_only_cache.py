"""Issue 13, item 3: a read-only cache (a volume baked into an image, or mounted read-only).

Hits are served with no lock and no write at all; a version that would have to be downloaded
is one :class:`~aiomodelkit.CacheError` line naming the asset and the directory, and nothing in
the cache changes. Issue 16: ``cache ls`` and ``cache verify`` work on it; ``cache prune`` and
``verify --repair`` refuse it with one line.

Root ignores file modes, so the cache is made read-only for real: each command runs in its own
user and mount namespace (``unshare -Urm``) where the cache directory is bind-mounted
read-only, so every write gets ``EROFS`` exactly as on a read-only volume. Where namespaces
are not allowed, a non-root user falls back to removing the write permission bits; otherwise
the tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING

import pytest

from aiomodelkit import AssetsManager, Settings
from aiomodelkit.stores import LocalStore

if TYPE_CHECKING:
    from pathlib import Path


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(
            [
                "unshare",
                "-Urm",
                "sh",
                "-c",
                'mount --bind -o ro "$0" "$0" && ! touch "$0/x"',
                directory,
            ],
            capture_output=True,
            check=False,
        )
    return probe.returncode == 0


UNSHARE = _can_unshare()
pytestmark = pytest.mark.skipif(
    not UNSHARE and os.geteuid() == 0,
    reason="running as root without user namespaces: no way to make a read-only directory",
)


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its kind, mode, mtime and content hash."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (
            f"{stat.filemode(info.st_mode)} {info.st_mtime_ns} {digest}"
        )
    return found


def _run_read_only(cache: Path, store: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m aiomodelkit *argv`` (or ``python -c`` code) with ``cache`` read-only."""
    command = (
        [sys.executable, *argv] if argv[0] == "-c" else [sys.executable, "-m", "aiomodelkit", *argv]
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child needs a PATH
        "HOME": str(cache.parent),
        "AIOMODELKIT_STORAGE": store.as_uri(),
        "AIOMODELKIT_ASSETS_DIR": str(cache),
        "COLUMNS": "200",
    }
    if "PYTHONPATH" in os.environ:  # noqa: TID251 - the child imports what this test imports
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # noqa: TID251
    if UNSHARE:
        command = [
            "unshare",
            "-Urm",
            "sh",
            "-c",
            'mount --bind -o ro "$0" "$0" && exec "$@"',
            str(cache),
            *command,
        ]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, timeout=60
        )
    modes = {path: path.stat().st_mode for path in [cache, *cache.rglob("*")] if path.is_dir()}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, check=False, timeout=60
        )
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.fixture
async def baked(tmp_path: Path) -> tuple[Path, Path]:
    """A store holding models/clf 0.0 and 0.1, and a cache holding 0.0 only."""
    store, cache = tmp_path / "store", tmp_path / "cache"
    store.mkdir()
    source = tmp_path / "weights"
    source.mkdir()
    (source / "w.bin").write_bytes(b"weights")
    settings = Settings(assets_dir=cache, pushed_by="test")
    async with AssetsManager(storage=LocalStore(store), settings=settings) as am:
        await am.new(source, "models/clf")
        await am.update(source, "models/clf")
        await am.fetch("models/clf:0.0")
    return cache, store


def test_a_cached_version_is_served_without_a_lock_or_a_write(baked: tuple[Path, Path]) -> None:
    cache, store = baked
    shutil.rmtree(cache / ".locks")  # as baked by another tool: no lock directory at all
    before = _snapshot(cache)
    for argv in (
        ["assets", "fetch", "models/clf:0.0"],
        ["assets", "fetch", "models/clf:0", "--offline"],
        ["assets", "fetch", "models/clf:0.0[w.bin]"],
    ):
        done = _run_read_only(cache, store, *argv)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\t")[1].startswith(str(cache / "models" / "clf" / "0.0"))
        assert "Traceback" not in done.stderr
    assert _snapshot(cache) == before


def test_a_library_starts_from_a_read_only_cache(baked: tuple[Path, Path]) -> None:
    cache, store = baked
    before = _snapshot(cache)
    code = """
import anyio
from aiomodelkit import Model, ModelLibrary

class Clf(Model[str, str]):
    CONFIGURATIONS = {"clf": {"asset": "models/clf:0.0[w.bin]"}}
    def _load(self) -> None:
        self.weights = self.asset_path.read_text()
    def _predict(self, item: str) -> str:
        return self.weights + item

async def main() -> None:
    async with ModelLibrary(models=[Clf]) as library:
        print(await library.get("clf").predict("!"))

anyio.run(main)
"""
    done = _run_read_only(cache, store, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "weights!"
    assert _snapshot(cache) == before


@pytest.mark.parametrize("locks", [True, False], ids=["with-lock-dir", "without-lock-dir"])
def test_a_needed_download_is_one_cache_error_line(baked: tuple[Path, Path], locks: bool) -> None:
    cache, store = baked
    if not locks:
        shutil.rmtree(cache / ".locks")
    before = _snapshot(cache)
    done = _run_read_only(cache, store, "assets", "fetch", "models/clf:0")  # 0.1 is not cached
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: cannot write to the assets cache {str(cache)!r}")
    assert "read-only cache serves only the versions it already holds" in lines[0]
    assert "asset='models/clf'" in lines[0]
    assert done.stdout == ""
    assert _snapshot(cache) == before


def test_cache_ls_and_verify_work_on_a_read_only_cache(baked: tuple[Path, Path]) -> None:
    cache, store = baked
    before = _snapshot(cache)
    done = _run_read_only(cache, store, "cache", "ls")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[:3] == ["models/clf", "0.0", "7"]
    assert lines[-1] == "total: 1 version(s) of 1 asset(s), 7 B in 1 object(s); read-only"
    done = _run_read_only(cache, store, "cache", "verify")
    assert (done.returncode, done.stdout, done.stderr) == (0, "models/clf:0.0\tok\n", "")
    assert _snapshot(cache) == before


def test_a_read_only_cache_is_verified_but_never_changed(baked: tuple[Path, Path]) -> None:
    cache, store = baked
    (cache / "models" / "clf" / "0.0" / "w.bin").write_bytes(b"damaged")  # before it is mounted
    before = _snapshot(cache)
    done = _run_read_only(cache, store, "cache", "verify")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: models/clf:0.0 is corrupt: w.bin: its XXH3-128 differs from the meta's"
    )
    done = _run_read_only(cache, store, "cache", "verify", "--repair")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: the assets cache {str(cache)!r} is read-only: nothing can be repaired"
    )
    assert _snapshot(cache) == before


@pytest.mark.parametrize("flags", [[], ["--dry-run"]], ids=["prune", "dry-run"])
def test_prune_refuses_a_read_only_cache_with_one_line(
    baked: tuple[Path, Path], flags: list[str]
) -> None:
    cache, store = baked
    before = _snapshot(cache)
    done = _run_read_only(cache, store, "cache", "prune", "--max-size", "0", *flags)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: the assets cache {str(cache)!r} is read-only: prune removes nothing"
    ]
    assert done.stdout == ""
    assert _snapshot(cache) == before
