"""The models the Ray Serve tests deploy; each replica imports this module by name.

Every load and close is written, with the replica's pid and wall-clock times, to a file of
its own in ``model_settings["log_dir"]``: the replicas are other processes, so the test reads
what happened in them from disk.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import ClassVar

import anyio

from aiomodelkit import Model

#: How long each load takes: long enough for concurrent loads to overlap measurably.
LOAD_SECONDS = 1.0
KEYS = tuple(f"m{i}" for i in range(6))


class Weights(Model[str, str]):
    """Predicts its key, its asset's content and the item."""

    CONFIGURATIONS: ClassVar = {key: {"asset": f"models/{key}:0.0"} for key in KEYS}

    def _load(self) -> None:  # sync: runs in a worker thread of the replica
        start = time.time()
        assert self.asset_path is not None
        self.weights = (self.asset_path / "weights.txt").read_text()
        time.sleep(LOAD_SECONDS)
        self._record_path("load").write_text(self._record("load", start))

    def _predict(self, item: str) -> str:
        return f"{self.configuration_key}:{self.weights}:{item}"

    async def close(self) -> None:
        await anyio.Path(self._record_path("close")).write_text(self._record("close", time.time()))

    def _record_path(self, event: str) -> Path:
        name = f"{event}-{self.configuration_key}-{os.getpid()}-{uuid.uuid4().hex}.json"
        return Path(self.model_settings["log_dir"]) / name

    def _record(self, event: str, start: float) -> str:
        return json.dumps(
            {
                "event": event,
                "key": self.configuration_key,
                "pid": os.getpid(),
                "start": start,
                "end": time.time(),
            }
        )
