"""The world of the bad-input tests (see ``_world.py``), built once per test."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from aiomodelkit.stores import _gcs_auth

from ._world import World, build_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


async def _no_metadata_server(host: str) -> bool:
    return False  # never a real DNS lookup from a test


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A published store, a warm cache and models, the environment pointing at them.

    Retries do not wait (a closed port fails at once anyway), and this machine is never a
    Compute Engine VM with a metadata server (so ``gs://`` without credentials fails fast
    without any DNS lookup).
    """
    monkeypatch.setenv("AIOMODELKIT_STORAGE", (tmp_path / "store").as_uri())
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AIOMODELKIT_PUSHED_BY", "bad-inputs")
    monkeypatch.setenv("AIOMODELKIT_RETRY_BACKOFF", "0")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(_gcs_auth, "_DMI_PRODUCT_NAME", tmp_path / "no-dmi")
    monkeypatch.setattr(_gcs_auth, "_resolves", _no_metadata_server)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI adds module directories
    modules = set(sys.modules)
    yield build_world(tmp_path)
    for name in set(sys.modules) - modules:
        if name.startswith(("models_", "missing_models_", "badspec_", "badversion_")):
            del sys.modules[name]
