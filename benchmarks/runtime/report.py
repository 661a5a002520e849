"""The results files: ``results/<name>.json`` (every part's last run) and its tables."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from typing import Any

from aiomodelkit import __version__

from .common import RESULTS, show_ms, show_s
from .swap import served_in_time


def markdown(report: dict[str, Any]) -> str:
    """The results file's tables."""
    lines = [f"# Runtime: bounded memory and swaps\n\n{report['machine']}\n"]
    part = report.get("eviction")
    if part:
        lines += [
            f"## Eviction (`{part['command']}`, {part['date']})\n",
            f"{part['setup']}\n",
            "| scenario | open s | wall s | hit rate | hit p50 / p99 / max ms "
            "| miss p50 / p99 / max ms | loads (per request) | evictions "
            "| max loaded (sampled / exact) "
            "| store requests | failed |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        requests = part["requests"]
        for name, m in part["medians"].items():
            hits = " / ".join(show_ms(m[k]) for k in ("hit_p50", "hit_p99", "hit_max"))
            misses = " / ".join(show_ms(m[k]) for k in ("miss_p50", "miss_p99", "miss_max"))
            lines.append(
                f"| {name} | {m['open_s']:.2f} | {m['wall_s']:.2f} | {m['hit_rate']:.1%} "
                f"| {hits} | {misses} | {m['loads']:.0f} ({m['stream_loads'] / requests:.3f}) "
                f"| {m['evictions']:.0f} "
                f"| {m['max_loaded']:.0f} / {m['max_open']:.0f} | {m['store_requests']:.0f} "
                f"| {m['failed']:.0f} |"
            )
        lines += [
            "\nMisses split (ms): first loads (fetch + load when the cache is cold) and "
            "reloads of evicted models (load only); a miss that finds its model loading for "
            "another request joins that load.\n",
            "| scenario | first loads | first p50 / p99 | reloads | reload p50 / p99 "
            "| misses joining a load |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in part["medians"].items():
            lines.append(
                f"| {name} | {m['first_loads']:.0f} | {show_ms(m['first_p50'])} / "
                f"{show_ms(m['first_p99'])} | {m['reloads']:.0f} | {show_ms(m['reload_p50'])} / "
                f"{show_ms(m['reload_p99'])} | {m['joined']:.0f} |"
            )
    part = report.get("swap")
    if part:
        lines += [
            f"\n## Swap (`{part['command']}`, {part['date']})\n",
            f"{part['setup']}\n",
            "| version | publish s | publish → serve s | target s | met | plain fetch s "
            "| swap s (engine) | status version |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in part["runs"]:
            serve = r["publish_to_serve_s"]
            lines.append(
                f"| {r['version']} | {r['publish_s']:.3f} | "
                f"{'not served' if serve is None else f'{serve:.3f}'} | {r['target_s']:.3f} "
                f"| {'yes' if served_in_time(r) else 'no'} | {r['fetch_s']:.3f} "
                f"| {show_s(r['swap_event_s'])} | {r['status_version']} |"
            )
        lines.append(
            f"\nMedian publish → serve {show_s(part['median_publish_to_serve_s'])} s against a "
            f"median target of {part['median_target_s']:.3f} s; predictions during the swaps: "
            f'{part["predictions"]}, failed: {part["failed_predictions"]}. "swap s" is '
            "the engine's own `ModelSwapped.seconds` (its fetch start to the swap)."
        )
    return "\n".join(lines) + "\n"


def save(parts: dict[str, Any], command: str, name: str) -> None:
    """Merge ``parts`` into ``<name>.json`` (keeping the other part) and rewrite the tables."""
    path = RESULTS / f"{name}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for kind, part in parts.items():
        report[kind] = {"command": command, "date": date, **part}
    report["machine"] = (
        f"{platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, aiomodelkit {__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(report))
