"""Caches to manage: one written by aiomodelkit, one by modelkit 0.1.3, from the same store.

The store (a local bucket with modelkit's default prefix, so that modelkit reads it too):

* ``models/clf`` 0.0, 0.1 and 1.0: file assets of 100, 200 and 400 bytes;
* ``models/tok`` 0.0: a directory asset holding ``vocab.txt`` (10 bytes) and
  ``sub/merges.txt`` (20 bytes).

Every helper here is synchronous (an event loop of its own where aiomodelkit is async), so
that the tests can call the blocking functions of :mod:`aiomodelkit.cache` directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from aiomodelkit import AssetsManager, Settings

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SIZES", "SPECS", "Store", "fetch", "make_store", "modelkit_fetch", "set_last_used"]

#: Every version of the store, in the order ``scan`` lists them.
SPECS = ["models/clf:1.0", "models/clf:0.1", "models/clf:0.0", "models/tok:0.0"]
SIZES = {"models/clf:1.0": 400, "models/clf:0.1": 200, "models/clf:0.0": 100, "models/tok:0.0": 30}


@dataclass(frozen=True)
class Store:
    """A published store: modelkit's bucket, and the store root (bucket + prefix)."""

    bucket: Path
    root: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def settings(self, cache: Path, **values: Any) -> Settings:
        """Settings of a manager of this store and ``cache``."""
        return Settings(storage=self.url, assets_dir=cache, pushed_by="test", **values)


def make_store(tmp_path: Path) -> Store:
    """Publish the store of the module docstring under ``tmp_path``."""
    store = Store(tmp_path / "bucket", tmp_path / "bucket" / "modelkit-assets")
    store.root.mkdir(parents=True)
    source = tmp_path / "source"
    (source / "tok" / "sub").mkdir(parents=True)
    (source / "tok" / "vocab.txt").write_bytes(b"v" * 10)
    (source / "tok" / "sub" / "merges.txt").write_bytes(b"m" * 20)

    async def publish() -> None:
        async with AssetsManager(settings=store.settings(tmp_path / "publisher")) as am:
            for size, call in ((100, am.new), (200, am.update)):
                (source / "clf.bin").write_bytes(b"c" * size)
                await call(source / "clf.bin", "models/clf")
            (source / "clf.bin").write_bytes(b"c" * 400)
            await am.update(source / "clf.bin", "models/clf", bump_major=True)
            await am.new(source / "tok", "models/tok")

    anyio.run(publish)
    return store


def fetch(store: Store, cache: Path, *specs: str, **settings: Any) -> None:
    """Fetch ``specs`` into ``cache`` with a manager that is closed afterwards."""

    async def go() -> None:
        async with AssetsManager(settings=store.settings(cache, **settings)) as am:
            await am.fetch_many(list(specs))

    anyio.run(go)


_MODELKIT_FETCH = textwrap.dedent(
    """
    import sys
    from modelkit.assets.manager import AssetsManager

    manager = AssetsManager()
    for spec in sys.argv[1:]:
        manager.fetch_asset(spec)
    """
)


def modelkit_fetch(store: Store, cache: Path, *specs: str) -> None:
    """Fetch ``specs`` into ``cache`` with modelkit 0.1.3 itself, in a subprocess."""
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],  # noqa: TID251 - modelkit's process needs a PATH and a HOME
        "HOME": os.environ["HOME"],  # noqa: TID251
        "MODELKIT_ASSETS_DIR": str(cache),
        "MODELKIT_STORAGE_PROVIDER": "local",
        "MODELKIT_STORAGE_BUCKET": str(store.bucket),
    }
    done = subprocess.run(
        [sys.executable, "-c", _MODELKIT_FETCH, *specs],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def set_last_used(cache: Path, spec: str, when: float) -> None:
    """Pretend a version was last used at ``when`` (seconds since the epoch)."""
    name, version = spec.split(":")
    stamp = cache / ".meta" / name / f".{version}.used"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    os.utime(stamp, (when, when))
