"""``python -m benchmarks.fleet``: the options, the servers, the alternating runs, the results."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiomodelkit import FetchFinished, Settings
from aiomodelkit.testing import Throttle
from benchmarks.harness.services import REPO

from . import __doc__ as description
from .common import MODES, FleetRun, libraries, requests_per_copy
from .pods import Fleet, launch
from .report import rebuild, rows, save, targets
from .servers import Chain

if TYPE_CHECKING:
    from collections.abc import Callable

    from .common import Library


def _ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive integers, comma-separated")
    return values


def _variable(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("AIOMODELKIT_"):
        raise argparse.ArgumentTypeError("give AIOMODELKIT_NAME=VALUE")
    return name, value


def _names(choices: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part for part in text.split(",") if part]
        if unknown := sorted(set(names) - set(choices)):
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {choices}")
        return names

    return parse


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add: Callable[..., Any] = parser.add_argument
    add("--n", type=_ints, default=[4, 8, 16], help="pods per fleet (default 4,8,16)")
    add(
        "--workload",
        type=_names(["fleet", "w1", "w2", "w3", "w4"]),
        default=["fleet"],
        help="libraries, comma-separated (default fleet: three W4-like models)",
    )
    add("--runs", type=int, default=3, help="measured runs of each mode (default 3)")
    add("--cache", choices=("both", "separate", "shared"), default="both")
    add(
        "--shared-cache",
        action="store_const",
        const="shared",
        dest="cache",
        help="= --cache shared",
    )
    add("--modes", type=_names(list(MODES)), default=list(MODES), help="fixed64,adaptive")
    add("--no-throttle", action="store_true", help="a store that never refuses")
    add("--rate", type=float, default=200.0, help="throttle: requests per second (200)")
    add("--concurrency", type=int, default=64, help="throttle: requests in flight (64)")
    add("--retry-after", type=float, default=None, help="throttle: Retry-After seconds")
    add("--start-jitter", type=float, default=None, help="AIOMODELKIT_START_JITTER, seconds")
    add(
        "--env",
        type=_variable,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one more AIOMODELKIT_* variable for every pod, both modes (repeatable)",
    )
    add("--timeout", type=float, default=600.0, help="seconds a fleet may take (600)")
    add("--small", action="store_true", help="small assets (W1-W4 at the harness's quick sizes)")
    add("--quick", action="store_true", help="--small, N=4, 1 run: under a minute")
    add("--output", default=None, help="results/<output>.{json,md} (default fleet)")
    add("--work-dir", type=Path, default=None, help="keep scratch files here")
    add(
        "--rebuild",
        action="store_true",
        help="recompute the tables and targets of results/<output>.json from its runs; no run",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.runs, args.small = [4], 1, True
    args.output = args.output or ("tmp/fleet-quick" if args.quick else "fleet")
    return args


def _engine() -> tuple[dict[str, Any], str]:
    """What the engine under test offers, and the note the results print about it."""
    fields = Settings.model_fields
    engine: dict[str, Any] = {
        "adaptive_concurrency": "adaptive_concurrency" in fields,
        "start_jitter": "start_jitter" in fields,
        "metadata_connections": "metadata_connections" in fields,
        "fetch_requests": "requests" in FetchFinished.__dataclass_fields__,
    }
    git = ["git", "-C", str(REPO)]
    # Read-only: no optional lock, so a commit running beside the benchmark never meets ours.
    quiet = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, env=quiet
    )
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "src"], capture_output=True, text=True, env=quiet
    )
    engine["commit"] = head.stdout.strip() + (" + uncommitted src/" if dirty.stdout else "")
    if engine["adaptive_concurrency"]:
        note = f"Engine {engine['commit']}, with `adaptive_concurrency`."
    else:
        note = (
            f"**Measured before adaptive concurrency landed** (engine {engine['commit']}: "
            "`Settings` has no `adaptive_concurrency`, so both modes ran the fixed budget of "
            "64 connections; the rows differ by noise only)."
        )
    return engine, note


def _setup(args: argparse.Namespace, libs: list[Library]) -> str:
    if args.no_throttle:
        store = "a store that never refuses"
    else:
        store = (
            f"a hot prefix: every request into the bucket shares {args.rate:g} requests/s "
            f"and {args.concurrency} in flight (FaultProxy `Throttle`; above it, 503 "
            "SlowDown at once"
            + (f", Retry-After {args.retry_after:g} s" if args.retry_after else "")
            + ")"
        )
    what = "; ".join(
        f"{lib.key}: {lib.size / 2**20:.1f} MiB in {sum(len(a.files) for a in lib.assets)} "
        f"objects, {len(lib.assets)} models, {requests_per_copy(lib)} requests per cold start"
        for lib in libs
    )
    jitter = f", start jitter {args.start_jitter:g} s" if args.start_jitter else ""
    jitter += "".join(f", {name}={value}" for name, value in args.env)
    return (
        f"SeaweedFS behind 20 ms RTT (4 MiB window per connection) and {store}. {what}. "
        f"N pods released at once, each a fresh process opening a `ModelLibrary`{jitter}; "
        f"medians of {args.runs} run(s) per row, modes alternating, after one warm-up."
    )


def measure(
    args: argparse.Namespace, chain: Chain, libs: list[Library], work: Path
) -> list[FleetRun]:
    condition = "no-throttle" if args.no_throttle else "throttled"
    caches = ["separate", "shared"] if args.cache == "both" else [args.cache]
    extra = tuple(args.env)
    if args.start_jitter is not None:
        extra += (("AIOMODELKIT_START_JITTER", f"{args.start_jitter:g}"),)
    modes = [MODES[key] for key in args.modes]
    runs: list[FleetRun] = []
    count = 0

    def one(library: Library, mode_index: int, n: int, cache: str, run: int) -> None:
        nonlocal count
        count += 1
        fleet = Fleet(condition, library, modes[mode_index], n, cache, run, extra, args.timeout)
        result = launch(chain, fleet, work / f"run-{count:03d}")
        runs.append(result)
        print(_line(result), flush=True)

    for library in libs:
        one(library, 0, min(args.n), caches[0], -1)  # warm-up: server, page cache, proxies
        for run in range(args.runs):
            for cache in caches:
                for n in args.n:
                    order = range(len(modes)) if run % 2 == 0 else reversed(range(len(modes)))
                    for index in order:
                        one(library, index, n, cache, run)
    return runs


def _line(r: FleetRun) -> str:
    ready = "never" if r.all_ready_s is None else f"{r.all_ready_s:.2f} s"
    errors = {p.error or f"failed models {list(p.failed_models)}" for p in r.pods if not p.ok}
    return (
        f"{'warm-up' if r.run < 0 else f'run {r.run + 1}'} {r.library} {r.cache} N={r.n} "
        f"{MODES[r.mode].title}: all ready {ready} (last end {r.last_end_s:.2f} s), "
        f"requests {r.requests} (pods counted {r.pod_requests}), 503s {r.throttled}, "
        f"retries {r.retries}, from the store {r.bytes_store / 2**20:.1f} MiB, "
        f"failed {r.failed}" + (f": {sorted(errors)[:2]}" if errors else "")
    )


def main() -> None:
    args = parse()
    if args.rebuild:
        rebuild(args.output)
        print(f"rebuilt benchmarks/results/{args.output}.json and .md", flush=True)
        return
    command = " ".join(["python -m benchmarks.fleet", *sys.argv[1:]])
    engine, note = _engine()
    print(note, flush=True)
    throttle = (
        None
        if args.no_throttle
        else Throttle(rate=args.rate, concurrency=args.concurrency, retry_after=args.retry_after)
    )
    catalog = libraries(small=args.small)
    libs = [catalog[key] for key in args.workload]
    with ExitStack() as stack:
        if args.work_dir is None:
            work = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="aiomodelkit-fleet-"))
            )
        else:
            work = args.work_dir
            work.mkdir(parents=True, exist_ok=True)
        chain = Chain(stack, work, throttle)
        chain.publish(libs, work / "publish")
        shutil.rmtree(work / "publish", ignore_errors=True)
        load = os.getloadavg()[0]
        runs = measure(args, chain, libs, work)
        load_after = os.getloadavg()[0]
    found = rows(runs)
    one_copy = {lib.key: lib.size for lib in libs}
    found_targets = targets(found, not args.no_throttle, one_copy, runs)
    section: dict[str, Any] = {
        "title": "No throttle" if args.no_throttle else "Throttled: a hot prefix",
        "command": command,
        "setup": _setup(args, libs),
        "engine": engine,
        "engine_note": f"{note} Load average (1 min) {load:.1f} at the start, "
        f"{load_after:.1f} at the end (other work shares the machine).",
        "one_copy_bytes": one_copy,
        "rows": [dataclasses.asdict(r) for r in found],
        "targets": [dataclasses.asdict(t) for t in found_targets],
        "runs": [r.to_dict() for r in runs],
    }
    save("no-throttle" if args.no_throttle else "throttled", section, args.output)
    for target in found_targets:
        met = {None: "not measured", True: "met", False: "NOT met"}[target.met]
        print(f"target: {target.name}: {target.measured} -> {met}", flush=True)
    print(f"wrote benchmarks/results/{args.output}.json and .md", flush=True)


if __name__ == "__main__":
    main()
