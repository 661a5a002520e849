"""The caches of ``_helpers.py``, fresh for each test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._helpers import SPECS, Store, fetch, make_store, modelkit_fetch

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """The published store."""
    return make_store(tmp_path)


@pytest.fixture
def ours(store: Store, tmp_path: Path) -> Path:
    """A cache holding every version, written by aiomodelkit (the manager is closed)."""
    cache = tmp_path / "cache"
    fetch(store, cache, *SPECS)
    return cache


@pytest.fixture
def theirs(store: Store, tmp_path: Path) -> Path:
    """A cache holding every version, written by modelkit 0.1.3."""
    cache = tmp_path / "modelkit-cache"
    modelkit_fetch(store, cache, *SPECS)
    return cache
