"""What both parts share: the servers, the bucket layout, asset files and number formats."""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiomodelkit.stores import S3Store

if TYPE_CHECKING:
    from benchmarks.harness.services import ProxyProcess

MiB = 1024 * 1024
RESULTS = Path(__file__).resolve().parents[1] / "results"
BUCKET, PREFIX, SWAP_KEY, SWAP_ASSET = "bench", "runtime", "swap", "bench/swap"
LABEL = 16  # bytes at the head of a swap asset: its version, space-padded


@dataclass(frozen=True)
class Servers:
    """SeaweedFS and the proxy in front of it; stores open straight or through the proxy."""

    endpoint: str
    proxy: ProxyProcess
    key: str
    secret: str

    def store(self, *, direct: bool = False) -> S3Store:
        url = self.endpoint if direct else self.proxy.url
        return S3Store(
            BUCKET,
            PREFIX,
            endpoint_url=url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


def percentile_ms(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile in ms (None if no value)."""
    if not values:
        return None
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def write_asset(path: Path, size: int, seed: str, label: str = "") -> Path:
    """``size`` seeded random bytes at ``path``, after ``label`` padded to ``LABEL`` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = label.ljust(LABEL).encode() if label else b""
    path.write_bytes(head + random.Random(seed).randbytes(size - len(head)))
    return path


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def show_s(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def show_ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"
