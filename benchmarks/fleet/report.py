"""From runs to medians, targets and the results files (``results/<name>.{json,md}``).

Pure but for :func:`save`. A pod that failed never became ready: its time to ready counts as
infinite, so a percentile or a median that reaches it is "never" (None in the JSON), and a
fleet with a failed pod was never all ready.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiomodelkit import __version__

from .common import MODES, RESULTS, FleetRun

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "Row",
    "Target",
    "adaptive_vs_fixed",
    "markdown",
    "median",
    "paired_ratios",
    "percentile",
    "rebuild",
    "rows",
    "save",
    "targets",
]

MiB = 1024 * 1024
#: Shared cache: what the store may serve beyond one copy (headers, metas, refusals' bodies).
ONE_COPY_SLACK = 1.05
#: Under throttling, at the largest N: adaptive all-ready at most this share of fixed-64's.
THROTTLED_RATIO = 0.7
#: No throttle: adaptive all-ready at most this multiple of fixed-64's.
UNTHROTTLED_RATIO = 1.05


def _inf(value: float | None) -> float:
    return math.inf if value is None else value


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """Nearest-rank percentile; None values (never ready) rank last, as infinite.

    Example:
        >>> percentile([3.0, 1.0, 2.0, 4.0], 0.5), percentile([1.0, None], 0.99)
        (2.0, None)
    """
    if not values:
        return None
    ordered = sorted(_inf(v) for v in values)
    return _finite(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


def median(values: Iterable[float | None]) -> float | None:
    """The median, None values counting as infinite.

    Example:
        >>> median([10.0, None, 12.0]), median([10.0, None]), median([])
        (12.0, None, None)
    """
    finite = [_inf(v) for v in values]
    return _finite(statistics.median(finite)) if finite else None


@dataclass(frozen=True)
class Row:
    """The medians of one (library, cache, N, mode) over its measured runs; ``failed`` is
    the total of failed starts over those runs, out of ``runs * n`` pods."""

    library: str
    cache: str
    n: int
    mode: str
    runs: int
    all_ready_s: float | None
    ttr_p50_s: float | None
    ttr_p99_s: float | None
    requests: float
    throttled: float
    retries: float
    bytes_store: float
    failed: int
    cpu_s: dict[str, float]


def rows(runs: Iterable[FleetRun]) -> list[Row]:
    """One row per (library, cache, N, mode) of the measured runs (warm-ups left out), in
    the order first seen, modes side by side."""
    groups: dict[tuple[str, str, int, str], list[FleetRun]] = {}
    for run in runs:
        if run.run >= 0:
            groups.setdefault((run.library, run.cache, run.n, run.mode), []).append(run)
    order = list(MODES)
    keys = sorted(groups, key=lambda k: (k[0], k[1] != "separate", k[2], order.index(k[3])))
    found = []
    for key in keys:
        group = groups[key]
        found.append(
            Row(
                *key,
                runs=len(group),
                all_ready_s=median(r.all_ready_s for r in group),
                ttr_p50_s=median(percentile(r.ttr_s, 0.50) for r in group),
                ttr_p99_s=median(percentile(r.ttr_s, 0.99) for r in group),
                requests=statistics.median(r.requests for r in group),
                throttled=statistics.median(r.throttled for r in group),
                retries=statistics.median(r.retries for r in group),
                bytes_store=statistics.median(r.bytes_store for r in group),
                failed=sum(r.failed for r in group),
                cpu_s={
                    name: statistics.median(r.cpu_s.get(name, 0.0) for r in group)
                    for name in ("pods", "server", "latency_proxy", "fault_proxy")
                },
            )
        )
    return found


@dataclass(frozen=True)
class Target:
    """One target of issue 18; ``met`` is None when this run did not measure it."""

    name: str
    measured: str
    met: bool | None


def _show(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def adaptive_vs_fixed(adaptive: float | None, fixed: float | None) -> float | None:
    """Adaptive all-ready over fixed-64's (None: "never"); 0.0 when only fixed-64 never was
    ready, None when adaptive never was.

    Example:
        >>> adaptive_vs_fixed(6.0, 10.0), adaptive_vs_fixed(6.0, None), adaptive_vs_fixed(None, 1.0)
        (0.6, 0.0, None)
    """
    if adaptive is None:
        return None
    return 0.0 if fixed is None else adaptive / fixed


def _pair(found: list[Row], library: str, cache: str, n: int) -> tuple[Row, Row] | None:
    by_mode = {r.mode: r for r in found if (r.library, r.cache, r.n) == (library, cache, n)}
    if "fixed64" in by_mode and "adaptive" in by_mode:
        return by_mode["fixed64"], by_mode["adaptive"]
    return None


def targets(
    found: list[Row], throttled: bool, one_copy: dict[str, int], runs: Sequence[FleetRun]
) -> list[Target]:
    """The targets this condition measures, from its rows (and, for the pairs, its runs);
    ``one_copy``: each library's bytes."""
    result = []
    shared = [r for r in found if r.cache == "shared"]
    ratios = [r.bytes_store / one_copy[r.library] for r in shared]
    result.append(
        Target(
            "shared cache: bytes from the store = one copy, whatever N",
            ", ".join(f"N={r.n} {r.mode} {x:.3f}x" for r, x in zip(shared, ratios, strict=True))
            or "not run (no shared-cache rows)",
            all(x <= ONE_COPY_SLACK for x in ratios) if ratios else None,
        )
    )
    separate = [r for r in found if r.cache == "separate"]
    if throttled:
        largest = max((r.n for r in separate), default=0)
        pairs = [p for lib in one_copy if (p := _pair(found, lib, "separate", largest))]
        measured, met = [], []
        for fixed, adaptive in pairs:
            # A fixed-64 fleet that never was all ready is beaten by any adaptive one that was.
            ratio = adaptive_vs_fixed(adaptive.all_ready_s, fixed.all_ready_s)
            met.append(adaptive.failed == 0 and ratio is not None and ratio <= THROTTLED_RATIO)
            shown = "" if ratio is None or fixed.all_ready_s is None else f" = {ratio:.2f}x"
            measured.append(
                f"{fixed.library} N={largest}: adaptive {_show(adaptive.all_ready_s)} vs "
                f"fixed-64 {_show(fixed.all_ready_s)}{shown}; failed starts {adaptive.failed} "
                f"vs {fixed.failed} (of {adaptive.runs * largest})"
            )
        result.append(
            Target(
                f"separate caches, throttled: adaptive all-ready <= {THROTTLED_RATIO}x fixed-64 "
                "at N=16, zero failed starts" + ("" if largest == 16 else f" (run at N={largest})"),
                "; ".join(measured) or "not run (no separate-cache pair)",
                all(met) if met else None,
            )
        )
    else:
        measured, met = [], []
        for row in separate:
            if row.mode != "fixed64" or _pair(found, row.library, "separate", row.n) is None:
                continue
            ratio = median(paired_ratios(runs, row.library, "separate", row.n))
            met.append(ratio is not None and ratio <= UNTHROTTLED_RATIO)
            measured.append(
                f"{row.library} N={row.n} "
                + ("a fleet never all ready" if ratio is None else f"{ratio:.3f}x")
            )
        result.append(
            Target(
                "no throttle: adaptive all-ready within 5 % of fixed-64 (separate caches; "
                "median of the runs' paired ratios)",
                ", ".join(measured) or "not run",
                all(met) if met else None,
            )
        )
    return result


def paired_ratios(runs: Iterable[FleetRun], library: str, cache: str, n: int) -> list[float | None]:
    """Adaptive all-ready over fixed-64's within each measured run (the two ran back to
    back, so the machine's drift between runs cancels); None where a fleet was never ready.

    Example:
        >>> from dataclasses import replace
        >>> a = FleetRun("c", "lib", "adaptive", 4, "separate", 0, 9.0, 9.0, (), 0, 0, {}, 0, 0,
        ...              0, 0, 0, {})
        >>> f = replace(a, mode="fixed64", all_ready_s=10.0)
        >>> paired_ratios([a, f, replace(a, run=1, all_ready_s=None), replace(f, run=1)],
        ...               "lib", "separate", 4)
        [0.9, None]
    """
    by_run: dict[int, dict[str, float | None]] = {}
    for r in runs:
        if (r.library, r.cache, r.n) == (library, cache, n) and r.run >= 0:
            by_run.setdefault(r.run, {})[r.mode] = r.all_ready_s
    ratios: list[float | None] = []
    for _, modes in sorted(by_run.items()):
        fixed, adaptive = modes.get("fixed64"), modes.get("adaptive")
        if "fixed64" in modes and "adaptive" in modes:
            ratios.append(None if fixed is None or adaptive is None else adaptive / fixed)
    return ratios


def _cpu(cpu: dict[str, float]) -> str:
    proxies = cpu["latency_proxy"] + cpu["fault_proxy"]
    return f"{cpu['pods']:.1f} / {cpu['server']:.1f} / {proxies:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The results file's tables, one section per condition."""
    lines = ["# Fleet cold start: N processes, one library, one throttled store\n"]
    lines.append(f"{report['machine']}\n")
    for section in report["conditions"].values():
        lines += [
            f"## {section['title']} (`{section['command']}`, {section['date']})\n",
            f"{section['setup']}\n",
            f"{section['engine_note']}\n",
            "| library | cache | N | mode | all ready | time to ready p50 / p99 | requests "
            "| 503s | retries | from the store MiB (x one copy) | failed starts "
            "| CPU s: pods / server / proxies |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        one_copy = section["one_copy_bytes"]
        for r in (Row(**row) for row in section["rows"]):
            copies = r.bytes_store / one_copy[r.library]
            lines.append(
                f"| {r.library} | {r.cache} | {r.n} | {MODES[r.mode].title} "
                f"| {_show(r.all_ready_s)} | {_show(r.ttr_p50_s)} / {_show(r.ttr_p99_s)} "
                f"| {r.requests:.0f} | {r.throttled:.0f} | {r.retries:.0f} "
                f"| {r.bytes_store / MiB:.1f} ({copies:.2f}x) | {r.failed} of {r.runs * r.n} "
                f"| {_cpu(r.cpu_s)} |"
            )
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        for t in (Target(**target) for target in section["targets"]):
            met = "-" if t.met is None else ("yes" if t.met else "no")
            lines.append(f"| {t.name} | {t.measured} | {met} |")
        lines.append("")
    return "\n".join(lines)


def rebuild(name: str) -> None:
    """Recompute the rows and targets of ``<name>.json`` from its runs, rewrite both files."""
    path = RESULTS / f"{name}.json"
    report: dict[str, Any] = json.loads(path.read_text())
    for condition, section in report["conditions"].items():
        runs = [FleetRun.from_dict(r) for r in section["runs"]]
        found = rows(runs)
        found_targets = targets(found, condition == "throttled", section["one_copy_bytes"], runs)
        section["rows"] = [asdict(r) for r in found]
        section["targets"] = [asdict(t) for t in found_targets]
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(report))


def save(condition: str, section: dict[str, Any], name: str) -> None:
    """Put ``section`` under ``condition`` in ``<name>.json`` (keeping the other condition's
    last results) and rewrite ``<name>.md``."""
    path = RESULTS / f"{name}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    report.setdefault("conditions", {})
    section = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **section}
    report["conditions"][condition] = section
    report["machine"] = (
        f"{platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, aiomodelkit {__version__}, {os.cpu_count()} CPUs"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(report))
