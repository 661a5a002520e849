"""The harness's typed records: one measured run as a peer receives it, and what it measured.

* :class:`Job`: everything a peer process needs for one run (the harness writes it to a JSON
  file, the peer reads it back);
* :class:`RunResult`: what the peer process measured (its last stdout line, as JSON), with
  the :class:`ClientReport` of what the client counted itself;
* :class:`RunRecord`: a result placed in the matrix, with what the harness measured around
  it (server and proxy CPU, requests seen by the proxy, the idle bystander's lag): one entry
  of the results file's ``records``.

Stdlib only: the modelkit peer imports it in its own virtualenv. ``to_dict`` writes the flat
records that ``benchmarks/report.py`` reads (a field that was not measured is left out).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "AssetJob",
    "ClientReport",
    "Job",
    "LagSummary",
    "ModelJob",
    "ObjectJob",
    "ProxyCounts",
    "RunRecord",
    "RunResult",
]


@dataclass(frozen=True, slots=True)
class ObjectJob:
    """One object to download.

    Attributes:
        key: its key in the bucket, prefix included.
        rel: its path inside a directory asset (``""`` for a file asset).
        size: its size in bytes.
        final: the asset's ``<name>/<version>``, where a modelkit-layout cache keeps it.
    """

    key: str
    rel: str
    size: int
    final: str

    def target(self, dest: Path) -> Path:
        """Where the object's file belongs under the cache directory ``dest``."""
        base = dest / self.final
        return base / self.rel if self.rel else base


@dataclass(frozen=True, slots=True)
class AssetJob:
    """One asset (for peers that copy whole assets, such as s5cmd)."""

    key: str
    final: str
    directory: bool


@dataclass(frozen=True, slots=True)
class ModelJob:
    """One model of a library workload: its asset, dependencies and declared load time."""

    key: str
    spec: str
    deps: tuple[str, ...] = ()
    load_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Job:
    """One measured run of one peer.

    Attributes:
        peer: who runs (``ours``, ``limit``, ``boto3-tm``, ``modelkit``...).
        kind: the workload's kind (``fetch``, ``warm``, ``graph``, ``multi``).
        store: ``s3``, ``gcs`` or ``azure``.
        endpoint: the URL the peer talks to (the server, or the latency proxy).
        bucket: the bucket.
        prefix: the key prefix of every asset.
        dest: the cache directory of this run.
        specs: the asset specs to fetch.
        objects: every object, for peers that download object by object.
        assets: every asset, for peers that copy whole assets.
        settings: aiomodelkit settings for ours (and the limit's request plan).
        access_key: the S3 access key, or the Azure account (empty for GCS).
        secret_key: the S3 secret, or the Azure account key (empty for GCS).
        models: the models of a library workload (``warm`` or ``graph``).
        offline: start the library offline (W5's measured runs).
        profile: write a pyinstrument profile of the run to this path.
        start_at: epoch seconds to start at (processes of one ``multi`` run start together).
    """

    peer: str
    kind: str
    store: str
    endpoint: str
    bucket: str
    prefix: str
    dest: str
    specs: tuple[str, ...]
    objects: tuple[ObjectJob, ...]
    assets: tuple[AssetJob, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    access_key: str = ""
    secret_key: str = ""
    models: tuple[ModelJob, ...] = ()
    offline: bool = False
    profile: str | None = None
    start_at: float | None = None

    def model_configurations(self) -> dict[str, dict[str, Any]]:
        """The library workload's models as configurations, the same for every peer."""
        return {
            m.key: {
                "asset": m.spec,
                "model_dependencies": list(m.deps),
                "model_settings": {"load_s": m.load_s},
            }
            for m in self.models
        }

    def to_json(self) -> str:
        """The job as JSON, for the peer process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        """Read a job written by :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            **{
                **data,
                "specs": tuple(data["specs"]),
                "objects": tuple(ObjectJob(**item) for item in data["objects"]),
                "assets": tuple(AssetJob(**item) for item in data["assets"]),
                "models": tuple(
                    ModelJob(**{**item, "deps": tuple(item["deps"])}) for item in data["models"]
                ),
            }
        )


@dataclass(frozen=True, slots=True)
class LagSummary:
    """How late a 10 ms ticker woke up, in milliseconds."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LagSummary | None:
        """p50, p99 and max of lag samples (in seconds); None without samples.

        Example:
            >>> LagSummary.of([0.001, 0.002, 0.010])
            LagSummary(p50_ms=2.0, p99_ms=10.0, max_ms=10.0)
        """
        if not samples:
            return None
        ordered = sorted(samples)

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return cls(pick(0.50), pick(0.99), ordered[-1] * 1000)

    @classmethod
    def from_dict(cls, data: dict[str, float] | None) -> LagSummary | None:
        """Read what :func:`dataclasses.asdict` wrote (None stays None)."""
        return None if data is None else cls(**data)


@dataclass(frozen=True, slots=True)
class ClientReport:
    """What a client counted itself during a run (None: it does not count that).

    Attributes:
        bytes: bytes received.
        requests_self: requests it sent.
        from_cache: every asset came from the cache.
        models: models loaded by a library.
        timeline_s: the first event of each kind, and the library's lifecycle, in seconds
            from the clock's start.
        events: every library and asset event: ``(model or asset, event, seconds)``.
    """

    bytes: int | None = None
    requests_self: int | None = None
    from_cache: bool | None = None
    models: int | None = None
    timeline_s: dict[str, float] | None = None
    events: tuple[tuple[str, str, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one peer process measured (times in seconds, ``started``/``ended`` epoch).

    ``processes`` holds each process's own result for a run of several processes (W7).
    """

    ok: bool
    peer: str
    error: str | None = None
    stderr: str | None = None
    started: float | None = None
    ended: float | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mib: float | None = None
    base_rss_mib: float | None = None
    lag: LagSummary | None = None
    client: ClientReport = field(default_factory=ClientReport)
    processes: tuple[RunResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready: the client's counts beside the measurements."""
        data: dict[str, Any] = {"ok": self.ok, "peer": self.peer}
        for name in ("error", "stderr", "started", "ended", "wall_s", "cpu_s"):
            data[name] = getattr(self, name)
        data["peak_rss_mib"], data["base_rss_mib"] = self.peak_rss_mib, self.base_rss_mib
        data["lag"] = asdict(self.lag) if self.lag is not None else None
        data.update(asdict(self.client))
        if self.processes:
            data["processes"] = [process.to_dict() for process in self.processes]
        return {name: value for name, value in data.items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Read what :meth:`to_dict` wrote."""
        events = data.get("events")
        client = ClientReport(
            bytes=data.get("bytes"),
            requests_self=data.get("requests_self"),
            from_cache=data.get("from_cache"),
            models=data.get("models"),
            timeline_s=data.get("timeline_s"),
            events=None if events is None else tuple((w, k, t) for w, k, t in events),
        )
        return cls(
            ok=bool(data["ok"]),
            peer=str(data["peer"]),
            error=data.get("error"),
            stderr=data.get("stderr"),
            started=data.get("started"),
            ended=data.get("ended"),
            wall_s=data.get("wall_s"),
            cpu_s=data.get("cpu_s"),
            peak_rss_mib=data.get("peak_rss_mib"),
            base_rss_mib=data.get("base_rss_mib"),
            lag=LagSummary.from_dict(data.get("lag")),
            client=client,
            processes=tuple(cls.from_dict(item) for item in data.get("processes", ())),
        )

    def to_json(self) -> str:
        """One line of JSON (a peer process's last stdout line)."""
        return json.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class ProxyCounts:
    """What the latency proxy saw during one run."""

    requests: int
    by_method: dict[str, int]
    connections: int
    bytes_down: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run in the matrix: the peer's result and what the harness measured around it.

    Attributes:
        condition: the network condition's key.
        store: ``s3``, ``gcs`` or ``azure``.
        workload: the workload's key.
        run: the run's index (``-1``: the warm-up; ``-2``: an extra profiled run).
        size: the workload's bytes.
        objects: the workload's objects.
        result: what the peer measured (``ok`` False if its files failed verification).
        idle_lag: the lag of an idle bystander process over the run's window.
        server_cpu_s: CPU seconds of the object-store server during the run.
        proxy_cpu_s: CPU seconds of the latency proxy (None: no proxy).
        proxy: requests and bytes the proxy saw (None: no proxy).
        verified: every file matched its SHA-256 (None: not checked).
        mib_s: throughput, for fetch workloads.
    """

    condition: str
    store: str
    workload: str
    run: int
    size: int
    objects: int
    result: RunResult
    idle_lag: LagSummary | None = None
    server_cpu_s: float = 0.0
    proxy_cpu_s: float | None = None
    proxy: ProxyCounts | None = None
    verified: bool | None = None
    mib_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """One entry of the results file's ``records`` (flat, as report.py reads them)."""
        data: dict[str, Any] = {
            "condition": self.condition,
            "store": self.store,
            "workload": self.workload,
            "peer": self.result.peer,
            "run": self.run,
            "size": self.size,
            "objects": self.objects,
            **self.result.to_dict(),
            "idle_lag": asdict(self.idle_lag) if self.idle_lag is not None else None,
            "server_cpu_s": self.server_cpu_s,
            "proxy_cpu_s": self.proxy_cpu_s,
        }
        if self.proxy is not None:
            data["requests_proxy"] = self.proxy.requests
            data["requests_by_method"] = self.proxy.by_method
            data["connections_proxy"] = self.proxy.connections
            data["bytes_down_proxy"] = self.proxy.bytes_down
        data["verified"], data["mib_s"] = self.verified, self.mib_s
        # idle_lag stays even when None: the report reads it for every run.
        return {k: v for k, v in data.items() if v is not None or k == "idle_lag"}
