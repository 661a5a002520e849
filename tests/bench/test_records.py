"""The harness's typed records: JSON round trips, and the flat records the report reads."""

from __future__ import annotations

import doctest
from pathlib import Path

from benchmarks import report
from benchmarks.harness import records
from benchmarks.harness.records import (
    AssetJob,
    ClientReport,
    Job,
    LagSummary,
    ModelJob,
    ObjectJob,
    ProxyCounts,
    RunRecord,
    RunResult,
)


def test_doctests() -> None:
    result = doctest.testmod(records)
    assert result.attempted > 0
    assert result.failed == 0


def test_job_round_trips_through_json() -> None:
    job = Job(
        peer="ours",
        kind="graph",
        store="s3",
        endpoint="http://127.0.0.1:9000",
        bucket="bench",
        prefix="assets",
        dest="/tmp/run",
        specs=("bench/w6/m00:0.0",),
        objects=(ObjectJob("assets/bench/w3/0.0/f-0000.bin", "f-0000.bin", 16, "bench/w3/0.0"),),
        assets=(AssetJob("assets/bench/w3/0.0", "bench/w3/0.0", True),),
        settings={"max_connections": 8},
        access_key="AK",
        secret_key="secret",
        models=(ModelJob("m08", "bench/w6/m08:0.0", ("m00", "m01"), 0.3),),
        offline=True,
        start_at=12.5,
    )
    assert Job.from_json(job.to_json()) == job
    [obj] = job.objects
    assert obj.target(Path("/c")) == Path("/c/bench/w3/0.0/f-0000.bin")
    assert ObjectJob("k", "", 1, "bench/w1/0.0").target(Path("/c")) == Path("/c/bench/w1/0.0")


def test_result_round_trips_and_leaves_out_what_was_not_measured() -> None:
    one = RunResult(
        ok=True,
        peer="ours",
        started=1.0,
        ended=3.0,
        wall_s=2.0,
        cpu_s=1.5,
        peak_rss_mib=90.0,
        base_rss_mib=70.0,
        lag=LagSummary(1.0, 5.0, 9.0),
        client=ClientReport(
            bytes=100,
            requests_self=3,
            from_cache=False,
            timeline_s={"LibraryReady": 1.9},
            events=(("m00", "LoadStarted", 0.5),),
        ),
    )
    assert RunResult.from_dict(one.to_dict()) == one
    multi = RunResult(ok=False, peer="ours", error="boom", processes=(one, one))
    assert RunResult.from_dict(multi.to_dict()) == multi
    assert multi.to_dict() == {
        "ok": False,
        "peer": "ours",
        "error": "boom",
        "processes": [one.to_dict(), one.to_dict()],
    }


def test_records_are_flat_as_the_report_reads_them() -> None:
    result = RunResult(
        ok=True,
        peer="ours",
        wall_s=2.0,
        cpu_s=1.5,
        peak_rss_mib=90.0,
        lag=LagSummary(1.0, 5.0, 9.0),
        client=ClientReport(bytes=100, requests_self=3),
    )
    record = RunRecord(
        condition="rtt20",
        store="s3",
        workload="w3",
        run=0,
        size=100,
        objects=2,
        result=result,
        idle_lag=None,
        server_cpu_s=0.5,
        proxy_cpu_s=0.25,
        proxy=ProxyCounts(requests=3, by_method={"GET": 3}, connections=2, bytes_down=120),
        verified=True,
        mib_s=50.0,
    )
    flat = record.to_dict()
    assert flat == {
        "condition": "rtt20",
        "store": "s3",
        "workload": "w3",
        "peer": "ours",
        "run": 0,
        "size": 100,
        "objects": 2,
        "ok": True,
        "wall_s": 2.0,
        "cpu_s": 1.5,
        "peak_rss_mib": 90.0,
        "lag": {"p50_ms": 1.0, "p99_ms": 5.0, "max_ms": 9.0},
        "bytes": 100,
        "requests_self": 3,
        "idle_lag": None,
        "server_cpu_s": 0.5,
        "proxy_cpu_s": 0.25,
        "requests_proxy": 3,
        "requests_by_method": {"GET": 3},
        "connections_proxy": 2,
        "bytes_down_proxy": 120,
        "verified": True,
        "mib_s": 50.0,
    }
    summary = report.summarize([flat])
    assert (summary["wall_s"], summary["lag_p99_ms"], summary["requests_proxy"]) == (2.0, 5.0, 3)
