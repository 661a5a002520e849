"""``python -m benchmarks.runtime``: the options, the servers, the parts, the results."""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from aiomodelkit.testing import SeaweedFSServer
from benchmarks.harness.matrix import CONDITIONS
from benchmarks.harness.services import ProxyProcess

from . import __doc__ as description
from .common import BUCKET, RESULTS, Servers
from .eviction import eviction
from .report import save
from .swap import swap

if TYPE_CHECKING:
    from collections.abc import Callable


async def main_async(args: argparse.Namespace, servers: Servers, work: Path) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    if args.part in ("eviction", "all"):
        result = await eviction(servers, work / "eviction", args)
        setup = (
            f"{args.models} models of {args.asset_mib} MiB, `_load` {args.load_seconds} s, "
            f"predict {args.predict_ms} ms; {args.requests} requests, Zipf s={args.zipf} "
            f"(the {args.max_loaded} most popular: {result['top_share']:.1%} of requests; an "
            f"LRU cache of {args.max_loaded} fed one request at a time would hit "
            f"{result['lru_hit_rate']:.1%}), "
            f"{args.concurrency} clients, 20 ms RTT; medians of {args.runs} runs."
        )
        parts["eviction"] = {"setup": setup, **result}
    if args.part in ("swap", "all"):
        result_swap = await swap(servers, work / "swap", args)
        if result_swap is not None:
            setup = (
                f"watch_interval {args.watch_interval} s, {args.swap_mib} MiB asset, `_load` "
                f"{args.load_seconds} s, a prediction every {args.predict_every * 1000:.0f} ms, "
                "20 ms RTT; target = interval + plain fetch + load + 0.1 s."
            )
            parts["swap"] = {"setup": setup, **result_swap}
    return parts


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add: Callable[..., Any] = parser.add_argument
    add("--part", choices=("eviction", "swap", "all"), default="all")
    add("--runs", type=int, default=3)
    add("--load-seconds", type=float, default=0.05, help="each _load's sleep")
    add("--models", type=int, default=50)
    add("--asset-mib", type=int, default=1)
    add("--max-loaded", type=int, default=10, help="max_loaded_models of the bounded runs")
    add("--requests", type=int, default=2000)
    add("--zipf", type=float, default=1.0, help="Zipf exponent s")
    add("--concurrency", type=int, default=8)
    add("--predict-ms", type=float, default=0.0, help="each prediction's sleep")
    add("--seed", type=int, default=15)
    add("--watch-interval", type=float, default=1.0)
    add("--swap-mib", type=int, default=16)
    add("--predict-every", type=float, default=0.005, help="seconds between steady predictions")
    add("--output", default="runtime", help="results/<output>.json and .md")
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    command = " ".join(["python -m benchmarks.runtime", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="aiomodelkit-runtime-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        weed = stack.enter_context(SeaweedFSServer(work / "seaweedfs"))
        weed.create_bucket(BUCKET)
        proxy = ProxyProcess(weed.endpoint_url, CONDITIONS["rtt20"])
        stack.callback(proxy.stop)
        servers = Servers(weed.endpoint_url, proxy, weed.access_key, weed.secret_key)
        parts = anyio.run(main_async, args, servers, work)
    if parts:
        save(parts, command, args.output)
        print(f"wrote {RESULTS / args.output}.json and .md", flush=True)


if __name__ == "__main__":
    main()
