"""What the fleet's parts share: the modes, the libraries, and the records of a pod and a run.

Pure: no servers, no processes (``tests/bench/test_fleet.py`` checks it without a network).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from aiomodelkit._values import TransferLimits
from benchmarks.workloads import Asset, FileSpec, KiB, MiB, workloads

__all__ = [
    "BUCKET",
    "MODES",
    "RESULTS",
    "FleetRun",
    "Library",
    "Mode",
    "PodReport",
    "libraries",
    "part_for",
    "requests_per_copy",
]

BUCKET = "bench"  # as the harness's Backends creates it
RESULTS = Path(__file__).resolve().parents[1] / "results"
#: aiomodelkit's defaults, for the request arithmetic (a library's own settings may differ).
RANGE_THRESHOLD, PART_SIZE = 64 * MiB, 8 * MiB


@dataclass(frozen=True)
class Mode:
    """A connection policy under test, given to each pod as ``AIOMODELKIT_*`` variables.

    Variables, not ``Settings`` fields: pydantic-settings ignores an ``AIOMODELKIT_*``
    variable that names no field (checked with aiomodelkit before ``adaptive_concurrency``
    existed), so the same command runs on an engine with or without the setting.
    """

    key: str
    title: str
    env: tuple[tuple[str, str], ...]


MODES: Final = {
    "fixed64": Mode(
        "fixed64",
        "fixed 64",
        (("AIOMODELKIT_ADAPTIVE_CONCURRENCY", "false"), ("AIOMODELKIT_MAX_CONNECTIONS", "64")),
    ),
    "adaptive": Mode("adaptive", "adaptive", (("AIOMODELKIT_ADAPTIVE_CONCURRENCY", "true"),)),
}


@dataclass(frozen=True)
class Library:
    """What every pod opens: one model per asset, each pinned (``name:0.0``: one ``.meta``
    read, no index)."""

    key: str
    title: str
    assets: tuple[Asset, ...]

    @property
    def size(self) -> int:
        """One copy's bytes (what a shared cache should take from the store, whatever N)."""
        return sum(a.size for a in self.assets)

    def models(self) -> dict[str, str]:
        """Model key -> pinned asset spec."""
        return {a.name.rsplit("/", 1)[-1]: f"{a.name}:{a.version}" for a in self.assets}


def _asset(name: str, groups: list[tuple[int, int, str]]) -> Asset:
    """A directory asset of ``count`` files of ``size`` per group, or a file asset for ``[(1,
    size, "")]``."""
    if groups[0][2] == "":
        return Asset(name, [FileSpec("", groups[0][1], name)], directory=False)
    files = [
        FileSpec(f"{stem}-{i:04d}.bin", size, f"{name}/{stem}/{i}")
        for count, size, stem in groups
        for i in range(count)
    ]
    return Asset(name, files, directory=True)


def libraries(small: bool) -> dict[str, Library]:
    """``fleet`` (three models over W4-like assets) and W1-W4 as one-model libraries.

    ``small`` (``--quick``) scales ``fleet`` down and takes W1-W4 at the harness's quick
    sizes; otherwise W1-W4 are full size (W1: 1 GiB per pod).
    """
    s = small
    fleet = (
        _asset(
            "bench/fleet/encoder",
            [
                (1, (8 if s else 64) * MiB, "weights"),  # 64 MiB: 8 ranged GETs + 1 HEAD
                (4 if s else 8, (1 if s else 2) * MiB, "shard"),
                (30 if s else 100, 4 * KiB, "vocab"),
            ],
        ),
        _asset("bench/fleet/tokenizer", [(20 if s else 50, 4 * KiB, "piece")]),
        _asset("bench/fleet/head", [(1, (2 if s else 8) * MiB, "")]),
    )
    found: dict[str, Library] = {
        "fleet": Library("fleet", "fleet: encoder (W4-like), tokenizer, head", fleet)
    }
    for key, workload in workloads(quick=small).items():
        if key in ("w1", "w2", "w3", "w4"):
            found[key] = Library(key, workload.title, tuple(workload.assets))
    return found


def part_for(size: int, part: int = PART_SIZE) -> int:
    """The range size the engine uses for an object of ``size`` bytes: its own rule
    (``TransferLimits.part_for``: parts grow past 128 per object, up to 64 MiB) where it has
    one, else ``part``.

    Example:
        >>> part_for(1024 * MiB) // MiB, part_for(8192 * MiB) // MiB
        (8, 64)
    """
    rule = getattr(TransferLimits(part_size=part), "part_for", None)
    return int(rule(size)) if rule is not None else part


def requests_per_copy(
    library: Library, threshold: int = RANGE_THRESHOLD, part: int = PART_SIZE
) -> int:
    """The store requests one cold start of ``library`` makes with nothing refused: per
    asset one ``.meta``, per object one GET, or from ``threshold`` up a HEAD and one ranged
    GET per :func:`part_for`.

    Example:
        >>> lib = libraries(small=False)["fleet"]
        >>> requests_per_copy(lib), round(lib.size / MiB, 1)
        (171, 88.6)
    """
    total = 0
    for asset in library.assets:
        total += 1
        for spec in asset.files:
            if spec.size >= threshold:
                total += 1 + math.ceil(spec.size / part_for(spec.size, part))
            else:
                total += 1
    return total


@dataclass(frozen=True)
class PodReport:
    """One pod's start, as its process printed it (or as the launcher saw it fail).

    Attributes:
        ready: epoch seconds when its library was open with every model loaded; None if
            it never was.
        ended: epoch seconds when the process ended (or printed its line).
        retries: ``Retrying`` events, by reason in ``retry_reasons``.
        requests: store operations it counted (``StoreRequest`` events: every attempt);
            ``throttled`` of them answered "slow down".
        fetch_requests: the sum of its fetches' ``requests`` (``FetchFinished.requests``,
            retries included); None on an engine without the field.
        bytes: bytes its fetches downloaded (``FetchFinished.size``).
        cpu_s: user + system CPU of the process from "go" to its line.
        settings: the connection settings the pod's ``Settings`` resolved (the mode's proof).
    """

    index: int
    ok: bool
    ready: float | None
    ended: float
    failed_models: tuple[str, ...] = ()
    error: str | None = None
    retries: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    throttled: int = 0
    fetch_requests: int | None = None
    bytes: int = 0
    cpu_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PodReport:
        """Read what :func:`dataclasses.asdict` wrote; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["failed_models"] = tuple(values.get("failed_models", ()))
        return cls(**values)


@dataclass(frozen=True)
class FleetRun:
    """One fleet start: N pods released at once, in one mode, one cache layout.

    Times are seconds from "go" (the launcher releasing every armed pod). ``all_ready_s`` is
    when the last pod was ready, None if any pod failed (the fleet never was all ready).
    ``requests`` and ``throttled`` are the fault proxy's (every request that reached it; the
    "slow down" answers its throttle sent); ``bytes_store`` is what the latency proxy carried
    from the store to the pods (bodies and headers).
    """

    condition: str
    library: str
    mode: str
    n: int
    cache: str
    run: int  # -1: the warm-up
    all_ready_s: float | None
    last_end_s: float
    ttr_s: tuple[float | None, ...]
    failed: int
    requests: int
    requests_by_method: dict[str, int]
    throttled: int
    retries: int
    bytes_store: int
    bytes_pods: int
    pod_requests: int
    cpu_s: dict[str, float]
    pods: tuple[PodReport, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FleetRun:
        """Read what :meth:`to_dict` wrote."""
        values = dict(data)
        values["ttr_s"] = tuple(values["ttr_s"])
        values["pods"] = tuple(PodReport.from_dict(p) for p in values.get("pods", ()))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return asdict(self)
