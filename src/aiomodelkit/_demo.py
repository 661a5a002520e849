"""The README's demo: publish a sample asset to a local store, fetch it, fetch it again."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from rich.markup import escape

from ._manager import AssetsManager
from ._settings import Settings
from .stores._base import MiB

if TYPE_CHECKING:
    from rich.console import Console


def _make_sample(root: Path, size_mib: int) -> None:
    # A realistic shape: one large weights file, a few medium files, many small ones.
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(max(size_mib - 4, 1) * MiB))
    for index in range(4):
        (root / f"shard-{index}.bin").write_bytes(os.urandom(MiB))
    for index in range(50):
        (root / "tokenizer" / f"vocab-{index:02d}.txt").write_bytes(os.urandom(4096))


async def run_demo(console: Console, *, size_mib: int = 64) -> None:
    """Publish, fetch cold, fetch warm, in a temporary folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-demo-") as tmp:
        root = Path(tmp)
        store_dir = root / "store" / "modelkit-assets"
        await anyio.Path(store_dir).mkdir(parents=True)
        sample = root / "sample-model"
        await anyio.to_thread.run_sync(_make_sample, sample, size_mib)
        settings = Settings.load(storage=store_dir.as_uri(), assets_dir=root / "cache")
        console.print(f"store: {settings.storage}\ncache: {settings.assets_dir}", highlight=False)
        async with AssetsManager(settings=settings) as am:
            published = await am.new(sample, "demo/classifier")
            console.print(
                f"published [bold]{escape(str(published.spec))}[/]: {published.objects} objects, "
                f"{published.size / MiB:.1f} MiB",
                highlight=False,
            )
            start = time.perf_counter()
            cold = await am.fetch("demo/classifier:0")
            cold_s = time.perf_counter() - start
            start = time.perf_counter()
            warm = await am.fetch("demo/classifier:0.0[weights.bin]")
            warm_s = time.perf_counter() - start
        console.print(
            f"cold fetch of {escape(str(cold.spec))} -> version {cold.version}: "
            f"{cold.objects} objects, {cold.size / MiB:.1f} MiB in {cold_s * 1000:.0f} ms "
            f"({cold.size / MiB / max(cold_s, 1e-9):.0f} MiB/s)\n"
            f"  landed at {cold.path}\n"
            f"warm fetch of {escape(str(warm.spec))}: from cache={warm.from_cache} "
            f"in {warm_s * 1000:.1f} ms\n"
            f"  landed at {warm.path}",
            highlight=False,
        )
