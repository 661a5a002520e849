"""The benchmark report: graph targets (W6, W6-wide) and CPU per GiB, from small fake results."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks import report


def _record(work: str, peer: str, run: int, wall_s: float) -> dict[str, Any]:
    return {
        "condition": "rtt20",
        "store": "s3",
        "workload": work,
        "peer": peer,
        "run": run,
        "ok": True,
        "wall_s": wall_s,
    }


def _data(**walls: tuple[float, float]) -> dict[str, Any]:
    """Results with ``workload=(ours, modelkit)`` median wall times under ``rtt20``."""
    graphs = {
        "w6": ("W6 cold start, 20-model graph", 1.7, 1.7, 6.6),
        "w6w": ("W6-wide cold start", 1.2, 1.2, 12.0),
    }
    records = [
        _record(work, peer, run, wall_s + (0.5 if run < 0 else 0.0))
        for work, (ours, modelkit) in walls.items()
        for run in (-1, 0, 1, 2)
        for peer, wall_s in (("ours", ours), ("modelkit", modelkit))
    ]
    return {
        "name": "fake",
        "command": "python -m benchmarks.harness --workloads w6,w6w",
        "duration_s": 60.0,
        "runs": 3,
        "quick": False,
        "page_cache": "warm",
        "machine": {
            "cpus": 2,
            "cpu_model": "fake",
            "memory_gib": 1.0,
            "kernel": "6",
            "python": "3.11",
        },
        "versions": {},
        "conditions": {"rtt20": {"key": "rtt20", "title": "20 ms RTT", "rtt_ms": 20.0}},
        "workloads": {
            key: {
                "title": title,
                "kind": "graph",
                "size": 20 * 2 * 1024 * 1024,
                "objects": 20,
                "critical_path_s": critical,
                "schedule_bound_s": schedule,
                "load_sum_s": load_sum,
            }
            for key, (title, critical, schedule, load_sum) in graphs.items()
            if key in walls
        },
        "records": records,
    }


def _rows(data: dict[str, Any]) -> dict[str, tuple[str, bool | None]]:
    return {label: (value, met) for label, value, met in report.targets(data)}


def test_graph_targets_for_both_workloads() -> None:
    rows = _rows(_data(w6=(2.05, 8.96), w6w=(1.38, 14.5)))
    assert rows["W6: startup <= 1.2x the critical path"] == (
        "2.05 s = 1.21x 1.70 s (FIFO on the load threads alone: 1.70 s)",
        False,
    )
    assert rows["W6: >= 10x modelkit's library"] == (
        "4.37x (at most 5.27x: no client beats 1.70 s)",
        False,
    )
    assert rows["W6-wide: startup <= 1.2x the critical path"] == (
        "1.38 s = 1.15x 1.20 s (FIFO on the load threads alone: 1.20 s)",
        True,
    )
    assert rows["W6-wide: >= 10x modelkit's library"] == ("10.51x", True)
    labels = [label for label, _, _ in report.targets(_data(w6=(2.0, 9.0), w6w=(1.3, 13.0)))]
    w6 = labels.index("W6: startup <= 1.2x the critical path")
    assert labels[w6 : w6 + 4] == [
        "W6: startup <= 1.2x the critical path",
        "W6: >= 10x modelkit's library",
        "W6-wide: startup <= 1.2x the critical path",
        "W6-wide: >= 10x modelkit's library",
    ]


def test_w6_wide_missed_shows_its_bound() -> None:
    rows = _rows(_data(w6w=(1.5, 13.2)))
    assert rows["W6-wide: >= 10x modelkit's library"] == (
        "8.80x (at most 11.00x: no client beats 1.20 s)",
        False,
    )
    assert rows["W6-wide: startup <= 1.2x the critical path"][1] is False


def test_graph_targets_not_run() -> None:
    rows = _rows(_data(w6=(2.05, 8.96)))
    assert rows["W6-wide: startup <= 1.2x the critical path"] == ("not run", None)
    assert rows["W6-wide: >= 10x modelkit's library"] == ("not run", None)
    assert rows["W6: startup <= 1.2x the critical path"][1] is False


def test_markdown_has_both_graph_tables() -> None:
    text = report.markdown(_data(w6=(2.05, 8.96), w6w=(1.38, 14.5)), None)
    assert "| W6-wide: >= 10x modelkit's library | 10.51x | yes |" in text
    assert "#### W6-wide cold start — 20 ms RTT — s3" in text
    assert "Critical path of the graph: 1.200 s; sum of all load times 12.000 s" in text
    assert "Critical path of the graph: 1.700 s; sum of all load times 6.600 s" in text


def test_fetch_tables_print_client_cpu_per_gib() -> None:
    data = _data()
    data["conditions"]["rtt20"]["title"] = "20 ms RTT"
    data["workloads"]["w1"] = {"title": "W1 1 x 512 MiB", "kind": "fetch", "size": 2**29}
    data["records"] = [
        {**_record("w1", peer, run, 1.0), "size": 2**29, "cpu_s": cpu + run}
        for run in (-1, 0, 1, 2)
        for peer, cpu in (("ours", 0.6), ("s5cmd", 0.9))
    ]
    stats = {
        p: report.summarize(r)
        for p, r in report.group(data["records"])[("rtt20", "s3", "w1")].items()
    }
    assert stats["ours"]["cpu_s_per_gib"] == pytest.approx(2 * 1.6)
    text = report.markdown(data, None)
    assert "| client CPU s | client CPU s/GiB |" in text
    assert "| ours | 3/3 | 1.000 | - | - | 1.60 | 3.20 |" in text
    assert "| s5cmd | 3/3 | 1.000 | - | 1.00 | 1.90 | 3.80 |" in text
