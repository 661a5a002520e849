"""The command line: flags → the plan → the servers → every run → the results files.

Every process the harness starts is stopped on the way out, whatever happens (SIGTERM and
SIGINT unwind through the same ``finally`` blocks).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiomodelkit import Settings
from benchmarks import report
from benchmarks.workloads import Workload, critical_path, list_schedule
from benchmarks.workloads import workloads as make_workloads

from . import peers
from .matrix import CONDITIONS, Step, plan
from .services import Backends
from .suite import Options, Suite

__all__ = ["RESULTS", "main", "parse_args"]

# Bench-only dependency, absent from the typecheck environment: imported by name, typed Any.
psutil: Any = importlib.import_module("psutil")

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: aiomodelkit settings recorded with the results (the defaults unless --ours-setting).
REPORTED_SETTINGS = (
    "max_connections",
    "chunk_size",
    "range_threshold",
    "range_part_size",
    "max_load_threads",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--runs`` filled in: 5, or 2 with ``--quick``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness",
        description="The cold-start benchmark suite: aiomodelkit against its peers, on "
        "loopback, under latency.",
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down subset (< 5 min)")
    parser.add_argument("--full", action="store_true", help="the full suite (the default)")
    parser.add_argument("--runs", type=int, default=None, help="measured runs (5; quick: 2)")
    parser.add_argument("--conditions", default=None, help=f"subset of {','.join(CONDITIONS)}")
    parser.add_argument(
        "--workloads", default=None, help="subset of w1,w2,w3,w4,w5,w6,w6w,w7 (w6w: W6-wide)"
    )
    parser.add_argument("--peers", default=None, help=f"subset of {','.join(peers.ALL_PEERS)}")
    parser.add_argument("--stores", default=None, help="s3,gcs,azure (default: s3,gcs; quick: s3)")
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


def ours_settings(items: list[str]) -> dict[str, Any]:
    """``--ours-setting`` values, parsed as JSON where they parse (numbers, booleans)."""
    settings: dict[str, Any] = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            settings[name] = json.loads(value)
        except json.JSONDecodeError:
            settings[name] = value
    return settings


def plan_of(
    args: argparse.Namespace, workloads: dict[str, Workload], available: list[str]
) -> dict[str, list[Step]]:
    """The steps of each condition that the command line asks for."""
    return plan(
        workloads,
        available,
        quick=args.quick,
        conditions=args.conditions.split(",") if args.conditions else None,
        wanted=set(args.workloads.split(",")) if args.workloads else None,
        stores=args.stores.split(",") if args.stores else None,
        peers_chosen=args.peers is not None,
    )


def machine_info() -> dict[str, Any]:
    """CPU, memory, kernel and Python of this machine, for the results."""
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


def _workload_facts(workload: Workload, load_threads: int) -> dict[str, Any]:
    graph = workload.kind == "graph"
    scale = workload.load_scale
    return {
        "title": workload.title,
        "kind": workload.kind,
        "size": workload.size,
        "objects": workload.objects,
        "critical_path_s": critical_path(workload.graph, scale) if graph else None,
        "schedule_bound_s": list_schedule(workload.graph, load_threads, scale) if graph else None,
        "load_sum_s": sum(m.load_s for m in workload.graph) * scale if graph else None,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks the command line asks for; write ``benchmarks/results/<name>.*``."""
    # SIGTERM, and SIGINT even when a background shell ignores it, unwind through the
    # finally blocks below, so that every server, proxy and peer process is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    args = parse_args(argv)
    wanted_peers = args.peers.split(",") if args.peers else list(peers.ALL_PEERS)
    available, notes = peers.available_peers(wanted_peers)
    for note in notes:
        print(note, flush=True)
    workloads = make_workloads(args.quick)
    steps = plan_of(args, workloads, available)
    drop_caches = args.drop_caches
    if drop_caches:
        try:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        except OSError as exc:
            notes.append(f"--drop-caches unavailable ({exc}): warm page cache")
            drop_caches = False
    name = args.output or ("quick" if args.quick else "full")
    ours = ours_settings(args.ours_setting)
    # The settings ours really ran with: aiomodelkit's defaults, then --ours-setting.
    effective = {name: Settings.model_fields[name].default for name in REPORTED_SETTINGS} | ours
    if ours:
        notes.append(f"ours ran with non-default settings: {ours}")
    if args.ours_env:
        notes.append(f"ours ran with environment variables: {args.ours_env}")
    options = Options(
        runs=args.runs,
        profile=args.profile,
        drop_caches=drop_caches,
        ours_settings=ours,
        ours_env=tuple(args.ours_env),
    )
    started = time.time()
    stores = sorted({step.store for items in steps.values() for step in items})
    with ExitStack() as stack:
        stack.callback(peers.stop_all)
        work = Path(
            args.work_dir
            or stack.enter_context(tempfile.TemporaryDirectory(prefix="aiomodelkit-bench-"))
        )
        suite = Suite(options, work, Backends(stack, work, stores))
        for items in steps.values():
            for step in items:
                suite.publish(step.store, step.workload)
        try:
            for condition_key, items in steps.items():
                suite.run_condition(CONDITIONS[condition_key], items)
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
                    if drop_caches
                    else "warm: server data stays in the page cache (as a cloud store's would); "
                    "client files are written to the page cache, never fsynced"
                ),
                "machine": machine_info(),
                "versions": peers.versions(available),
                "conditions": {k: asdict(CONDITIONS[k]) for k in steps},
                "workloads": {
                    w.key: _workload_facts(w, effective.get("max_load_threads", 4))
                    for w in workloads.values()
                },
                "ours_settings": effective,
                "notes": notes,
                "records": [record.to_dict() for record in suite.records],
            }
            RESULTS.mkdir(parents=True, exist_ok=True)
            out = RESULTS / f"{name}.json"
            out.write_text(json.dumps(data, indent=1))
            print(f"wrote {out}", flush=True)
            report.write(data, RESULTS)
