r"""The demo's six toy models and the files of their five assets.

Each ``_load`` really reads and hashes its asset, then sleeps its ``load_seconds`` setting
(0.05-0.4 s) to stand in for the time a real model takes to deserialise its weights. The
graph has three tiers, so the longest chain of loads is tokenizer → classifier → pipeline
(0.75 s) while the loads add up to 1.55 s::

    tokenizer   embeddings   langid
      |     \         |         |
    sentiment    classifier     |
           \         |         /
            pipeline (no asset)

Assets are pinned to complete versions (``:0.0``), so a start whose assets are cached has
nothing to ask the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from ._model import Model
from ._values import MiB

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["MODELS", "Pipeline", "make_sources"]

WORDS = "the a this is great good bad awful model library fast slow day service".split()
#: Small files of the tokenizer's asset: on a remote store, one request each.
TOKENIZER_PARTS = 100


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
    """Splits text and keeps the words of its vocabulary."""

    CONFIGURATIONS: ClassVar = {
        "tokenizer": {"asset": "demo/tokenizer:0.0", "model_settings": {"load_seconds": 0.3}}
    }

    def _load(self) -> None:
        super()._load()
        assert self.asset_path is not None
        self.vocab = set((self.asset_path / "vocab" / "part-000.txt").read_text().split())

    def _predict(self, item: str) -> list[str]:
        return [word for word in item.lower().split() if word in self.vocab]


class Embeddings(_ToyModel):
    """A number per word."""

    CONFIGURATIONS: ClassVar = {
        "embeddings": {"asset": "demo/embeddings:0.0", "model_settings": {"load_seconds": 0.3}}
    }

    def _predict(self, item: str) -> float:
        return (hashlib.sha256(item.encode()).digest()[0] - 128) / 128


class LanguageId(Model[str, str]):
    """An ``async def _load``: it runs on the event loop, so it awaits instead of blocking."""

    CONFIGURATIONS: ClassVar = {
        "langid": {"asset": "demo/langid:0.0", "model_settings": {"load_seconds": 0.2}}
    }

    async def _load(self) -> None:
        assert self.asset_path is not None
        self.size = len(await anyio.Path(self.asset_path).read_bytes())
        await anyio.sleep(self.model_settings["load_seconds"])

    def _predict(self, item: str) -> str:
        return "en" if item.isascii() else "unknown"


class Sentiment(_ToyModel):
    """Sums word weights over the tokenizer's words."""

    CONFIGURATIONS: ClassVar = {
        "sentiment": {
            "asset": "demo/sentiment:0.0",
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
    """Picks a label from the embeddings of the tokenizer's words."""

    CONFIGURATIONS: ClassVar = {
        "classifier": {
            "asset": "demo/classifier:0.0",
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
    """No asset: combines the three models above it."""

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


def make_sources(root: Path, size_mib: int) -> dict[str, Path]:
    """Write the five assets' files under ``root`` (blocking: call it in a worker thread).

    Args:
        root: a directory to create.
        size_mib: the size of the classifier's weights, the largest file.

    Returns:
        The file or directory to publish, by asset name.
    """
    tokenizer = root / "tokenizer"
    (tokenizer / "vocab").mkdir(parents=True)
    (tokenizer / "vocab" / "part-000.txt").write_text("\n".join(WORDS))
    for index in range(1, TOKENIZER_PARTS):
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
