"""The cold-start benchmark suite: aiomodelkit against its peers, on loopback, under latency.

Quick subset (< 5 min, what ``nox -s bench`` runs)::

    python -m benchmarks.harness --quick

Full suite (see benchmarks/README.md for the time it takes)::

    python -m benchmarks.harness

The harness starts SeaweedFS (S3) and fake-gcs-server (GCS) on 127.0.0.1, publishes the
workloads of :mod:`benchmarks.workloads` with aiomodelkit's publisher, and for each network
condition (raw loopback; 20 ms RTT through :mod:`benchmarks.latency_proxy`; the same with a
128 KiB window per connection and an 800 Mbit/s cap) runs every peer in its own fresh
process: one warm-up round, then ``--runs`` rounds in alternation (A B C A B C ...). Each
run starts with an empty cache. Every process it starts is stopped on the way out, whatever
happens.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from aiomodelkit import Settings
from aiomodelkit.stores import GCSStore, S3Store, Store
from aiomodelkit.testing import FakeGCSServer, SeaweedFSServer

from . import peers as peer_mod
from . import report
from .runner import lag_summary
from .workloads import (
    PREFIX,
    Workload,
    critical_path,
    list_schedule,
    publish_asset,
    verify,
)
from .workloads import workloads as make_workloads

__all__ = ["CONDITIONS", "main"]

# Bench-only dependency, absent from the typecheck environment: imported by name, typed Any.
psutil: Any = importlib.import_module("psutil")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
PROFILES = RESULTS / "tmp" / "profiles"
#: aiomodelkit settings recorded with the results (the defaults unless --ours-setting).
REPORTED_SETTINGS = (
    "max_connections",
    "chunk_size",
    "range_threshold",
    "range_part_size",
    "max_load_threads",
)
#: The run index of the extra profiled run (negative: left out of the medians).
PROFILED = -2
BUCKET = "bench"
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
    "rtt20": ["w3", "w5", "w6", "w6w"],
    "rtt20-cap": ["w1", "w2", "w4", "w7"],
}
LIBRARY_PEERS = ("ours", "modelkit")
#: The quick subset's peers by (condition, workload) or workload: every peer on W4 on raw
#: loopback (where the sequential peers take a second, not a minute); elsewhere the peers the
#: targets name. Under the cap one connection carries ~6.5 MB/s, so modelkit and the loops
#: would take minutes of the five: W1, W2 and W4 there run against the limit and boto3's
#: transfer manager, and W7 (its target: downloaded once) runs ours alone.
QUICK_PEERS: dict[tuple[str, str] | str, tuple[str, ...]] = {
    ("raw", "w4"): peer_mod.ALL_PEERS,
    "w1": ("ours", "limit", "boto3-tm"),
    "w2": ("ours", "limit", "boto3-tm"),
    "w4": ("ours", "limit", "boto3-tm"),
    "w7": ("ours",),
}
QUICK_DEFAULT_PEERS = ("ours", "limit", "boto3-tm", "modelkit")


class ProxyProcess:
    """The latency proxy as a child process (its CPU is measured apart from the client's)."""

    def __init__(self, upstream: str, condition: Condition) -> None:
        host_port = upstream.removeprefix("http://")
        command = [sys.executable, "-m", "benchmarks.latency_proxy", "--upstream", host_port]
        command += ["--rtt-ms", str(condition.rtt_ms), "--control"]
        if condition.rate_mbit is not None:
            command += ["--rate-mbit", str(condition.rate_mbit)]
        if condition.window is not None:
            command += ["--window", str(condition.window)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH_DIR.parent,
            env=peer_mod.clean_env(),
        )
        line = self._readline()
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def _readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def command(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._readline())
        return answer

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Bystander:
    """An idle asyncio process ticking beside a run (``runner --bystander``): the loop lag
    the machine's scheduling alone causes while the run's processes share the cores."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.runner", "--bystander"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH_DIR.parent,
            env=peer_mod.clean_env(),
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "READY":
            self.process.kill()
            raise RuntimeError("the bystander ticker did not start")

    def stop(self) -> list[tuple[float, float]]:
        """Stop it; its samples, ``(epoch seconds, lag seconds)``."""
        try:
            out, _ = self.process.communicate("", timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return []
        lines = out.strip().splitlines()
        return [(t, lag) for t, lag in json.loads(lines[-1])] if lines else []


def window_lag(
    samples: list[tuple[float, float]], started: float | None, ended: float | None
) -> dict[str, float] | None:
    """The lag summary of the samples taken between ``started`` and ``ended`` (epoch
    seconds; every sample when either is unknown)."""
    if started is not None and ended is not None:
        samples = [s for s in samples if started <= s[0] <= ended]
    return lag_summary([lag for _, lag in samples])


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _child_pid(part: str) -> int | None:
    for child in psutil.Process().children(recursive=True):
        try:
            if part in child.name():
                return int(child.pid)
        except psutil.Error:
            continue
    return None


class Backends:
    """The object-store servers, and how to reach them directly."""

    def __init__(self, stack: ExitStack, work: Path, stores: list[str]) -> None:
        self.endpoints: dict[str, str] = {}
        self.pids: dict[str, int | None] = {}
        self.weed: SeaweedFSServer | None = None
        if "s3" in stores:
            weed = stack.enter_context(SeaweedFSServer(work / "seaweedfs"))
            weed.create_bucket(BUCKET)
            self.weed = weed
            self.endpoints["s3"] = weed.endpoint_url
            self.pids["s3"] = _child_pid("weed")
        if "gcs" in stores:
            gcs = stack.enter_context(FakeGCSServer())
            gcs.create_bucket(BUCKET)
            self.endpoints["gcs"] = gcs.endpoint_url
            self.pids["gcs"] = _child_pid("fake-gcs")

    @property
    def credentials(self) -> tuple[str, str]:
        assert self.weed is not None
        return self.weed.access_key, self.weed.secret_key

    def store(self, kind: str) -> Store:
        if kind == "s3":
            key, secret = self.credentials
            return S3Store(
                BUCKET,
                PREFIX,
                endpoint_url=self.endpoints["s3"],
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                region_name="us-east-1",
            )
        return GCSStore(BUCKET, PREFIX, api_root=self.endpoints["gcs"])


def _models(workload: Workload) -> list[dict[str, Any]]:
    """One model per asset: a graph workload's models (dependencies, declared load times),
    or W5's 50 independent models that load instantly."""
    graph = {m.key: m for m in workload.graph} if workload.kind == "graph" else {}
    models = []
    for asset in workload.assets:
        key = asset.name.rsplit("/", 1)[1]
        node = graph.get(key)
        models.append(
            {
                "key": key,
                "spec": asset.spec,
                "deps": list(node.deps) if node else [],
                "load_s": node.load_s * workload.load_scale if node else 0.0,
            }
        )
    return models


class Harness:
    """Runs the matrix and collects one record per run."""

    def __init__(self, args: argparse.Namespace, work: Path, backends: Backends) -> None:
        self.args = args
        self.work = work
        self.backends = backends
        self.records: list[dict[str, Any]] = []
        self.published: set[tuple[str, str]] = set()
        self.drop_caches = args.drop_caches
        self.ours_settings = ours_settings(args)

    def log(self, text: str) -> None:
        print(text, flush=True)

    # -- setup ----------------------------------------------------------------------------

    def publish(self, store_kind: str, workload: Workload) -> None:
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
        self, store_kind: str, endpoint: str, workload: Workload, dest: Path
    ) -> dict[str, Any]:
        job: dict[str, Any] = {
            "kind": workload.kind,
            "store": store_kind,
            "endpoint": endpoint,
            "bucket": BUCKET,
            "prefix": PREFIX,
            "specs": [a.spec for a in workload.assets],
            "objects": [
                {**obj, "final": f"{a.name}/{a.version}"}
                for a in workload.assets
                for obj in a.objects()
            ],
            "assets": [
                {
                    "key": f"{PREFIX}/{a.name}/{a.version}",
                    "final": f"{a.name}/{a.version}",
                    "directory": a.directory,
                }
                for a in workload.assets
            ],
            "dest": str(dest),
            "settings": self.ours_settings,
        }
        if store_kind == "s3":
            job["access_key"], job["secret_key"] = self.backends.credentials
        if workload.kind in ("warm", "graph"):
            job["models"] = _models(workload)
        return job

    def _env(self, peer: str, job: dict[str, Any], *, offline: bool = False) -> dict[str, str]:
        extra: dict[str, str] = {}
        if job["store"] == "s3" and peer in ("s5cmd", "modelkit"):
            extra.update(
                AWS_ACCESS_KEY_ID=job["access_key"],
                AWS_SECRET_ACCESS_KEY=job["secret_key"],
                AWS_DEFAULT_REGION="us-east-1",
                AWS_REGION="us-east-1",
            )
        if peer == "ours":
            for item in self.args.ours_env:
                name, _, value = item.partition("=")
                extra[name] = value
        if peer == "modelkit":
            extra.update(MODELKIT_ASSETS_DIR=job["dest"], MODELKIT_STORAGE_PREFIX=PREFIX)
            if not offline:  # modelkit's offline mode is "no provider"
                extra.update(
                    MODELKIT_STORAGE_PROVIDER="s3" if job["store"] == "s3" else "gcs",
                    MODELKIT_STORAGE_BUCKET=BUCKET,
                )
                if job["store"] == "s3":
                    extra["S3_ENDPOINT"] = job["endpoint"]
                else:
                    extra.update(STORAGE_EMULATOR_HOST=job["endpoint"], GOOGLE_CLOUD_PROJECT="b")
        return peer_mod.clean_env(extra)

    def _drop_page_cache(self) -> None:
        if self.drop_caches:
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
    ) -> dict[str, Any]:
        endpoint = proxy.url if proxy is not None else self.backends.endpoints[store_kind]
        persistent = workload.kind == "warm"  # W5 keeps each peer's warmed cache
        dest = self.work / "runs" / (f"{workload.key}-{peer}" if persistent else "current")
        if not persistent and dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True, exist_ok=True)
        job = self._job(store_kind, endpoint, workload, dest)
        if index == PROFILED:
            PROFILES.mkdir(parents=True, exist_ok=True)
            job["profile"] = str(
                PROFILES / f"{condition.key}-{store_kind}-{workload.key}-{peer}.txt"
            )
        offline = persistent and index != -1
        job["offline"] = offline
        env = self._env(peer, job, offline=offline)
        self._drop_page_cache()
        if proxy is not None:
            proxy.command("reset")
        server_pid = self.backends.pids.get(store_kind)
        server_cpu, proxy_cpu = _cpu(server_pid), _cpu(proxy.pid if proxy else None)
        bystander = Bystander()
        try:
            if workload.kind == "multi":
                result = self._run_multi(peer, job, env, workload.processes)
            else:
                result = peer_mod.run_peer(peer, job, env)
        finally:
            ticks = bystander.stop()
        result["idle_lag"] = window_lag(ticks, result.get("started"), result.get("ended"))
        result["server_cpu_s"] = _cpu(server_pid) - server_cpu
        if proxy is not None:
            result["proxy_cpu_s"] = _cpu(proxy.pid) - proxy_cpu
            stats = proxy.command("stats")
            result["requests_proxy"] = stats["total_requests"]
            result["requests_by_method"] = stats["requests"]
            result["connections_proxy"] = stats["connections"]
            result["bytes_down_proxy"] = stats["bytes_down"]
        if result.get("ok") and workload.kind != "warm" and peer != "limit":
            for asset in workload.assets:
                problem = verify(asset, dest)
                if problem is not None:
                    result.update(ok=False, error=f"verification failed: {problem}")
                    break
            result["verified"] = result.get("ok", False)
        if not persistent:
            shutil.rmtree(dest, ignore_errors=True)
        record = {
            "condition": condition.key,
            "store": store_kind,
            "workload": workload.key,
            "peer": peer,
            "run": index,
            "size": workload.size,
            "objects": workload.objects,
            **result,
        }
        if record.get("wall_s") and workload.kind in ("fetch", "multi"):
            record["mib_s"] = workload.size / (1024 * 1024) / record["wall_s"]
        return record

    def _run_multi(
        self, peer: str, job: dict[str, Any], env: dict[str, str], count: int
    ) -> dict[str, Any]:
        start_at = time.time() + 3.0  # every process has imported by then
        processes = [
            peer_mod.start_peer(peer, {**job, "start_at": start_at}, env) for _ in range(count)
        ]
        results = [peer_mod.finish(p) for p in processes]
        ok = all(r.get("ok") for r in results)
        ended = max(r.get("ended", start_at) for r in results)
        merged: dict[str, Any] = {
            "ok": ok,
            "peer": peer,
            "processes": results,
            "wall_s": ended - start_at,
            "started": start_at,
            "ended": ended,
            "cpu_s": sum(r.get("cpu_s", 0.0) for r in results),
            "peak_rss_mib": max(r.get("peak_rss_mib", 0.0) for r in results),
            "lag": None,
        }
        if all("bytes" in r for r in results):
            merged["bytes"] = sum(r["bytes"] for r in results)
        if not ok:
            merged["error"] = "; ".join(str(r.get("error")) for r in results if not r.get("ok"))
        return merged

    # -- the matrix -----------------------------------------------------------------------

    def run_condition(
        self, condition: Condition, plan: list[tuple[str, Workload, list[str]]]
    ) -> None:
        proxies: dict[str, ProxyProcess] = {}
        try:
            if condition.rtt_ms is not None:
                for store_kind in {s for s, _, _ in plan}:
                    proxies[store_kind] = ProxyProcess(
                        self.backends.endpoints[store_kind], condition
                    )
            for store_kind, workload, peers in plan:
                proxy = proxies.get(store_kind)
                self.log(f"== {condition.title} / {store_kind} / {workload.title}: {peers}")
                for index in range(-1, self.args.runs):
                    for peer in peers:
                        record = self.run_one(condition, store_kind, workload, peer, index, proxy)
                        self.records.append(record)
                        self._print(record)
                profiled = [p for p in ("ours", "limit") if p in peers]
                for peer in profiled if self.args.profile and workload.kind != "multi" else []:
                    record = self.run_one(condition, store_kind, workload, peer, PROFILED, proxy)
                    self.records.append(record)
                    self._print(record)
        finally:
            for proxy in proxies.values():
                proxy.stop()

    def _print(self, r: dict[str, Any]) -> None:
        tag = {-1: "warm-up", PROFILED: "profiled"}.get(r["run"], f"run {r['run'] + 1}")
        if not r.get("ok"):
            self.log(f"   {r['peer']:>16} {tag:>8}: FAILED {r.get('error', '')[:300]}")
            return
        extra = f" {r['mib_s']:8.1f} MiB/s" if "mib_s" in r else ""
        requests = r.get("requests_proxy", r.get("requests_self", "-"))
        self.log(
            f"   {r['peer']:>16} {tag:>8}: {r['wall_s']:8.3f} s{extra}  cpu {r['cpu_s']:6.2f} s"
            f"  rss {r.get('peak_rss_mib', 0):6.0f} MiB  requests {requests}"
        )


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scaled-down subset (< 5 min)")
    parser.add_argument("--full", action="store_true", help="the full suite (the default)")
    parser.add_argument("--runs", type=int, default=None, help="measured runs (5; quick: 2)")
    parser.add_argument("--conditions", default=None, help=f"subset of {','.join(CONDITIONS)}")
    parser.add_argument(
        "--workloads", default=None, help="subset of w1,w2,w3,w4,w5,w6,w6w,w7 (w6w: W6-wide)"
    )
    parser.add_argument("--peers", default=None, help=f"subset of {','.join(peer_mod.ALL_PEERS)}")
    parser.add_argument("--stores", default=None, help="s3,gcs (default: s3,gcs; quick: s3)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one extra pyinstrument-profiled run of ours (and the limit) per workload, "
        "written to benchmarks/results/tmp/profiles/",
    )
    parser.add_argument(
        "--ours-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Settings field for ours (and the limit's request plan), e.g. "
        "max_load_threads=8; repeatable; default: aiomodelkit's defaults",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for ours' processes only (e.g. MALLOC_ARENA_MAX=2)",
    )
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache per run")
    parser.add_argument("--output", default=None, help="results name (default: quick / full)")
    parser.add_argument("--work-dir", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick and --full exclude each other")
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    return args


def ours_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``--ours-setting`` values, parsed as JSON where they parse (numbers, booleans)."""
    settings: dict[str, Any] = {}
    for item in args.ours_setting:
        name, _, value = item.partition("=")
        try:
            settings[name] = json.loads(value)
        except json.JSONDecodeError:
            settings[name] = value
    return settings


def _plan(
    args: argparse.Namespace, workloads: dict[str, Workload], peers: list[str]
) -> dict[str, list[tuple[str, Workload, list[str]]]]:
    matrix = QUICK_MATRIX if args.quick else MATRIX
    conditions = args.conditions.split(",") if args.conditions else list(matrix)
    wanted = set(args.workloads.split(",")) if args.workloads else None
    stores = (args.stores or ("s3" if args.quick else "s3,gcs")).split(",")
    plan: dict[str, list[tuple[str, Workload, list[str]]]] = {}
    for condition in conditions:
        for key in matrix.get(condition, []):
            if wanted is not None and key not in wanted:
                continue
            workload = workloads[key]
            for store in stores:
                allowed: tuple[str, ...]
                if workload.kind == "fetch":
                    allowed = peer_mod.ALL_PEERS if store == "s3" else peer_mod.GCS_PEERS
                elif store == "s3":
                    allowed = LIBRARY_PEERS
                else:
                    continue
                if args.quick and args.peers is None:
                    quick = QUICK_PEERS.get((condition, key), QUICK_PEERS.get(key))
                    allowed = tuple(p for p in allowed if p in (quick or QUICK_DEFAULT_PEERS))
                chosen = [p for p in peers if p in allowed]
                if chosen:
                    plan.setdefault(condition, []).append((store, workload, chosen))
    return plan


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    # SIGTERM, and SIGINT even when a background shell ignores it, unwind through the
    # finally blocks below, so that every server, proxy and peer process is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    args = _parse(argv)
    wanted_peers = args.peers.split(",") if args.peers else list(peer_mod.ALL_PEERS)
    peers, notes = peer_mod.available_peers(wanted_peers)
    for note in notes:
        print(note, flush=True)
    workloads = make_workloads(args.quick)
    plan = _plan(args, workloads, peers)
    if args.drop_caches:
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        except OSError as exc:
            notes.append(f"--drop-caches unavailable ({exc}): warm page cache")
            args.drop_caches = False
    name = args.output or ("quick" if args.quick else "full")
    ours = ours_settings(args)
    # The settings ours really ran with: aiomodelkit's defaults, then --ours-setting.
    effective = {name: Settings.model_fields[name].default for name in REPORTED_SETTINGS} | ours
    if ours:
        notes.append(f"ours ran with non-default settings: {ours}")
    if args.ours_env:
        notes.append(f"ours ran with environment variables: {args.ours_env}")
    started = time.time()
    stores = sorted({store for items in plan.values() for store, _, _ in items})
    with ExitStack() as stack:
        stack.callback(peer_mod.stop_all)
        work = Path(
            args.work_dir
            or stack.enter_context(tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-"))
        )
        backends = Backends(stack, work, stores)
        harness = Harness(args, work, backends)
        for items in plan.values():
            for store_kind, workload, _ in items:
                harness.publish(store_kind, workload)
        try:
            for condition_key, items in plan.items():
                harness.run_condition(CONDITIONS[condition_key], items)
        finally:
            data = {
                "name": name,
                "command": " ".join(["python -m benchmarks.harness", *(argv or sys.argv[1:])]),
                "started": started,
                "duration_s": time.time() - started,
                "quick": args.quick,
                "runs": args.runs,
                "page_cache": (
                    "dropped before every run (sync; echo 3 > /proc/sys/vm/drop_caches)"
                    if args.drop_caches
                    else "warm: server data stays in the page cache (as a cloud store's would); "
                    "client files are written to the page cache, never fsynced"
                ),
                "machine": machine_info(),
                "versions": peer_mod.versions(peers),
                "conditions": {k: vars(CONDITIONS[k]) for k in plan},
                "workloads": {
                    w.key: {
                        "title": w.title,
                        "kind": w.kind,
                        "size": w.size,
                        "objects": w.objects,
                        "critical_path_s": critical_path(w.graph, w.load_scale)
                        if w.kind == "graph"
                        else None,
                        "schedule_bound_s": list_schedule(
                            w.graph, effective.get("max_load_threads", 4), w.load_scale
                        )
                        if w.kind == "graph"
                        else None,
                        "load_sum_s": sum(m.load_s for m in w.graph) * w.load_scale
                        if w.kind == "graph"
                        else None,
                    }
                    for w in workloads.values()
                },
                "ours_settings": effective,
                "notes": notes,
                "records": harness.records,
            }
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"{name}.json"
            out.write_text(json.dumps(data, indent=1))
            print(f"wrote {out}", flush=True)
            report.write(data, RESULTS)


if __name__ == "__main__":
    main()
