"""Process measurements shared by the peer processes (stdlib only: modelkit's venv imports it)."""

from __future__ import annotations

import os
import resource
import time

__all__ = ["MiB", "cpu_s", "peak_rss_mib", "rss_mib", "simulate_load"]

MiB = 1024 * 1024


def rss_mib() -> float:
    """The process's resident memory now."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MiB


def peak_rss_mib() -> float:
    """The process's peak resident memory."""
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss still counts the parent's pages.
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    """User + system CPU seconds of the process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def simulate_load(asset_path: str | os.PathLike[str], seconds: float) -> None:
    """What every peer's benchmark model does in ``_load``, like a real model: read its
    asset, then spend the declared time I/O-like, the GIL released (as numpy or torch
    loading mostly does)."""
    with open(asset_path, "rb") as handle:
        while handle.read(MiB):
            pass
    time.sleep(seconds)
