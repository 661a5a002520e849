"""The fleet benchmark (``python -m benchmarks.fleet``): its arithmetic and report on fake runs,
and its core (servers, pods, counts) on a tiny library through the real chain."""

from __future__ import annotations

import dataclasses
import doctest
import json
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest
from benchmarks.fleet import common, report
from benchmarks.fleet.__main__ import parse
from benchmarks.fleet.common import MODES, FleetRun, Library, PodReport, requests_per_copy
from benchmarks.fleet.pods import Fleet, launch
from benchmarks.fleet.report import (
    markdown,
    median,
    paired_ratios,
    percentile,
    rebuild,
    rows,
    targets,
)
from benchmarks.fleet.servers import Chain
from benchmarks.workloads import Asset, FileSpec

from aiomodelkit import Settings
from aiomodelkit.testing import Throttle

if TYPE_CHECKING:
    from pathlib import Path

MiB = 1024 * 1024


@pytest.mark.parametrize("module", [common, report])
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_fleet_library_and_its_request_arithmetic() -> None:
    full, small = common.libraries(small=False), common.libraries(small=True)
    assert set(full) == set(small) == {"fleet", "w1", "w2", "w3", "w4"}
    assert full["fleet"].models() == {
        "encoder": "bench/fleet/encoder:0.0",
        "tokenizer": "bench/fleet/tokenizer:0.0",
        "head": "bench/fleet/head:0.0",
    }
    # A meta per asset, a GET per object, a HEAD + 8 ranges for the 64 MiB weights.
    assert requests_per_copy(full["fleet"]) == 3 + (1 + 8) + 8 + 100 + 50 + 1
    assert requests_per_copy(small["fleet"]) == 3 + 56  # nothing reaches the threshold
    assert requests_per_copy(full["w1"]) == 1 + 1 + 128  # 1 GiB in 8 MiB ranges
    assert requests_per_copy(full["w3"]) == 1 + 2000


def test_modes_are_environment_variables() -> None:
    assert dict(MODES["fixed64"].env) == {
        "AIOMODELKIT_ADAPTIVE_CONCURRENCY": "false",
        "AIOMODELKIT_MAX_CONNECTIONS": "64",
    }
    assert dict(MODES["adaptive"].env) == {"AIOMODELKIT_ADAPTIVE_CONCURRENCY": "true"}


def test_options() -> None:
    quick = parse(["--quick"])
    assert (quick.n, quick.runs, quick.small) == ([4], 1, True)
    assert (quick.output, quick.cache, quick.modes) == ("tmp/fleet-quick", "both", list(MODES))
    args = parse(["--n", "2,16", "--shared-cache", "--workload", "w1,w4", "--no-throttle"])
    assert (args.n, args.cache, args.workload, args.output) == (
        [2, 16],
        "shared",
        ["w1", "w4"],
        "fleet",
    )
    assert parse(["--env", "AIOMODELKIT_MAX_ATTEMPTS=10"]).env == [
        ("AIOMODELKIT_MAX_ATTEMPTS", "10")
    ]
    for wrong in (["--workload", "w9"], ["--n", "0"], ["--env", "PATH=/"]):
        with pytest.raises(SystemExit):
            parse(wrong)


def _run(mode: str, n: int, cache: str, run: int, ready: float | None, **kw: Any) -> FleetRun:
    ttr = tuple([ready] * n)
    values: dict[str, Any] = {
        "condition": "throttled",
        "library": "fleet",
        "mode": mode,
        "n": n,
        "cache": cache,
        "run": run,
        "all_ready_s": ready,
        "last_end_s": ready or 30.0,
        "ttr_s": ttr,
        "failed": 0 if ready is not None else 1,
        "requests": 100,
        "requests_by_method": {"GET": 100},
        "throttled": 10,
        "retries": 10,
        "bytes_store": 4 * MiB,
        "bytes_pods": 4 * MiB,
        "pod_requests": 100,
        "cpu_s": {"pods": 1.0, "server": 0.5, "latency_proxy": 0.25, "fault_proxy": 0.25},
    }
    return FleetRun(**(values | kw))


def test_percentiles_and_medians_count_a_failed_pod_as_never() -> None:
    assert percentile([1.0, 2.0, 3.0, None], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, None], 0.99) is None
    assert median([None, None, 1.0]) is None
    assert median([5.0, 1.0, None]) == 5.0


def test_rows_take_medians_leave_out_the_warm_up_and_sum_failures() -> None:
    runs = [
        _run("fixed64", 4, "separate", -1, 99.0),
        _run("adaptive", 4, "separate", 0, 2.0),
        _run("fixed64", 4, "separate", 0, 4.0),
        _run("fixed64", 4, "separate", 1, None, requests=300),
        _run("adaptive", 4, "separate", 1, 3.0),
        _run("fixed64", 4, "separate", 2, 6.0, requests=200),
        _run("adaptive", 4, "shared", 0, 1.0, bytes_store=MiB),
    ]
    fixed, adaptive, shared = rows(runs)
    assert (fixed.mode, fixed.runs, fixed.all_ready_s, fixed.failed) == ("fixed64", 3, 6.0, 1)
    assert fixed.requests == 200
    assert fixed.ttr_p99_s == 6.0  # the medians of 4.0, never and 6.0
    assert (adaptive.mode, adaptive.runs, adaptive.all_ready_s) == ("adaptive", 2, 2.5)
    assert (shared.cache, shared.bytes_store) == ("shared", MiB)


def test_targets_when_throttled() -> None:
    one_copy = {"fleet": MiB}
    runs = [
        _run("fixed64", 16, "separate", 0, 10.0),
        _run("adaptive", 16, "separate", 0, 6.0),
        _run("fixed64", 16, "shared", 0, 2.0, bytes_store=int(1.01 * MiB)),
    ]
    shared, versus = targets(rows(runs), throttled=True, one_copy=one_copy, runs=runs)
    assert shared.met is True
    assert "N=16 fixed64 1.010x" in shared.measured
    assert versus.met is True
    assert "= 0.60x" in versus.measured
    slower = [_run("fixed64", 16, "separate", 0, 10.0), _run("adaptive", 16, "separate", 0, 8.0)]
    assert targets(rows(slower), True, one_copy, slower)[1].met is False
    # fixed-64 never all ready, adaptive with zero failed starts: met.
    never = [_run("fixed64", 16, "separate", 0, None), _run("adaptive", 16, "separate", 0, 9.0)]
    [no_shared, beaten] = targets(rows(never), True, one_copy, never)
    assert (no_shared.met, beaten.met) == (None, True)
    assert "fixed-64 never" in beaten.measured


def test_without_throttle_the_runs_are_compared_in_pairs() -> None:
    one_copy = {"fleet": MiB}
    # Run 1 is slow for both modes (the machine was busy): pairs cancel it, medians do not.
    runs = [
        _run("fixed64", 4, "separate", 0, 10.0),
        _run("adaptive", 4, "separate", 0, 10.4),
        _run("adaptive", 4, "separate", 1, 15.0),
        _run("fixed64", 4, "separate", 1, 14.5),
        _run("fixed64", 4, "separate", 2, 10.2),
        _run("adaptive", 4, "separate", 2, 10.1),
    ]
    assert paired_ratios(runs, "fleet", "separate", 4) == pytest.approx(
        [1.04, 15 / 14.5, 10.1 / 10.2]
    )
    [_, close] = targets(rows(runs), throttled=False, one_copy=one_copy, runs=runs)
    assert (close.met, close.measured) == (True, "fleet N=4 1.034x")
    far = [_run("fixed64", 4, "separate", 0, 10.0), _run("adaptive", 4, "separate", 0, 10.6)]
    assert targets(rows(far), throttled=False, one_copy=one_copy, runs=far)[1].met is False
    never = [_run("fixed64", 4, "separate", 0, 10.0), _run("adaptive", 4, "separate", 0, None)]
    assert targets(rows(never), False, one_copy, never)[1].measured.endswith("never all ready")


def test_records_round_trip_and_the_markdown_shows_every_row() -> None:
    pod = PodReport(0, ok=True, ready=1.0, ended=2.0, retry_reasons={"throttled": 2})
    run = dataclasses.replace(_run("adaptive", 1, "separate", 0, 1.0), pods=(pod,))
    assert FleetRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    assert PodReport.from_dict({**dataclasses.asdict(pod), "new_field": 1}) == pod
    found = rows([_run("fixed64", 4, "separate", 0, 3.0), _run("adaptive", 4, "separate", 0, None)])
    section: dict[str, Any] = {
        "title": "Throttled",
        "command": "python -m benchmarks.fleet",
        "date": "today",
        "setup": "setup",
        "engine_note": "engine",
        "one_copy_bytes": {"fleet": MiB},
        "rows": [dataclasses.asdict(r) for r in found],
        "targets": [dataclasses.asdict(t) for t in targets(found, True, {"fleet": MiB}, [])],
    }
    text = markdown({"machine": "m", "conditions": {"throttled": section}})
    assert "| fleet | separate | 4 | fixed 64 | 3.00 s | 3.00 s / 3.00 s | 100 | 10 | 10 |" in text
    assert "| fleet | separate | 4 | adaptive | never | never / never |" in text
    assert "4.0 (4.00x) | 0 of 4 | 1.0 / 0.5 / 0.5 |" in text
    assert "| 100 | 10 | 10 | 4.0 (4.00x) | 1 of 4 |" in text  # the adaptive row's failure


def test_save_keeps_each_condition_and_rebuild_recomputes_from_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    runs = [_run("fixed64", 4, "separate", 0, 4.0), _run("adaptive", 4, "separate", 0, 2.0)]
    section: dict[str, Any] = {
        "title": "Throttled",
        "command": "c",
        "setup": "s",
        "engine_note": "e",
        "one_copy_bytes": {"fleet": MiB},
        "rows": [],  # stale: rebuild recomputes them
        "targets": [],
        "runs": [r.to_dict() for r in runs],
    }
    report.save("throttled", section, "fleet")
    report.save("no-throttle", {**section, "title": "No throttle"}, "fleet")
    rebuild("fleet")
    saved = json.loads((tmp_path / "fleet.json").read_text())
    assert set(saved["conditions"]) == {"throttled", "no-throttle"}
    throttled = saved["conditions"]["throttled"]
    assert [(r["mode"], r["all_ready_s"]) for r in throttled["rows"]] == [
        ("fixed64", 4.0),
        ("adaptive", 2.0),
    ]
    assert "= 0.50x" in throttled["targets"][1]["measured"]
    assert saved["conditions"]["no-throttle"]["targets"][1]["measured"] == "fleet N=4 0.500x"
    text = (tmp_path / "fleet.md").read_text()
    assert "## Throttled" in text
    assert "## No throttle" in text


@pytest.mark.seaweedfs
def test_a_tiny_fleet_through_the_real_chain(tmp_path: Path) -> None:
    """Two pods on 12 small files, through SeaweedFS, the throttle and the latency proxy."""
    asset = Asset("bench/tiny", [FileSpec(f"f{i}.bin", 4096, f"tiny/{i}") for i in range(12)], True)
    library = Library("tiny", "tiny", (asset,))
    with ExitStack() as stack:
        chain = Chain(stack, tmp_path, Throttle(rate=1000, concurrency=8))
        chain.publish([library], tmp_path / "publish")
        separate = launch(
            chain, Fleet("throttled", library, MODES["adaptive"], 2, "separate", 0), tmp_path / "a"
        )
        shared = launch(
            chain, Fleet("throttled", library, MODES["fixed64"], 2, "shared", 0), tmp_path / "b"
        )
    expected = requests_per_copy(library)
    assert expected == 13
    for run in (separate, shared):
        assert run.failed == 0, [p.error for p in run.pods]
        assert run.all_ready_s is not None
        assert run.all_ready_s == max(t for t in run.ttr_s if t is not None)
        # Every request the pods counted reached the proxy; each refusal was retried.
        assert run.requests == run.pod_requests == run.requests_by_method["GET"]
        assert run.throttled == sum(p.throttled for p in run.pods) == run.retries
        if "adaptive_concurrency" in Settings.model_fields:  # the mode reached every pod
            assert {p.settings["adaptive_concurrency"] for p in run.pods} == {
                run.mode == "adaptive"
            }
    assert separate.requests == 2 * expected + separate.throttled
    assert separate.bytes_pods == 2 * asset.size
    assert 2 * asset.size < separate.bytes_store < 2 * asset.size + 64 * 1024  # + headers
    # One shared cache: one download, the other pod waits for it (it may read the meta).
    assert shared.bytes_pods == asset.size
    assert asset.size < shared.bytes_store < asset.size + 64 * 1024
