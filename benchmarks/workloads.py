"""The workloads W1-W7 (and W6-wide): deterministic data, published with aiomodelkit's publisher.

Every file is seeded random bytes (incompressible, reproducible) and its SHA-256 is kept, so
each run's output is checked after the clock stops. Publishing goes through
``AssetsManager.new`` (data, then ``.meta``, then ``.versions``: modelkit's layout), so
modelkit 0.1.3 reads the very same objects.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiomodelkit import AssetsManager, Settings
from aiomodelkit._layout import data_key

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.stores import Store

__all__ = [
    "GRAPH_W6",
    "GRAPH_W6_WIDE",
    "Asset",
    "FileSpec",
    "GraphModel",
    "Workload",
    "critical_path",
    "list_schedule",
    "publish_asset",
    "workloads",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
#: Key prefix of every benchmark asset inside the bucket.
PREFIX = "assets"
_BLOCK = 8 * MiB


@dataclass(frozen=True)
class FileSpec:
    """One object of an asset: its path inside a directory asset ("" for a file asset)."""

    rel: str
    size: int
    seed: str


@dataclass
class Asset:
    """One published asset version and what a client must end up with."""

    name: str
    files: list[FileSpec]
    directory: bool
    version: str = "0.0"
    sha256: dict[str, str] = field(default_factory=dict)  # rel -> hex digest

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def object_key(self, spec: FileSpec) -> str:
        """The bucket key (prefix included) of one of the asset's files."""
        return f"{PREFIX}/" + data_key(
            self.name, self.version, spec.rel if self.directory else None
        )

    def final_path(self, cache: Path) -> Path:
        """Where the version lands in a modelkit-layout cache (``<dir>/<name>/<version>``)."""
        return cache.joinpath(*self.name.split("/"), self.version)


@dataclass(frozen=True)
class GraphModel:
    """One model of a graph workload (W6, W6-wide): its declared ``_load`` time and its
    dependencies."""

    key: str
    load_s: float
    deps: tuple[str, ...] = ()


#: W6: 20 models in four layers. Leaves are tokenizers/embeddings, the root an ensemble.
GRAPH_W6: tuple[GraphModel, ...] = (
    GraphModel("m00", 0.4),
    GraphModel("m01", 0.3),
    GraphModel("m02", 0.5),
    GraphModel("m03", 0.2),
    GraphModel("m04", 0.4),
    GraphModel("m05", 0.3),
    GraphModel("m06", 0.6),
    GraphModel("m07", 0.2),
    GraphModel("m08", 0.3, ("m00", "m01")),
    GraphModel("m09", 0.4, ("m02",)),
    GraphModel("m10", 0.3, ("m03", "m04")),
    GraphModel("m11", 0.2, ("m05",)),
    GraphModel("m12", 0.3, ("m06", "m07")),
    GraphModel("m13", 0.5, ("m01", "m02")),
    GraphModel("m14", 0.3, ("m08", "m09")),
    GraphModel("m15", 0.4, ("m10", "m11")),
    GraphModel("m16", 0.2, ("m12", "m13")),
    GraphModel("m17", 0.3, ("m09", "m13")),
    GraphModel("m18", 0.3, ("m14", "m15")),
    GraphModel("m19", 0.2, ("m16", "m17", "m18")),
)

#: The task heads' load times, cycled over ``h00``..``h15``.
_HEAD_LOADS = (0.7, 0.8, 0.6, 0.7)

#: W6-wide: two tokenizers, sixteen task heads, two ensembles: the wide, shallow graph of a
#: typical multi-task serving library. Head ``hNN`` depends on tokenizer ``t{NN % 2}``,
#: ensemble ``e0`` on ``h00``..``h07`` and ``e1`` on ``h08``..``h15``. Its critical path is
#: 0.3 + 0.8 + 0.1 = 1.2 s and the sum of its loads 12.0 s, so a sequential loader is at least
#: 10x slower than the critical path: unlike W6 (6.6 s over 1.7 s, at most ~5.3x with the
#: fetches), it leaves room for the ">= 10x modelkit's library" target.
GRAPH_W6_WIDE: tuple[GraphModel, ...] = (
    GraphModel("t0", 0.3),
    GraphModel("t1", 0.3),
    *(GraphModel(f"h{i:02d}", _HEAD_LOADS[i % 4], (f"t{i % 2}",)) for i in range(16)),
    GraphModel("e0", 0.1, tuple(f"h{i:02d}" for i in range(8))),
    GraphModel("e1", 0.1, tuple(f"h{i:02d}" for i in range(8, 16))),
)


def critical_path(graph: tuple[GraphModel, ...], scale: float = 1.0) -> float:
    """The longest chain of declared load times: no startup can beat it.

    Example:
        >>> round(critical_path(GRAPH_W6), 3)
        1.7
        >>> round(critical_path(GRAPH_W6_WIDE), 3), round(critical_path(GRAPH_W6_WIDE, 0.25), 3)
        (1.2, 0.3)
    """
    finish: dict[str, float] = {}
    for model in graph:  # declared in dependency order
        start = max((finish[d] for d in model.deps), default=0.0)
        finish[model.key] = start + model.load_s * scale
    return max(finish.values())


def list_schedule(graph: tuple[GraphModel, ...], threads: int, scale: float = 1.0) -> float:
    """Startup time if loads run FIFO as soon as their dependencies are done, on ``threads``
    workers (aiomodelkit runs plain-``def`` ``_load`` under ``max_load_threads``).

    Example:
        >>> round(list_schedule(GRAPH_W6, 4), 3), round(list_schedule(GRAPH_W6, 8), 3)
        (2.2, 1.7)
        >>> round(list_schedule(GRAPH_W6_WIDE, 16), 3)
        1.2
    """
    models = {m.key: m for m in graph}
    done: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    queued: list[str] = []
    now = 0.0
    while len(done) < len(models):
        for model in graph:
            waiting = model.key not in done and model.key not in queued
            if waiting and all(d in done for d in model.deps):
                if all(model.key != key for _, key in running):
                    queued.append(model.key)
        while queued and len(running) < threads:
            key = queued.pop(0)
            heapq.heappush(running, (now + models[key].load_s * scale, key))
        now, key = heapq.heappop(running)
        done[key] = now
    return now


@dataclass
class Workload:
    """A named workload: the assets to fetch and how to run it.

    Attributes:
        kind: ``fetch`` (cold download of every asset), ``warm`` (W5: library start on a
            full cache, offline), ``graph`` (W6, W6-wide: library cold start) or ``multi``
            (W7: several processes fetch the same asset at once).
        processes: for ``multi``, how many processes start together.
        load_scale: multiplies the graph's declared load times.
        graph: for ``graph``, the models (in dependency order), one per asset: asset
            ``bench/<workload>/<key>`` is model ``<key>``'s.
    """

    key: str
    title: str
    kind: str
    assets: list[Asset]
    processes: int = 1
    load_scale: float = 1.0
    graph: tuple[GraphModel, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "graph" and not self.graph:
            raise ValueError(f"graph workload {self.key} has no graph")

    @property
    def size(self) -> int:
        return sum(a.size for a in self.assets)

    @property
    def objects(self) -> int:
        return sum(len(a.files) for a in self.assets)


def _dir(name: str, groups: list[tuple[int, int, str]]) -> Asset:
    files = [
        FileSpec(f"{stem}-{i:04d}.bin", size, f"{name}/{stem}/{i}")
        for count, size, stem in groups
        for i in range(count)
    ]
    return Asset(name, files, directory=True)


def _graph_assets(name: str, graph: tuple[GraphModel, ...]) -> list[Asset]:
    """One 2 MiB file asset per model of a graph workload, ``bench/<name>/<key>``."""
    return [
        Asset(f"bench/{name}/{m.key}", [FileSpec("", 2 * MiB, f"{name}/{m.key}")], directory=False)
        for m in graph
    ]


def workloads(quick: bool) -> dict[str, Workload]:
    """W1-W7 and W6-wide (``w6w``), full size or scaled down for ``--quick``."""
    q = quick
    w4 = _dir(
        "bench/w4",
        [
            (1, (16 if q else 256) * MiB, "weights"),
            (5 if q else 20, (4 if q else 10) * MiB, "shard"),
            (30 if q else 300, 4 * KiB, "vocab"),
        ],
    )
    w1 = Asset("bench/w1", [FileSpec("", (64 if q else 1024) * MiB, "w1")], directory=False)
    w5 = [
        Asset(f"bench/w5/m{i:02d}", [FileSpec("", 64 * KiB, f"w5/{i}")], directory=False)
        for i in range(50)
    ]
    return {
        "w1": Workload("w1", f"W1 1 x {w1.size // MiB} MiB", "fetch", [w1]),
        "w2": Workload(
            "w2",
            f"W2 8 x {8 if q else 128} MiB",
            "fetch",
            [_dir("bench/w2", [(8, (8 if q else 128) * MiB, "part")])],
        ),
        "w3": Workload(
            "w3",
            f"W3 {100 if q else 2000} x 16 KiB",
            "fetch",
            [_dir("bench/w3", [(100 if q else 2000, 16 * KiB, "f")])],
        ),
        "w4": Workload("w4", f"W4 realistic asset ({w4.size // MiB} MiB)", "fetch", [w4]),
        "w5": Workload("w5", "W5 warm start, 50 models", "warm", w5),
        "w6": Workload(
            "w6",
            "W6 cold start, 20-model graph",
            "graph",
            _graph_assets("w6", GRAPH_W6),
            load_scale=0.25 if q else 1.0,
            graph=GRAPH_W6,
        ),
        "w6w": Workload(
            "w6w",
            "W6-wide cold start, 20 models (2 tokenizers, 16 heads, 2 ensembles)",
            "graph",
            _graph_assets("w6w", GRAPH_W6_WIDE),
            load_scale=0.25 if q else 1.0,
            graph=GRAPH_W6_WIDE,
        ),
        "w7": Workload("w7", "W7 4 processes on W4", "multi", [w4], processes=4),
    }


def generate(asset: Asset, root: Path) -> Path:
    """Write the asset's files under ``root`` and record their SHA-256; returns its path."""
    base = root / asset.name.replace("/", "_")
    if not asset.directory:
        base.parent.mkdir(parents=True, exist_ok=True)
    for spec in asset.files:
        path = base / spec.rel if asset.directory else base
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        rng = random.Random(spec.seed)
        with path.open("wb") as out:
            left = spec.size
            while left:
                block = rng.randbytes(min(_BLOCK, left))
                digest.update(block)
                out.write(block)
                left -= len(block)
        asset.sha256[spec.rel] = digest.hexdigest()
    return base


async def publish_asset(store: Store, asset: Asset, root: Path) -> None:
    """Generate and publish ``asset`` (once: the store keeps it for every run).

    ``store`` must be unopened: the manager opens and closes it.
    """
    import anyio.to_thread

    source = await anyio.to_thread.run_sync(generate, asset, root)
    try:
        async with AssetsManager(
            storage=store, settings=Settings(assets_dir=root / ".publish-cache")
        ) as am:
            result = await am.new(source, asset.name)
        asset.version = result.version
    finally:
        await anyio.to_thread.run_sync(
            lambda: shutil.rmtree(source) if source.is_dir() else source.unlink()
        )


def verify(asset: Asset, cache: Path) -> str | None:
    """Check the files at the asset's final path; None if all match, else what is wrong."""
    base = asset.final_path(cache)
    for spec in asset.files:
        path = base / spec.rel if asset.directory else base
        if not path.is_file():
            return f"missing {path}"
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
        if digest.hexdigest() != asset.sha256[spec.rel]:
            return f"SHA-256 mismatch for {path}"
    return None
