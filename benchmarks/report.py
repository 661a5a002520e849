"""Turn a results JSON into a markdown table of medians and ratios, and a PNG chart.

``python -m benchmarks.report benchmarks/results/full.json`` rebuilds both from a saved run.
Ratios are ``ours ÷ peer`` in throughput, i.e. the peer's median time over ours: above 1,
aiomodelkit is faster (for ``limit``, 1.0 means we reach the raw network limit). On fetch
workloads each peer's client CPU per GiB (client CPU seconds / workload GiB) is printed too.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["group", "summarize", "targets", "write"]

_GIB = 1024**3
_ORDER = ("ours", "limit", "boto3-tm", "boto3", "aiobotocore-seq", "s5cmd", "obstore", "modelkit")
#: The graph workloads with targets (startup against the critical path, ratio to modelkit):
#: their keys and the names the targets table gives them.
GRAPH_WORKLOADS = (("w6", "W6"), ("w6w", "W6-wide"))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def group(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, list[Any]]]:
    """Measured runs (warm-ups left out) by (condition, store, workload), then by peer."""
    groups: dict[tuple[str, str, str], dict[str, list[Any]]] = {}
    for record in records:
        if record["run"] < 0:
            continue
        key = (record["condition"], record["store"], record["workload"])
        groups.setdefault(key, {}).setdefault(record["peer"], []).append(record)
    return groups


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one peer's measured runs (failed runs are counted, not averaged)."""
    ok = [r for r in runs if r.get("ok")]
    cpu_per_gib = [
        float(r["cpu_s"]) / (float(r["size"]) / _GIB)
        for r in ok
        if isinstance(r.get("cpu_s"), int | float) and r.get("size")
    ]

    def med(field: str, sub: str | None = None) -> float | None:
        values = []
        for r in ok:
            value = r.get(field)
            if sub is not None:
                value = value.get(sub) if isinstance(value, dict) else None
            if isinstance(value, int | float):
                values.append(float(value))
        return _median(values)

    return {
        "runs": len(runs),
        "ok": len(ok),
        "wall_s": med("wall_s"),
        "mib_s": med("mib_s"),
        "cpu_s": med("cpu_s"),
        "cpu_s_per_gib": _median(cpu_per_gib),
        "peak_rss_mib": med("peak_rss_mib"),
        "base_rss_mib": med("base_rss_mib"),
        "lag_p50_ms": med("lag", "p50_ms"),
        "lag_p99_ms": med("lag", "p99_ms"),
        "lag_max_ms": med("lag", "max_ms"),
        "idle_lag_p99_ms": med("idle_lag", "p99_ms"),
        "requests_proxy": med("requests_proxy"),
        "requests_self": med("requests_self"),
        "proxy_cpu_s": med("proxy_cpu_s"),
        "server_cpu_s": med("server_cpu_s"),
        "bytes": med("bytes"),
        "bytes_down_proxy": med("bytes_down_proxy"),
        "errors": sorted({str(r.get("error"))[:200] for r in runs if not r.get("ok")}),
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(ours: dict[str, Any], other: dict[str, Any]) -> float | None:
    if ours.get("wall_s") and other.get("wall_s"):
        return float(other["wall_s"]) / float(ours["wall_s"])
    return None


def targets(data: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Each target of issue 6 with the measured value and whether it is met (None: not run)."""
    groups = {k: {p: summarize(r) for p, r in v.items()} for k, v in group(data["records"]).items()}
    found: list[tuple[str, str, bool | None]] = []

    def get(cond: str, work: str, peer: str) -> dict[str, Any] | None:
        return groups.get((cond, "s3", work), {}).get(peer)

    def ratio_target(
        label: str, cond: str, work: str, peer: str, goal: float, floor: float | None = None
    ) -> None:
        """``floor``: the least time any client could take, so the best possible ratio
        is the peer's time over it (shown when the target is missed)."""
        ours, other = get(cond, work, "ours"), get(cond, work, peer)
        value = _ratio(ours, other) if ours and other else None
        shown = "not run" if value is None else f"{value:.2f}x"
        if value is not None and value < goal and floor and other and other["wall_s"]:
            shown += f" (at most {other['wall_s'] / floor:.2f}x: no client beats {floor:.2f} s)"
        found.append((label, shown, None if value is None else value >= goal))

    def cap_floor(cond: str, work: str) -> float | None:
        """The time the bandwidth cap alone imposes on a workload."""
        rate = data["conditions"].get(cond, {}).get("rate_mbit")
        size = data["workloads"].get(work, {}).get("size")
        return size / (rate * 1e6 / 8) if rate and size else None

    ratio_target("W3 @ 20 ms: >= 25x modelkit", "rtt20", "w3", "modelkit", 25)
    ratio_target("W3 @ 20 ms: >= 0.9x the limit", "rtt20", "w3", "limit", 0.9)
    for work in ("w1", "w2"):
        up = work.upper()
        floor = cap_floor("rtt20-cap", work)
        # boto3-tm is boto3's transfer manager at its default TransferConfig; boto3 (a loop
        # of download_file, each its own transfer manager) gets a row only when it was run.
        for peer in ("boto3-tm", "boto3"):
            if peer == "boto3" and get("rtt20-cap", work, peer) is None:
                continue
            label = f"{up} @ 20 ms + cap: >= 1.2x {peer}"
            ratio_target(label, "rtt20-cap", work, peer, 1.2, floor)
        ratio_target(f"{up} @ 20 ms + cap: >= 0.9x the limit", "rtt20-cap", work, "limit", 0.9)
    for work, name in GRAPH_WORKLOADS:
        graph = data["workloads"].get(work, {})
        critical = graph.get("critical_path_s")
        ours_graph = get("rtt20", work, "ours")
        label = f"{name}: startup <= 1.2x the critical path"
        if ours_graph and ours_graph["wall_s"] and critical:
            factor = ours_graph["wall_s"] / critical
            found.append(
                (
                    label,
                    f"{ours_graph['wall_s']:.2f} s = {factor:.2f}x {critical:.2f} s "
                    f"(FIFO on the load threads alone: {graph.get('schedule_bound_s') or 0:.2f} s)",
                    factor <= 1.2,
                )
            )
        else:
            found.append((label, "not run", None))
        ratio_target(f"{name}: >= 10x modelkit's library", "rtt20", work, "modelkit", 10, critical)
    ours5 = get("rtt20", "w5", "ours")
    if ours5 and ours5["wall_s"] is not None:
        requests = (ours5["requests_proxy"] or 0) + (ours5["requests_self"] or 0)
        found.append(
            (
                "W5: < 50 ms for 50 models, zero requests",
                f"{ours5['wall_s'] * 1000:.1f} ms, {requests:.0f} requests",
                ours5["wall_s"] < 0.05 and requests == 0,
            )
        )
    else:
        found.append(("W5: < 50 ms for 50 models, zero requests", "not run", None))
    lags = [
        (s["lag_p99_ms"], s["idle_lag_p99_ms"], cond, work)
        for (cond, store, work), peers in groups.items()
        if work in ("w1", "w2", "w3", "w4")
        for peer, s in peers.items()
        if peer == "ours" and s["lag_p99_ms"] is not None
    ]
    worst = max(lags, key=lambda item: item[0]) if lags else None
    measured = "not run"
    if worst is not None:
        measured = f"{worst[0]:.1f} ms ({worst[3].upper()}, {worst[2]})"
        if worst[1] is not None:
            measured += f"; an idle process beside it: {worst[1]:.1f} ms"
    found.append(
        (
            "event-loop lag p99 < 20 ms during W1-W4 (worst median)",
            measured,
            (worst[0] < 20) if worst is not None else None,
        )
    )
    rss = [
        s["peak_rss_mib"]
        for (cond, store, work), peers in groups.items()
        if work == "w1" and "ours" in peers
        for s in [peers["ours"]]
        if s["peak_rss_mib"] is not None
    ]
    found.append(
        (
            "peak RSS < 150 MiB fetching W1 (worst median)",
            f"{max(rss):.0f} MiB" if rss else "not run",
            (max(rss) < 150) if rss else None,
        )
    )
    ours7 = get("rtt20-cap", "w7", "ours")
    size7 = data["workloads"].get("w7", {}).get("size")
    if ours7 and ours7.get("bytes") is not None and size7:
        copies = ours7["bytes"] / size7
        found.append(
            ("W7: the asset is downloaded once in total", f"{copies:.2f} x", copies < 1.01)
        )
    else:
        found.append(("W7: the asset is downloaded once in total", "not run", None))
    return found


def _table(title: str, peers: dict[str, list[dict[str, Any]]], workload: dict[str, Any]) -> str:
    stats = {p: summarize(r) for p, r in peers.items()}
    ours = stats.get("ours")
    # CPU per GiB only where the workload's bytes are what the client moves: a warm start,
    # a graph of loads or four processes (W5-W7) would divide by the wrong thing.
    per_gib = workload.get("kind") == "fetch"
    lines = [
        f"#### {title}",
        "",
        "| peer | ok | median s | MiB/s | ours ÷ peer | client CPU s | client CPU s/GiB "
        "| peak RSS MiB | loop lag p50/p99/max ms | idle lag p99 ms | requests | proxy CPU s "
        "| server CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in sorted(stats, key=lambda p: _ORDER.index(p) if p in _ORDER else 99):
        s = stats[peer]
        ratio = _ratio(ours, s) if ours is not None and peer != "ours" else None
        lag = (
            "-"
            if s["lag_p99_ms"] is None
            else f"{s['lag_p50_ms']:.1f} / {s['lag_p99_ms']:.1f} / {s['lag_max_ms']:.1f}"
        )
        if s["requests_proxy"] is not None:
            requests = f"{s['requests_proxy']:.0f} (proxy)"
        elif s["requests_self"] is not None:
            requests = f"{s['requests_self']:.0f} (self)"
        else:
            requests = "-"
        lines.append(
            f"| {peer} | {s['ok']}/{s['runs']} | {_fmt(s['wall_s'], 3)} | {_fmt(s['mib_s'], 1)} "
            f"| {_fmt(ratio)} | {_fmt(s['cpu_s'])} "
            f"| {_fmt(s['cpu_s_per_gib'] if per_gib else None)} "
            f"| {_fmt(s['peak_rss_mib'], 0)} | {lag} "
            f"| {_fmt(s['idle_lag_p99_ms'], 1)} | {requests} | {_fmt(s['proxy_cpu_s'])} "
            f"| {_fmt(s['server_cpu_s'])} |"
        )
    for peer, s in stats.items():
        for error in s["errors"]:
            lines.append(f"\n{peer} failed: `{error}`")
    if workload.get("critical_path_s"):
        lines.append(
            f"\nCritical path of the graph: {workload['critical_path_s']:.3f} s; sum of all load "
            f"times {workload['load_sum_s']:.3f} s (a sequential loader's floor); FIFO schedule "
            f"on aiomodelkit's load threads: {workload['schedule_bound_s']:.3f} s."
        )
    return "\n".join(lines) + "\n"


def markdown(data: dict[str, Any], chart: str | None) -> str:
    machine = data["machine"]
    out = [
        f"# Benchmark results: {data['name']}",
        "",
        f"Command: `{data['command']}` ({data['duration_s'] / 60:.1f} min, "
        f"{data['runs']} measured runs per peer after one warm-up, alternating).",
        "",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}. Page cache: "
        f"{data['page_cache']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
        "",
    ]
    if data.get("ours_settings"):
        settings = ", ".join(f"{k}={v}" for k, v in data["ours_settings"].items())
        out += [f"aiomodelkit settings: {settings}.", ""]
    for note in data.get("notes", []):
        out.append(f"* {note}")
    out += ["", "## Targets (issue 6)", ""]
    if data.get("quick"):
        out += [
            "Quick subset: scaled-down sizes, so these rows only orient; the targets are defined "
            "for the full sizes (`python -m benchmarks.harness`).",
            "",
        ]
    out += ["| target | measured | met |", "|---|---|---|"]
    for label, value, met in targets(data):
        mark = "-" if met is None else ("yes" if met else "**no**")
        out.append(f"| {label} | {value} | {mark} |")
    out.append("")
    if chart:
        out += [f"![median wall time per peer]({chart})", ""]
    out += ["## Medians per condition and workload", ""]
    for (cond, store, work), peers in group(data["records"]).items():
        condition = data["conditions"].get(cond, {}).get("title", cond)
        workload = data["workloads"][work]
        title = f"{workload['title']} — {condition} — {store}"
        out.append(_table(title, peers, workload))
    return "\n".join(out)


def chart(data: dict[str, Any], path: Path) -> bool:
    """A PNG of median wall times, one panel per (condition, store, workload)."""
    try:
        # A bench-only dependency, absent from the typecheck environment: typed Any.
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    groups = group(data["records"])
    if not groups:
        return False
    columns = 4
    rows = (len(groups) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), squeeze=False)
    for ax, ((cond, store, work), peers) in zip(axes.flat, groups.items(), strict=False):
        names = sorted(peers, key=lambda p: _ORDER.index(p) if p in _ORDER else 99)
        values = [summarize(peers[p])["wall_s"] or 0.0 for p in names]
        colors = ["tab:green" if p == "ours" else "tab:gray" for p in names]
        colors = ["tab:blue" if p == "limit" else c for p, c in zip(names, colors, strict=True)]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        ax.set_xlim(0, max([*values, 1e-3]) * 1.3)  # linear from 0: no exaggerated gaps
        for row, value in enumerate(values):
            label = f"{value:.3g} s" if value else "failed"
            ax.text(value, row, " " + label, va="center", fontsize=6)
        title = data["conditions"].get(cond, {}).get("title", cond)
        ax.set_title(f"{data['workloads'][work]['title']}\n{title}, {store}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("median wall time, s (shorter is better)", fontsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    fig.suptitle("aiomodelkit (green) vs peers; the limit (blue) is raw GETs, bytes discarded")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(data: dict[str, Any], out_dir: Path) -> Path:
    """Write ``<name>.md`` (and ``<name>.png``) next to the JSON; returns the markdown path."""
    png = out_dir / f"{data['name']}.png"
    has_chart = chart(data, png)
    md = out_dir / f"{data['name']}.md"
    md.write_text(markdown(data, png.name if has_chart else None))
    print(f"wrote {md}" + (f" and {png}" if has_chart else ""), flush=True)
    return md


if __name__ == "__main__":
    source = Path(sys.argv[1])
    write(json.loads(source.read_text()), source.parent)
