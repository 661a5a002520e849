"""One benchmark run of modelkit 0.1.3, in its own virtualenv (stdlib and modelkit only).

Run by the harness from the repository root, as
``benchmarks/.venvs/modelkit-0.1.3/bin/python -m benchmarks.harness.modelkit_peer JOB.json``;
the last stdout line is the :class:`~.records.RunResult`. modelkit is configured the way its
users do it, through ``MODELKIT_*`` variables (and ``S3_ENDPOINT`` / AWS variables for its
boto3 driver, ``STORAGE_EMULATOR_HOST`` for google-cloud-storage), set by the harness.

Kinds: ``fetch`` (``AssetsManager.fetch_asset`` for each spec, as modelkit does: one after
another), ``warm`` and ``graph`` (``ModelLibrary`` with one configuration per model, built
in its constructor, as modelkit does). The clock starts after imports.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .measure import cpu_s, peak_rss_mib, rss_mib, simulate_load
from .records import ClientReport, Job, RunResult


def _fetch(job: Job) -> ClientReport:
    from modelkit.assets.manager import AssetsManager

    manager = AssetsManager()
    for spec in job.specs:
        manager.fetch_asset(spec)
    return ClientReport()


def _library(job: Job) -> ClientReport:
    from modelkit.core.library import ModelLibrary
    from modelkit.core.model import Model

    base: Any = Model  # modelkit's classes are untyped generics

    configurations = job.model_configurations()

    class BenchModel(base):  # type: ignore[misc]
        CONFIGURATIONS = configurations

        def _load(self) -> None:
            simulate_load(self.asset_path, self.model_settings["load_s"])

        def _predict(self, item: Any) -> Any:
            return item

    library = ModelLibrary(models=[BenchModel], required_models=[m.key for m in job.models])
    return ClientReport(models=len(library.models))


def run(job: Job) -> RunResult:
    """Run one job; returns the result (``ok`` False with ``error`` on failure)."""
    # Imports are not measured.
    import modelkit.assets.manager  # noqa: F401

    if job.start_at is not None:
        time.sleep(max(0.0, job.start_at - time.time()))
    base_rss = rss_mib()
    cpu = cpu_s()
    start = time.perf_counter()
    started = time.time()
    client, error = ClientReport(), None
    try:
        client = _library(job) if job.kind in ("warm", "graph") else _fetch(job)
    except BaseException as exc:  # reported to the harness
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    return RunResult(
        ok=error is None,
        peer="modelkit",
        error=error,
        started=started,
        ended=time.time(),
        wall_s=time.perf_counter() - start,
        cpu_s=cpu_s() - cpu,
        peak_rss_mib=peak_rss_mib(),
        base_rss_mib=base_rss,
        client=client,
    )


if __name__ == "__main__":
    print(run(Job.from_json(Path(sys.argv[1]).read_text())).to_json(), flush=True)
