"""What runs where: the network conditions, which workloads run under each, and which peers.

:func:`plan` turns the command line's choices into the :class:`Step` s of each condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .peers import ALL_PEERS, AZURE_PEERS, GCS_PEERS

if TYPE_CHECKING:
    from benchmarks.workloads import Workload

__all__ = [
    "CAP_MBIT",
    "CAP_WINDOW",
    "CONDITIONS",
    "MATRIX",
    "QUICK_MATRIX",
    "RTT20_PEERS",
    "Condition",
    "Step",
    "plan",
]

#: The bandwidth cap: 100 MB/s, which the 2-core machine sustains with CPU to spare (the
#: README shows server, proxy and client CPU at this rate).
CAP_MBIT = 800.0
#: The per-connection window under the cap: 128 KiB at 20 ms RTT lets one connection carry
#: ~6.5 MB/s, 1/15 of the link. That is the cloud's proportion scaled down to this machine:
#: S3 serves one connection at ~90 MB/s, a 10 Gbit/s VM link carries 1,250 MB/s (1/14), so
#: a client needs many connections to fill the link. With the default 4 MiB window one
#: connection alone could nearly fill the cap, and every client would tie at the cap.
CAP_WINDOW = 128 * 1024


@dataclass(frozen=True)
class Condition:
    """A network condition: direct, or through the latency proxy."""

    key: str
    title: str
    rtt_ms: float | None = None
    rate_mbit: float | None = None
    window: int | None = None


CONDITIONS = {
    "raw": Condition("raw", "raw loopback"),
    "rtt20": Condition("rtt20", "20 ms RTT", 20.0),
    "rtt20-cap": Condition(
        "rtt20-cap",
        f"20 ms RTT, {CAP_WINDOW // 1024} KiB window, {CAP_MBIT:.0f} Mbit/s",
        20.0,
        CAP_MBIT,
        CAP_WINDOW,
    ),
}
#: Which workloads run under which condition. W3 is request-bound (a cap changes nothing),
#: W1/W2 are the bandwidth targets, W5 runs behind the proxy so that it counts requests.
#: W6 and W6-wide (``w6w``) are the two graph cold starts.
MATRIX = {
    "raw": ["w1", "w2", "w3", "w4"],
    "rtt20": ["w1", "w2", "w3", "w4", "w5", "w6", "w6w"],
    "rtt20-cap": ["w1", "w2", "w4", "w7"],
}
QUICK_MATRIX = {
    "raw": ["w1", "w3", "w4"],
    "rtt20": ["w1", "w2", "w3", "w4", "w5", "w6", "w6w"],
    "rtt20-cap": ["w1", "w2", "w4", "w7"],
}
LIBRARY_PEERS = ("ours", "modelkit")
#: The fetch peers that issue 17 puts in every report: on W1-W4 at 20 ms both subsets run
#: ours beside the limit, boto3's transfer manager and the two fastest tools, s5cmd and
#: obstore (the full subset runs every peer there anyway).
RTT20_PEERS = ("ours", "limit", "boto3-tm", "s5cmd", "obstore")
#: The quick subset's peers by (condition, workload) or workload: every peer on W4 on raw
#: loopback (where the sequential peers take a second, not a minute); at 20 ms, W1-W4 against
#: :data:`RTT20_PEERS` (and modelkit on W3, which its target names); elsewhere the peers the
#: targets name. Under the cap one connection carries ~6.5 MB/s, so modelkit and the loops
#: would take minutes of the five: W1, W2 and W4 there run against the limit and boto3's
#: transfer manager, and W7 (its target: downloaded once) runs ours alone.
QUICK_PEERS: dict[tuple[str, str] | str, tuple[str, ...]] = {
    ("raw", "w4"): ALL_PEERS,
    ("rtt20", "w1"): RTT20_PEERS,
    ("rtt20", "w2"): RTT20_PEERS,
    ("rtt20", "w3"): (*RTT20_PEERS, "modelkit"),
    ("rtt20", "w4"): RTT20_PEERS,
    "w1": ("ours", "limit", "boto3-tm"),
    "w2": ("ours", "limit", "boto3-tm"),
    "w4": ("ours", "limit", "boto3-tm"),
    "w7": ("ours",),
}
QUICK_DEFAULT_PEERS = ("ours", "limit", "boto3-tm", "modelkit")


@dataclass(frozen=True)
class Step:
    """One workload on one store under a condition, and the peers that run it."""

    store: str
    workload: Workload
    peers: tuple[str, ...]


def plan(
    workloads: dict[str, Workload],
    peers: list[str],
    *,
    quick: bool,
    conditions: list[str] | None = None,
    wanted: set[str] | None = None,
    stores: list[str] | None = None,
    peers_chosen: bool = False,
) -> dict[str, list[Step]]:
    """The steps of each condition, in order.

    Args:
        workloads: every workload by key.
        peers: the peers that can run here, in order.
        quick: the quick subset (its matrix, S3 only, the peers its targets name).
        conditions: the conditions to run (default: all of the matrix).
        wanted: the workloads to run (default: all of the matrix).
        stores: ``s3``, ``gcs`` and/or ``azure`` (default: ``s3`` and ``gcs``; quick:
            ``s3``).
        peers_chosen: the peers were chosen on the command line (the quick subset then
            runs them all).
    """
    matrix = QUICK_MATRIX if quick else MATRIX
    stores = stores or (["s3"] if quick else ["s3", "gcs"])
    steps: dict[str, list[Step]] = {}
    for condition in conditions or list(matrix):
        for key in matrix.get(condition, []):
            if wanted is not None and key not in wanted:
                continue
            workload = workloads[key]
            for store in stores:
                allowed: tuple[str, ...]
                if workload.kind == "fetch":
                    allowed = {"s3": ALL_PEERS, "gcs": GCS_PEERS}.get(store, AZURE_PEERS)
                elif store == "s3":
                    allowed = LIBRARY_PEERS
                else:
                    continue
                if quick and not peers_chosen:
                    named = QUICK_PEERS.get((condition, key), QUICK_PEERS.get(key))
                    allowed = tuple(p for p in allowed if p in (named or QUICK_DEFAULT_PEERS))
                chosen = tuple(p for p in peers if p in allowed)
                if chosen:
                    steps.setdefault(condition, []).append(Step(store, workload, chosen))
    return steps
