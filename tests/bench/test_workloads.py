"""The graph workloads of the benchmarks (W6, W6-wide): shapes, bounds, and the harness' wiring."""

from __future__ import annotations

import doctest

import pytest
from benchmarks import workloads
from benchmarks.harness import cli, matrix, peers, suite
from benchmarks.workloads import (
    GRAPH_W6,
    GRAPH_W6_WIDE,
    GraphModel,
    Workload,
    critical_path,
    list_schedule,
)

MiB = 1024 * 1024


def test_doctests() -> None:
    result = doctest.testmod(workloads)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("graph", [GRAPH_W6, GRAPH_W6_WIDE], ids=["w6", "w6w"])
def test_graph_is_in_dependency_order(graph: tuple[GraphModel, ...]) -> None:
    seen: set[str] = set()
    for model in graph:
        assert set(model.deps) <= seen, f"{model.key} is declared before a dependency"
        assert model.key not in seen
        seen.add(model.key)
    assert len(graph) == 20


def test_w6_is_unchanged() -> None:
    assert critical_path(GRAPH_W6) == pytest.approx(1.7)
    assert sum(m.load_s for m in GRAPH_W6) == pytest.approx(6.6)


def test_w6_wide_shape() -> None:
    models = {m.key: m for m in GRAPH_W6_WIDE}
    assert [m.key for m in GRAPH_W6_WIDE] == [
        "t0",
        "t1",
        *(f"h{i:02d}" for i in range(16)),
        "e0",
        "e1",
    ]
    assert models["t0"] == GraphModel("t0", 0.3)
    assert models["t1"] == GraphModel("t1", 0.3)
    loads = [0.7, 0.8, 0.6, 0.7]
    for i in range(16):
        assert models[f"h{i:02d}"] == GraphModel(f"h{i:02d}", loads[i % 4], (f"t{i % 2}",))
    assert models["e0"] == GraphModel("e0", 0.1, tuple(f"h{i:02d}" for i in range(8)))
    assert models["e1"] == GraphModel("e1", 0.1, tuple(f"h{i:02d}" for i in range(8, 16)))


def test_w6_wide_bounds() -> None:
    assert critical_path(GRAPH_W6_WIDE) == pytest.approx(1.2)
    assert critical_path(GRAPH_W6_WIDE, 0.25) == pytest.approx(0.3)
    assert sum(m.load_s for m in GRAPH_W6_WIDE) == pytest.approx(12.0)
    # aiomodelkit's default 16 load threads run every head at once: the critical path.
    assert list_schedule(GRAPH_W6_WIDE, 16) == pytest.approx(1.2)
    # A sequential loader's floor is 10x the critical path: ">= 10x modelkit" is reachable.
    assert list_schedule(GRAPH_W6_WIDE, 1) == pytest.approx(12.0)


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize(("key", "graph"), [("w6", GRAPH_W6), ("w6w", GRAPH_W6_WIDE)])
def test_graph_workloads(quick: bool, key: str, graph: tuple[GraphModel, ...]) -> None:
    workload = workloads.workloads(quick)[key]
    assert workload.kind == "graph"
    assert workload.graph is graph
    assert workload.load_scale == (0.25 if quick else 1.0)
    assert len(workload.assets) == 20
    assert [a.name for a in workload.assets] == [f"bench/{key}/{m.key}" for m in graph]
    for asset in workload.assets:
        assert not asset.directory
        assert [(f.rel, f.size) for f in asset.files] == [("", 2 * MiB)]
    assert workload.size == 20 * 2 * MiB
    assert workload.objects == 20


def test_graph_workload_needs_a_graph() -> None:
    with pytest.raises(ValueError, match="no graph"):
        Workload("wx", "no graph", "graph", [])


def test_harness_models_follow_the_workload_graph() -> None:
    workload = workloads.workloads(quick=True)["w6w"]
    models = {m.key: m for m in suite.models_of(workload)}
    assert list(models) == [m.key for m in GRAPH_W6_WIDE]
    assert models["t1"].deps == ()
    assert models["h03"].deps == ("t1",)
    assert models["h03"].load_s == pytest.approx(0.7 * 0.25)
    assert models["e1"].deps == tuple(f"h{i:02d}" for i in range(8, 16))
    assert models["e1"].spec == "bench/w6w/e1:0.0"


@pytest.mark.parametrize("table", [matrix.MATRIX, matrix.QUICK_MATRIX], ids=["full", "quick"])
def test_w6w_runs_wherever_w6_does(table: dict[str, list[str]]) -> None:
    assert any("w6" in keys for keys in table.values())
    for keys in table.values():
        assert ("w6" in keys) == ("w6w" in keys)


def test_plan_accepts_w6w() -> None:
    args = cli.parse_args(["--quick", "--workloads", "w6w"])
    plan = cli.plan_of(args, workloads.workloads(quick=True), ["ours", "limit", "modelkit"])
    assert list(plan) == ["rtt20"]
    [step] = plan["rtt20"]
    assert (step.store, step.workload.key, step.peers) == ("s3", "w6w", ("ours", "modelkit"))


def test_quick_plan_runs_every_peer_on_w4_on_raw_loopback_only() -> None:
    args = cli.parse_args(["--quick", "--workloads", "w4,w7"])
    plan = cli.plan_of(args, workloads.workloads(quick=True), list(peers.ALL_PEERS))
    chosen = {(cond, s.workload.key): s.peers for cond, items in plan.items() for s in items}
    assert chosen == {
        ("raw", "w4"): peers.ALL_PEERS,
        ("rtt20", "w4"): ("ours", "limit", "boto3-tm", "s5cmd", "obstore"),
        ("rtt20-cap", "w4"): ("ours", "limit", "boto3-tm"),
        ("rtt20-cap", "w7"): ("ours",),
    }
    assert args.runs == 2


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_w1_to_w4_at_20ms_run_s5cmd_and_obstore_beside_ours(quick: bool) -> None:
    args = cli.parse_args([*(["--quick"] if quick else []), "--conditions", "rtt20"])
    plan = cli.plan_of(args, workloads.workloads(quick=quick), list(peers.ALL_PEERS))
    chosen = {s.workload.key: s.peers for s in plan["rtt20"] if s.store == "s3"}
    for key in ("w1", "w2", "w3", "w4"):
        assert set(matrix.RTT20_PEERS) <= set(chosen[key]), key
    if quick:
        assert chosen["w1"] == chosen["w2"] == chosen["w4"] == matrix.RTT20_PEERS
        assert chosen["w3"] == (*matrix.RTT20_PEERS, "modelkit")
