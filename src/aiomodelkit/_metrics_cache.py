"""``aiomodelkit_cache_bytes``: the size of each cache directory in use, measured on scrape.

A cache holds what other processes wrote too, and the cache commands prune it from outside,
so no running total kept from this process's events could be right. The collector walks each
directory when Prometheus scrapes, at most once per ``interval`` (10 s by default, a common
scrape interval) per directory, so a busy scraper costs one walk per interval. Blocking: the
exposition runs it in a worker thread.

Which directories: those this process's fetches used, learnt from their events (a cache
hit or a published version names its path, asset and version), or named explicitly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ._cache_scan import measure_tree

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CacheSizeCollector", "cache_root", "directory_bytes"]

NAME = "aiomodelkit_cache_bytes"
_HELP = (
    "Bytes of every file under each cache directory this process uses "
    "(measured on scrape, at most once per 10 s by default)"
)


def cache_root(path: Path, asset: str, version: str) -> Path | None:
    """The cache directory that holds ``asset``'s ``version`` at ``path`` (which may go on
    into a sub-part), or None if ``path`` does not look like one.

    Example:
        >>> cache_root(Path("/srv/cache/models/clf/1.0/weights/a.bin"), "models/clf", "1.0")
        PosixPath('/srv/cache')
    """
    parts = path.parts
    wanted = (*asset.split("/"), version)
    for start in range(len(parts) - len(wanted), 0, -1):  # the last match: the sub-part follows
        if parts[start : start + len(wanted)] == wanted:
            return Path(*parts[:start])
    return None


def directory_bytes(root: Path) -> int:
    """The bytes of every regular file under ``root`` (blocking; see :func:`measure_tree`)."""
    return measure_tree(root)[0]


class CacheSizeCollector(Collector):
    """Collects ``aiomodelkit_cache_bytes{assets_dir}`` for the directories it knows.

    Args:
        interval: seconds a measurement is reused for.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()
        self._measured: dict[Path, tuple[float, int]] = {}

    def add(self, directory: Path) -> None:
        """Measure ``directory`` from the next scrape on (cheap: called from listeners)."""
        if directory not in self._dirs:
            with self._lock:
                self._dirs = {*self._dirs, directory}

    def learn(self, path: Path, asset: str, version: str) -> None:
        """Add the cache directory holding ``asset``'s ``version`` at ``path``, if any."""
        root = cache_root(path, asset, version)
        if root is not None:
            self.add(root)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric, without measuring anything (what registering it asks)."""
        yield GaugeMetricFamily(NAME, _HELP, labels=["assets_dir"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(NAME, _HELP, labels=["assets_dir"])
        now = time.monotonic()
        for directory in sorted(self._dirs):
            measured = self._measured.get(directory)
            if measured is None or now - measured[0] >= self.interval:
                measured = (now, directory_bytes(directory))
                self._measured[directory] = measured
            family.add_metric([str(directory)], measured[1])
        yield family
