"""Running the matrix: publishing the workloads, one measured run, a condition's steps.

:class:`Suite` turns each (condition, store, workload, peer, run) into a :class:`~.records.Job`,
runs it in a fresh process beside an idle :class:`~.services.Bystander` (through the latency
proxy when the condition has one), checks the files off the clock, and keeps one
:class:`~.records.RunRecord` per run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from benchmarks.workloads import PREFIX, Workload, publish_asset, verify

from . import peers
from .records import AssetJob, ClientReport, Job, ModelJob, ObjectJob, RunRecord, RunResult
from .services import BUCKET, Backends, Bystander, ProxyProcess, cpu_seconds, window_lag

if TYPE_CHECKING:
    from .matrix import Condition, Step

__all__ = ["PROFILED", "PROFILES", "Options", "Suite", "models_of"]

PROFILES = Path(__file__).resolve().parents[1] / "results" / "tmp" / "profiles"
#: The run index of the extra profiled run (negative: left out of the medians).
PROFILED = -2


@dataclass(frozen=True)
class Options:
    """The command line's choices that shape each run.

    Attributes:
        runs: measured runs per peer (after one warm-up).
        profile: one extra pyinstrument-profiled run of ours and the limit per workload.
        drop_caches: drop the page cache before every run (needs root).
        ours_settings: aiomodelkit settings for ours (and the limit's request plan).
        ours_env: ``NAME=VALUE`` environment variables for ours' processes only.
    """

    runs: int
    profile: bool = False
    drop_caches: bool = False
    ours_settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    ours_env: tuple[str, ...] = ()


def models_of(workload: Workload) -> tuple[ModelJob, ...]:
    """One model per asset: a graph workload's models (dependencies, declared load times),
    or W5's 50 independent models that load instantly."""
    graph = {m.key: m for m in workload.graph} if workload.kind == "graph" else {}
    models = []
    for asset in workload.assets:
        key = asset.name.rsplit("/", 1)[1]
        node = graph.get(key)
        models.append(
            ModelJob(
                key=key,
                spec=asset.spec,
                deps=node.deps if node else (),
                load_s=node.load_s * workload.load_scale if node else 0.0,
            )
        )
    return tuple(models)


class Suite:
    """Runs the matrix and collects one record per run."""

    def __init__(self, options: Options, work: Path, backends: Backends) -> None:
        self.options = options
        self.work = work
        self.backends = backends
        self.records: list[RunRecord] = []
        self.published: set[tuple[str, str]] = set()

    def log(self, text: str) -> None:
        """Print a progress line."""
        print(text, flush=True)

    # -- setup ----------------------------------------------------------------------------

    def publish(self, store_kind: str, workload: Workload) -> None:
        """Publish the workload's assets to a store (once per store)."""
        todo = [a for a in workload.assets if (store_kind, a.name) not in self.published]
        if not todo:
            return
        self.log(f"publishing {workload.title} to {store_kind} ({len(todo)} asset(s)) ...")

        async def go() -> None:
            for asset in todo:  # the manager opens (and closes) the store itself
                await publish_asset(self.backends.store(store_kind), asset, self.work / "src")

        anyio.run(go)
        self.published.update((store_kind, a.name) for a in todo)

    # -- one run --------------------------------------------------------------------------

    def _job(
        self, peer: str, store_kind: str, endpoint: str, workload: Workload, dest: Path
    ) -> Job:
        key, secret = self.backends.credentials_of(store_kind)
        return Job(
            peer=peer,
            kind=workload.kind,
            store=store_kind,
            endpoint=endpoint,
            bucket=BUCKET,
            prefix=PREFIX,
            dest=str(dest),
            specs=tuple(a.spec for a in workload.assets),
            objects=tuple(
                ObjectJob(a.object_key(f), f.rel, f.size, f"{a.name}/{a.version}")
                for a in workload.assets
                for f in a.files
            ),
            assets=tuple(
                AssetJob(f"{PREFIX}/{a.name}/{a.version}", f"{a.name}/{a.version}", a.directory)
                for a in workload.assets
            ),
            settings=self.options.ours_settings,
            access_key=key,
            secret_key=secret,
            models=models_of(workload) if workload.kind in ("warm", "graph") else (),
        )

    def _env(self, job: Job) -> dict[str, str]:
        extra: dict[str, str] = {}
        if job.store == "s3" and job.peer in ("s5cmd", "modelkit"):
            extra.update(
                AWS_ACCESS_KEY_ID=job.access_key,
                AWS_SECRET_ACCESS_KEY=job.secret_key,
                AWS_DEFAULT_REGION="us-east-1",
                AWS_REGION="us-east-1",
            )
        if job.peer == "ours":
            for item in self.options.ours_env:
                name, _, value = item.partition("=")
                extra[name] = value
        if job.peer == "modelkit":
            extra.update(MODELKIT_ASSETS_DIR=job.dest, MODELKIT_STORAGE_PREFIX=PREFIX)
            if not job.offline:  # modelkit's offline mode is "no provider"
                extra.update(
                    MODELKIT_STORAGE_PROVIDER="s3" if job.store == "s3" else "gcs",
                    MODELKIT_STORAGE_BUCKET=BUCKET,
                )
                if job.store == "s3":
                    extra["S3_ENDPOINT"] = job.endpoint
                else:
                    extra.update(STORAGE_EMULATOR_HOST=job.endpoint, GOOGLE_CLOUD_PROJECT="b")
        return peers.clean_env(extra)

    def _drop_page_cache(self) -> None:
        if self.options.drop_caches:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")

    def run_one(
        self,
        condition: Condition,
        store_kind: str,
        workload: Workload,
        peer: str,
        index: int,
        proxy: ProxyProcess | None,
    ) -> RunRecord:
        """One run of one peer (index -1: the warm-up; :data:`PROFILED`: profiled)."""
        endpoint = proxy.url if proxy is not None else self.backends.endpoints[store_kind]
        persistent = workload.kind == "warm"  # W5 keeps each peer's warmed cache
        dest = self.work / "runs" / (f"{workload.key}-{peer}" if persistent else "current")
        if not persistent and dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True, exist_ok=True)
        job = self._job(peer, store_kind, endpoint, workload, dest)
        if index == PROFILED:
            PROFILES.mkdir(parents=True, exist_ok=True)
            name = f"{condition.key}-{store_kind}-{workload.key}-{peer}.txt"
            job = dataclasses.replace(job, profile=str(PROFILES / name))
        job = dataclasses.replace(job, offline=persistent and index != -1)
        env = self._env(job)
        self._drop_page_cache()
        if proxy is not None:
            proxy.reset()
        server_pid = self.backends.pids.get(store_kind)
        server_cpu = cpu_seconds(server_pid)
        proxy_cpu_before = cpu_seconds(proxy.pid if proxy else None)
        bystander = Bystander()
        try:
            if workload.kind == "multi":
                result = self._run_multi(job, env, workload.processes)
            else:
                result = peers.run_peer(job, env)
        finally:
            ticks = bystander.stop()
        idle_lag = window_lag(ticks, result.started, result.ended)
        server_cpu = cpu_seconds(server_pid) - server_cpu
        proxy_cpu = cpu_seconds(proxy.pid) - proxy_cpu_before if proxy is not None else None
        counts = proxy.counts() if proxy is not None else None
        verified = None
        if result.ok and workload.kind != "warm" and peer != "limit":
            for asset in workload.assets:
                problem = verify(asset, dest)
                if problem is not None:
                    error = f"verification failed: {problem}"
                    result = dataclasses.replace(result, ok=False, error=error)
                    break
            verified = result.ok
        if not persistent:
            shutil.rmtree(dest, ignore_errors=True)
        mib_s = None
        if result.wall_s and workload.kind in ("fetch", "multi"):
            mib_s = workload.size / (1024 * 1024) / result.wall_s
        return RunRecord(
            condition=condition.key,
            store=store_kind,
            workload=workload.key,
            run=index,
            size=workload.size,
            objects=workload.objects,
            result=result,
            idle_lag=idle_lag,
            server_cpu_s=server_cpu,
            proxy_cpu_s=proxy_cpu,
            proxy=counts,
            verified=verified,
            mib_s=mib_s,
        )

    def _run_multi(self, job: Job, env: dict[str, str], count: int) -> RunResult:
        start_at = time.time() + 3.0  # every process has imported by then
        timed = dataclasses.replace(job, start_at=start_at)
        processes = [peers.start_peer(timed, env) for _ in range(count)]
        results = tuple(peers.finish(p) for p in processes)
        ok = all(r.ok for r in results)
        ended = max(r.ended if r.ended is not None else start_at for r in results)
        received = [r.client.bytes for r in results]
        return RunResult(
            ok=ok,
            peer=job.peer,
            error=None if ok else "; ".join(str(r.error) for r in results if not r.ok),
            started=start_at,
            ended=ended,
            wall_s=ended - start_at,
            cpu_s=sum(r.cpu_s or 0.0 for r in results),
            peak_rss_mib=max(r.peak_rss_mib or 0.0 for r in results),
            client=ClientReport(bytes=None if None in received else sum(filter(None, received))),
            processes=results,
        )

    # -- the matrix -----------------------------------------------------------------------

    def run_condition(self, condition: Condition, steps: list[Step]) -> None:
        """Every step of one condition: a warm-up round, then the measured runs."""
        proxies: dict[str, ProxyProcess] = {}
        try:
            if condition.rtt_ms is not None:
                for store_kind in {step.store for step in steps}:
                    proxies[store_kind] = ProxyProcess(
                        self.backends.endpoints[store_kind], condition
                    )
            for step in steps:
                proxy = proxies.get(step.store)
                self.log(
                    f"== {condition.title} / {step.store} / {step.workload.title}: "
                    f"{list(step.peers)}"
                )
                for index in range(-1, self.options.runs):
                    for peer in step.peers:
                        self._keep(
                            self.run_one(condition, step.store, step.workload, peer, index, proxy)
                        )
                profiled = [p for p in ("ours", "limit") if p in step.peers]
                if not self.options.profile or step.workload.kind == "multi":
                    profiled = []
                for peer in profiled:
                    self._keep(
                        self.run_one(condition, step.store, step.workload, peer, PROFILED, proxy)
                    )
        finally:
            for proxy in proxies.values():
                proxy.stop()

    def _keep(self, record: RunRecord) -> None:
        self.records.append(record)
        result = record.result
        tag = {-1: "warm-up", PROFILED: "profiled"}.get(record.run, f"run {record.run + 1}")
        if not result.ok:
            self.log(f"   {result.peer:>16} {tag:>8}: FAILED {(result.error or '')[:300]}")
            return
        extra = f" {record.mib_s:8.1f} MiB/s" if record.mib_s is not None else ""
        requests: object = "-"
        if record.proxy is not None:
            requests = record.proxy.requests
        elif result.client.requests_self is not None:
            requests = result.client.requests_self
        self.log(
            f"   {result.peer:>16} {tag:>8}: {result.wall_s or 0.0:8.3f} s{extra}"
            f"  cpu {result.cpu_s or 0.0:6.2f} s"
            f"  rss {result.peak_rss_mib or 0.0:6.0f} MiB  requests {requests}"
        )
