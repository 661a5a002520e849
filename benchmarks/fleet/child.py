"""One pod of the fleet: ``python -m benchmarks.fleet.child JOB_JSON``.

The launcher (:mod:`.pods`) starts N of these. Each imports everything first, prints
``ARMED`` and blocks on stdin; on ``go`` (sent to every pod at once) it opens a
``ModelLibrary`` over an ``S3Store`` reaching the store through the proxies, and once the
library is open (every model fetched and loaded) or has failed, prints one JSON line (a
:class:`~.common.PodReport`) and exits: 0 if every model loaded, 1 otherwise.

The job (a JSON object): ``index``, ``endpoint``, ``bucket``, ``prefix``, ``key``,
``secret``, ``cache`` (its assets directory, maybe shared with other pods) and ``models``
(model key -> pinned asset spec). Everything else is the environment's: the mode under test
arrives as ``AIOMODELKIT_*`` variables, read by ``Settings`` (built here with only
``assets_dir`` given, so they are not overridden).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from aiomodelkit import AssetsManager, FetchFinished, Model, ModelLibrary, Retrying, Settings
from aiomodelkit._events import StoreRequest, subscribe
from aiomodelkit.stores import S3Store

from .common import PodReport

__all__ = ["FleetModel", "main"]

#: The settings a report echoes, where the engine has them.
ECHOED = ("max_connections", "adaptive_concurrency", "metadata_connections", "start_jitter")


class FleetModel(Model[Any, Any]):
    """A model whose load only checks its asset is there: the start is all fetching."""

    def _load(self) -> None:
        assert self.asset_path is not None
        if not self.asset_path.exists():
            raise FileNotFoundError(self.asset_path)

    def _predict(self, item: Any) -> Any:
        return item


@dataclass
class Tally:
    """What the pod's engine reported, through one process-wide listener."""

    retry_reasons: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    throttled: int = 0
    bytes: int = 0
    fetch_requests: int | None = None

    def listen(self, event: object, store: str | None) -> None:
        if isinstance(event, StoreRequest):
            self.requests += 1
            self.throttled += event.outcome == "throttled"
        elif isinstance(event, Retrying):
            self.retry_reasons[event.reason] += 1
        elif isinstance(event, FetchFinished):
            self.bytes += event.size
            sent = getattr(event, "requests", None)  # FetchFinished.requests: issue 18
            if isinstance(sent, int):
                self.fetch_requests = (self.fetch_requests or 0) + sent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def start(job: dict[str, Any]) -> tuple[float | None, list[str], dict[str, Any]]:
    """Open the library; when it was ready (None if a model failed), the failed models and
    the resolved settings."""
    settings = Settings(assets_dir=Path(job["cache"]))
    store = S3Store(
        job["bucket"],
        job["prefix"],
        endpoint_url=job["endpoint"],
        aws_access_key_id=job["key"],
        aws_secret_access_key=job["secret"],
        region_name="us-east-1",
    )
    configuration = {
        key: {"model_type": FleetModel, "asset": spec} for key, spec in job["models"].items()
    }
    echoed = {name: getattr(settings, name) for name in ECHOED if hasattr(settings, name)}
    async with AssetsManager(storage=store, settings=settings) as am:
        # allow_partial: the library opens even if a model failed, so the report names it.
        library = ModelLibrary(
            [FleetModel],
            configuration=configuration,
            settings=settings,
            assets_manager=am,
            allow_partial=True,
        )
        async with library as lib:
            ready = time.time()
            failed = sorted(key for key, status in lib.status().items() if status.error)
    return (None if failed else ready), failed, echoed


def main() -> None:
    job: dict[str, Any] = json.loads(sys.argv[1])
    tally = Tally()
    print("ARMED", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(2)  # the launcher gave up on this fleet
    cpu = _cpu()
    stop = subscribe(tally.listen)
    ready: float | None = None
    failed: list[str] = []
    echoed: dict[str, Any] = {}
    error = None
    try:
        ready, failed, echoed = anyio.run(start, job)
    except Exception as exc:
        error = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
    finally:
        stop()
    report = PodReport(
        index=job["index"],
        ok=error is None and not failed,
        ready=ready,
        ended=time.time(),
        failed_models=tuple(failed),
        error=error,
        retries=sum(tally.retry_reasons.values()),
        retry_reasons=dict(tally.retry_reasons),
        requests=tally.requests,
        throttled=tally.throttled,
        fetch_requests=tally.fetch_requests,
        bytes=tally.bytes,
        cpu_s=round(_cpu() - cpu, 3),
        settings=echoed,
    )
    print(json.dumps(asdict(report)), flush=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
