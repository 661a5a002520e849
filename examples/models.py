"""Two small example models, the library the web recipes serve, and a script that publishes
their assets.

``vocabulary`` loads a word list (a directory asset) with an ``async def _load``;
``sentiment`` depends on it and loads word weights (a file asset) with a plain ``def _load``,
which the library runs in a worker thread. Two ``EXAMPLE_*`` variables make the recipes easy
to watch (and to test): ``EXAMPLE_LOAD_DELAY`` (seconds each ``_load`` sleeps, so ``/ready``
answers 503 for a while) and ``EXAMPLE_CLOSE_LOG`` (a file each model's ``close()`` appends
its key to).

Publish the assets to ``AIOMODELKIT_STORAGE`` with ``python -m examples.models``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiomodelkit import AssetExistsError, AssetsManager, Model, ModelLibrary

WORDS = ["a", "an", "and", "awful", "bad", "day", "good", "great", "pleasant", "sad", "the"]
WEIGHTS = {"awful": -2.0, "bad": -1.0, "sad": -1.0, "good": 1.0, "great": 2.0, "pleasant": 1.0}


class ExampleSettings(BaseSettings):
    """The examples' own knobs, read once by :func:`make_library` (the entry point)."""

    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

    load_delay: float = 0.0
    close_log: Path | None = None


class Vocabulary(Model[str, list[str]]):
    """Splits text into the words its vocabulary knows."""

    CONFIGURATIONS: ClassVar = {"vocabulary": {"asset": "examples/vocabulary:0[words.txt]"}}

    async def _load(self) -> None:
        # An async _load runs on the event loop: await I/O, never block.
        await anyio.sleep(self.model_settings.get("load_delay", 0.0))
        assert self.asset_path is not None
        self.words = frozenset((await anyio.Path(self.asset_path).read_text()).split())

    def _predict(self, item: str) -> list[str]:
        words = (word.strip(".,;:!?") for word in item.lower().split())
        return [word for word in words if word in self.words]

    async def close(self) -> None:
        await _log_close(self)


class SentimentResult(BaseModel):
    """What the sentiment model returns (FastAPI and pydantic serialise it as JSON)."""

    label: str
    score: float
    words: list[str]


class Sentiment(Model[str, SentimentResult]):
    """Scores text with word weights, using the vocabulary as its tokenizer."""

    CONFIGURATIONS: ClassVar = {
        "sentiment": {
            "asset": "examples/sentiment:0",
            "model_dependencies": {"tokenizer": "vocabulary"},
        }
    }

    def _load(self) -> None:
        # A plain-def _load runs in a worker thread: blocking here does not stall the server.
        time.sleep(self.model_settings.get("load_delay", 0.0))
        assert self.asset_path is not None
        self.weights: dict[str, float] = json.loads(self.asset_path.read_text())
        self.tokenizer = self.model_dependencies.get("tokenizer", Vocabulary)

    async def _predict(self, item: str) -> SentimentResult:
        words = await self.tokenizer.predict(item)
        score = sum(self.weights.get(word, 0.0) for word in words)
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        return SentimentResult(label=label, score=score, words=words)

    async def close(self) -> None:
        await _log_close(self)


async def _log_close(model: Model[Any, Any]) -> None:
    log = model.model_settings.get("close_log")
    if log is not None:
        line = f"closed {model.configuration_key}\n"
        async with await anyio.open_file(log, "a") as file:
            await file.write(line)


def make_library() -> ModelLibrary:
    """The library both web apps serve; store and cache come from ``AIOMODELKIT_*``."""
    knobs = ExampleSettings()
    extra = {"load_delay": knobs.load_delay, "close_log": knobs.close_log}
    # A dict of required models also merges settings into each model's model_settings.
    return ModelLibrary(
        [Vocabulary, Sentiment], required_models={"sentiment": extra, "vocabulary": extra}
    )


def _write_sources(root: Path) -> None:
    (root / "vocabulary").mkdir()
    (root / "vocabulary" / "words.txt").write_text("\n".join(WORDS) + "\n")
    (root / "vocabulary" / "LICENSE").write_text("public domain\n")
    (root / "sentiment.json").write_text(json.dumps(WEIGHTS))


async def publish_assets() -> None:
    """Publish ``examples/vocabulary`` and ``examples/sentiment`` unless they exist."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await anyio.to_thread.run_sync(_write_sources, root)
        async with AssetsManager() as am:
            for source, name in (
                ("vocabulary", "examples/vocabulary"),
                ("sentiment.json", "examples/sentiment"),
            ):
                try:
                    published = await am.new(root / source, name)
                except AssetExistsError:
                    print(f"{name} already exists")
                else:
                    print(f"published {published.spec}")


if __name__ == "__main__":
    anyio.run(publish_assets)
