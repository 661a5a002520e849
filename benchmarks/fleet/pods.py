"""One fleet start: N pod processes armed, released at once, collected into a :class:`FleetRun`.

Each pod (:mod:`.child`) is a fresh interpreter that imports everything and then waits: on 16
processes and two cores the imports alone take seconds, so a start time fixed in advance
would release some pods before they are ready and measure their imports. The launcher
waits for every ``ARMED``, notes the time ("go"), then writes ``go`` to every pod's stdin;
every time is measured from that moment, so a pod the scheduler runs late counts late, as a
pod would on a busy node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from benchmarks.harness.peers import clean_env
from benchmarks.harness.services import REPO
from benchmarks.workloads import PREFIX

from .common import BUCKET, FleetRun, PodReport

if TYPE_CHECKING:
    from pathlib import Path

    from .common import Library, Mode
    from .servers import Chain

__all__ = ["Fleet", "launch"]


@dataclass(frozen=True)
class Fleet:
    """What one start runs: which library, how many pods, which mode, which cache layout.

    Attributes:
        cache: ``separate`` (a cache directory per pod: pods on different nodes) or
            ``shared`` (one directory for all: pods on one node sharing a host volume).
        env: more ``AIOMODELKIT_*`` variables for every pod (``--start-jitter``).
    """

    condition: str
    library: Library
    mode: Mode
    n: int
    cache: str
    run: int
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 600.0


def _job(chain: Chain, fleet: Fleet, index: int, work: Path) -> str:
    key, secret = chain.credentials
    cache = work / ("cache" if fleet.cache == "shared" else f"cache-{index}")
    return json.dumps(
        {
            "index": index,
            "endpoint": chain.endpoint,
            "bucket": BUCKET,
            "prefix": PREFIX,
            "key": key,
            "secret": secret,
            "cache": str(cache),
            "models": fleet.library.models(),
        }
    )


def _spawn(job: str, env: dict[str, str], stderr: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fleet.child", job],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,  # a file: a chatty pod must never block on a full pipe
        text=True,
        cwd=REPO,
        env=env,
    )


def _release(pods: list[subprocess.Popen[str]], armed: list[bool]) -> None:
    for pod, ready in zip(pods, armed, strict=True):
        assert pod.stdin is not None
        try:
            pod.stdin.write("go\n" if ready else "stop\n")
            pod.stdin.close()
        except OSError:  # it died while arming; its report says so
            pass


def _collect(pod: subprocess.Popen[str], index: int, deadline: float, err: Path) -> PodReport:
    try:
        pod.wait(timeout=max(0.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pod.kill()
        pod.wait()
        return PodReport(index, ok=False, ready=None, ended=time.time(), error="timed out")
    assert pod.stdout is not None
    lines = pod.stdout.read().strip().splitlines()
    try:
        report = PodReport.from_dict(json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        tail = err.read_text(errors="replace").strip().splitlines()[-3:]
        error = f"exit code {pod.returncode}, no report: {' | '.join(tail)}"
        return PodReport(index, ok=False, ready=None, ended=time.time(), error=error)
    if pod.returncode != 0 and report.ok:
        return replace(report, ok=False, error=f"exit code {pod.returncode}")
    return report


def launch(chain: Chain, fleet: Fleet, work: Path) -> FleetRun:
    """Start ``fleet.n`` pods on fresh caches under ``work``, release them at once and wait
    for every one to be ready or to fail (or ``fleet.timeout``)."""
    work.mkdir(parents=True)
    chain.reset()
    env = clean_env(dict(fleet.mode.env + fleet.env))
    errs = [(work / f"pod-{i}.err").open("w") for i in range(fleet.n)]
    pods: list[subprocess.Popen[str]] = []
    try:
        for i in range(fleet.n):
            pods.append(_spawn(_job(chain, fleet, i, work), env, errs[i]))
        armed = []
        for pod in pods:
            assert pod.stdout is not None
            armed.append(pod.stdout.readline().strip() == "ARMED")
        cpu = chain.cpu()
        go = time.time()
        _release(pods, armed)
        deadline = go + fleet.timeout
        reports = [_collect(pod, i, deadline, work / f"pod-{i}.err") for i, pod in enumerate(pods)]
    finally:
        for pod in pods:
            if pod.poll() is None:  # the launcher itself failed: leave no pod behind
                pod.kill()
                pod.wait()
            for stream in (pod.stdin, pod.stdout):
                if stream is not None:
                    stream.close()
        for handle in errs:
            handle.close()
    after = chain.cpu()
    chain.check()
    requests, by_method = chain.requests()
    ttr = tuple(None if r.ready is None else round(r.ready - go, 4) for r in reports)
    failed = sum(not r.ok for r in reports)
    cpu_s = {name: round(after[name] - cpu[name], 3) for name in cpu}
    cpu_s["pods"] = round(sum(r.cpu_s for r in reports), 3)
    run = FleetRun(
        condition=fleet.condition,
        library=fleet.library.key,
        mode=fleet.mode.key,
        n=fleet.n,
        cache=fleet.cache,
        run=fleet.run,
        all_ready_s=None if failed else max(t for t in ttr if t is not None),
        last_end_s=round(max(r.ended for r in reports) - go, 4),
        ttr_s=ttr,
        failed=failed,
        requests=requests,
        requests_by_method=by_method,
        throttled=chain.throttled(),
        retries=sum(r.retries for r in reports),
        bytes_store=chain.carried().bytes_down,
        bytes_pods=sum(r.bytes for r in reports),
        pod_requests=sum(r.requests for r in reports),
        cpu_s=cpu_s,
        pods=tuple(reports),
    )
    for directory in work.glob("cache*"):  # the pods' error output stays beside them
        shutil.rmtree(directory, ignore_errors=True)
    return run
