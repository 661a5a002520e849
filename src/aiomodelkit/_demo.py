"""The README's demo: six toy models with dependencies, cold-started from a local store.

In a temporary folder (removed afterwards): publish five assets to a local store (a
directory of many small files, a few files of a few MiB, a ``size_mib`` weights file), then
start a :class:`ModelLibrary` of six models concurrently, print each model's timeline,
predict once, start again warm, and finally load the same models one after another (each
fetch, then its load, like modelkit's loader) for comparison. Each ``_load`` really reads
and hashes its asset, then sleeps its ``load_seconds`` setting to stand in for the time a
real model takes to deserialise its weights.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ._events import BytesReceived, DownloadStarted, Event
from ._library import ModelLibrary
from ._manager import AssetsManager
from ._model import Model
from ._settings import Settings
from ._status import ModelEvent, ModelLoadFinished
from ._values import MiB

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from ._status import ModelStatus

__all__ = ["run_demo"]

WORDS = "the a this is great good bad awful model library fast slow day service".split()


def _digest(path: Path) -> str:
    """Read every file of an asset (what a real load does), return a short checksum."""
    sha = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


class _ToyModel(Model[Any, Any]):
    """Reads and hashes its asset in a worker thread, then takes ``load_seconds``."""

    def _load(self) -> None:
        if self.asset_path is not None:
            self.digest = _digest(self.asset_path)
        time.sleep(self.model_settings["load_seconds"])


class Tokenizer(_ToyModel):
    CONFIGURATIONS: ClassVar = {
        "tokenizer": {"asset": "demo/tokenizer:0", "model_settings": {"load_seconds": 0.3}}
    }

    def _load(self) -> None:
        super()._load()
        assert self.asset_path is not None
        self.vocab = set((self.asset_path / "vocab" / "part-000.txt").read_text().split())

    def _predict(self, item: str) -> list[str]:
        return [word for word in item.lower().split() if word in self.vocab]


class Embeddings(_ToyModel):
    CONFIGURATIONS: ClassVar = {
        "embeddings": {"asset": "demo/embeddings:0", "model_settings": {"load_seconds": 0.3}}
    }

    def _predict(self, item: str) -> float:
        return (hashlib.sha256(item.encode()).digest()[0] - 128) / 128


class LanguageId(Model[str, str]):
    """An ``async def _load``: it runs on the event loop, so it awaits instead of blocking."""

    CONFIGURATIONS: ClassVar = {
        "langid": {"asset": "demo/langid:0", "model_settings": {"load_seconds": 0.2}}
    }

    async def _load(self) -> None:
        assert self.asset_path is not None
        self.size = len(await anyio.Path(self.asset_path).read_bytes())
        await anyio.sleep(self.model_settings["load_seconds"])

    def _predict(self, item: str) -> str:
        return "en" if item.isascii() else "unknown"


class Sentiment(_ToyModel):
    CONFIGURATIONS: ClassVar = {
        "sentiment": {
            "asset": "demo/sentiment:0",
            "model_dependencies": ["tokenizer"],
            "model_settings": {"load_seconds": 0.3},
        }
    }

    def _load(self) -> None:
        super()._load()
        assert self.asset_path is not None
        self.weights = json.loads((self.asset_path / "weights.json").read_text())
        self.tokenizer = self.model_dependencies.get("tokenizer", Tokenizer)

    async def _predict(self, item: str) -> float:
        return float(sum(self.weights.get(word, 0) for word in await self.tokenizer.predict(item)))


class Classifier(_ToyModel):
    CONFIGURATIONS: ClassVar = {
        "classifier": {
            "asset": "demo/classifier:0",
            "model_dependencies": {"tok": "tokenizer", "emb": "embeddings"},
            "model_settings": {"load_seconds": 0.4},
        }
    }

    def _load(self) -> None:
        super()._load()
        assert self.asset_path is not None
        self.labels = json.loads((self.asset_path / "config.json").read_text())["labels"]

    async def _predict(self, item: str) -> str:
        words = await self.model_dependencies.get("tok", Tokenizer).predict(item)
        scores = await self.model_dependencies.get("emb", Embeddings).predict_batch(words)
        return str(self.labels[int(sum(scores) * 10) % len(self.labels)])


class Pipeline(Model[str, dict[str, Any]]):
    CONFIGURATIONS: ClassVar = {
        "pipeline": {
            "model_dependencies": ["classifier", "sentiment", "langid"],
            "model_settings": {"load_seconds": 0.05},
        }
    }

    async def _load(self) -> None:
        await anyio.sleep(self.model_settings["load_seconds"])

    async def _predict(self, item: str) -> dict[str, Any]:
        deps = self.model_dependencies
        return {
            "language": await deps.get("langid", LanguageId).predict(item),
            "topic": await deps.get("classifier", Classifier).predict(item),
            "sentiment": await deps.get("sentiment", Sentiment).predict(item),
        }


MODELS = [Tokenizer, Embeddings, LanguageId, Sentiment, Classifier, Pipeline]


def _make_sources(root: Path, size_mib: int) -> dict[str, Path]:
    tokenizer = root / "tokenizer"
    (tokenizer / "vocab").mkdir(parents=True)
    (tokenizer / "vocab" / "part-000.txt").write_text("\n".join(WORDS))
    for index in range(1, 300):  # many small files: request-bound on a remote store
        (tokenizer / "vocab" / f"part-{index:03d}.txt").write_bytes(os.urandom(4096))
    (root / "embeddings.bin").write_bytes(os.urandom(4 * MiB))
    (root / "langid.bin").write_bytes(os.urandom(2 * MiB))
    sentiment = root / "sentiment"
    sentiment.mkdir()
    (sentiment / "weights.json").write_text(json.dumps({"great": 2, "good": 1, "bad": -1}))
    (sentiment / "lexicon.bin").write_bytes(os.urandom(3 * MiB))
    classifier = root / "classifier"
    classifier.mkdir()
    (classifier / "weights.bin").write_bytes(os.urandom(max(size_mib, 1) * MiB))
    labels = {"labels": ["news", "sport", "science", "music"]}
    (classifier / "config.json").write_text(json.dumps(labels))
    return {
        "demo/tokenizer": tokenizer,
        "demo/embeddings": root / "embeddings.bin",
        "demo/langid": root / "langid.bin",
        "demo/sentiment": sentiment,
        "demo/classifier": classifier,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _bar(status: ModelStatus, total: float, width: int = 32) -> str:
    """A text Gantt row: ░ fetching, · waiting for dependencies, █ loading."""
    cells = []
    for index in range(width):
        t = (index + 0.5) * total / width
        if status.load_started is not None and status.load_started <= t <= (
            status.load_finished or total
        ):
            cells.append("█")
        elif status.fetch_started is not None and status.fetch_started <= t <= (
            status.fetch_finished or total
        ):
            cells.append("░")
        elif status.fetch_finished is not None and t > status.fetch_finished:
            cells.append("·")
        else:
            cells.append(" ")
    return "".join(cells)


def _timeline(statuses: Mapping[str, ModelStatus], total: float, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("model", "cold fetch (ms)", "load (ms)"):
        table.add_column(column, no_wrap=True)
    table.add_column("░ fetch · wait █ load", no_wrap=True)
    for key, status in statuses.items():
        table.add_row(
            escape(key),
            f"{_ms(status.fetch_started)} → {_ms(status.fetch_finished)}",
            f"{_ms(status.load_started)} → {_ms(status.load_finished)}",
            _bar(status, total),
        )
    return table


def _dependencies(statuses: Mapping[str, ModelStatus]) -> str:
    return "; ".join(
        f"{key} ← {', '.join(status.dependencies)}"
        for key, status in statuses.items()
        if status.dependencies
    )


async def _concurrent(settings: Settings, console: Console) -> tuple[float, dict[str, Any]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    downloads = progress.add_task("assets", total=0)
    models = progress.add_task("models loaded", total=len(MODELS))

    def on_event(event: Event | ModelEvent) -> None:
        if isinstance(event, DownloadStarted):
            grown = (progress.tasks[downloads].total or 0) + (event.total_bytes or 0)
            progress.update(downloads, total=grown)
        elif isinstance(event, BytesReceived):
            progress.advance(downloads, event.size)
        elif isinstance(event, ModelLoadFinished):
            progress.advance(models)

    with progress:
        start = time.perf_counter()
        async with ModelLibrary(
            MODELS, settings=settings, lazy_loading=False, on_event=on_event
        ) as lib:
            elapsed = time.perf_counter() - start
            statuses = lib.status()
            prediction = await lib.get("pipeline", Pipeline).predict("a great day for the library")
    console.print(_timeline(statuses, elapsed, f"cold start, concurrent: {elapsed:.2f} s"))
    console.print(f"dependencies: {escape(_dependencies(statuses))}", highlight=False)
    return elapsed, prediction


async def _sequential(settings: Settings) -> float:
    """The same models, one after another: each one's fetch, then its load (like modelkit)."""
    start = time.perf_counter()
    async with ModelLibrary(MODELS, settings=settings, lazy_loading=True) as lib:
        for key in lib.graph.order:  # dependencies first: each aget loads one model
            await lib.aget(key)
    return time.perf_counter() - start


async def run_demo(console: Console, *, size_mib: int = 64) -> None:
    """Publish the demo assets, then start the demo library concurrently, warm, and sequentially.

    Args:
        console: where to print.
        size_mib: the size of the largest asset (the classifier's weights).
    """
    # Made and removed in a worker thread: mkdir and rmtree block (house style, section 5).
    tmp = await anyio.to_thread.run_sync(
        functools.partial(tempfile.TemporaryDirectory, prefix="aiomodelkit-demo-")
    )
    try:
        await _publish_and_start(Path(tmp.name), console, size_mib)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(tmp.cleanup)


async def _publish_and_start(root: Path, console: Console, size_mib: int) -> None:
    """Publish the demo assets under ``root``, then start the library: cold, warm, one by one."""
    store_dir = root / "store" / "modelkit-assets"
    await anyio.Path(store_dir).mkdir(parents=True)
    sources = await anyio.to_thread.run_sync(_make_sources, root / "sources", size_mib)

    # The demo is an entry point: it reads the environment once, then varies the cache.
    base = Settings.load(storage=store_dir.as_uri())

    def settings(cache: str) -> Settings:
        return base.model_copy(update={"assets_dir": root / cache})

    console.print(f"store: {store_dir.as_uri()}", highlight=False)
    async with AssetsManager(settings=settings("publisher-cache")) as am:
        for name, source in sources.items():
            published = await am.new(source, name)
            console.print(
                f"published [bold]{escape(str(published.spec))}[/]: "
                f"{published.objects} object(s), {published.size / MiB:.1f} MiB",
                highlight=False,
            )
    console.print(
        "\n6 toy models; each _load reads and hashes its asset, then sleeps 0.05-0.4 s "
        "(its load_seconds) to stand in for deserialising weights.\n",
        highlight=False,
    )
    concurrent_s, prediction = await _concurrent(settings("cache"), console)
    console.print(f"\npipeline.predict(...) -> {prediction}", highlight=False)

    start = time.perf_counter()
    async with ModelLibrary(MODELS, settings=settings("cache"), lazy_loading=False) as lib:
        warm_s = time.perf_counter() - start
        hits = sum(s.asset_source == "cache" for s in lib.status().values())
    console.print(
        f"warm start: {hits} assets from cache=True, 6 models in {warm_s:.2f} s",
        highlight=False,
    )
    sequential_s = await _sequential(settings("cache-sequential"))
    console.print(
        f"\n[bold]concurrent {concurrent_s:.2f} s vs sequential {sequential_s:.2f} s[/] "
        f"(one model after another, each fetched cold then loaded): "
        f"{sequential_s / concurrent_s:.1f}x faster",
        highlight=False,
    )
