"""One benchmark run of modelkit 0.1.3, in its own virtualenv (stdlib and modelkit only).

Run by the harness from the repository root, as
``benchmarks/.venvs/modelkit-0.1.3/bin/python -m benchmarks.peer_modelkit JOB.json``; the last
stdout line is the result. modelkit is configured the way its users do it, through
``MODELKIT_*`` variables (and ``S3_ENDPOINT`` / AWS variables for its boto3 driver,
``STORAGE_EMULATOR_HOST`` for google-cloud-storage), set by the harness.

Kinds: ``fetch`` (``AssetsManager.fetch_asset`` for each spec, as modelkit does: one after
another), ``warm`` and ``graph`` (``ModelLibrary`` with one configuration per model, built
in its constructor, as modelkit does). The clock starts after imports.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks._proc import MiB, cpu_s, peak_rss_mib, rss_mib


def _fetch(job: dict[str, Any], result: dict[str, Any]) -> None:
    from modelkit.assets.manager import AssetsManager

    manager = AssetsManager()
    for spec in job["specs"]:
        manager.fetch_asset(spec)


def _library(job: dict[str, Any], result: dict[str, Any]) -> None:
    from modelkit.core.library import ModelLibrary
    from modelkit.core.model import Model

    base: Any = Model  # modelkit's classes are untyped generics

    configurations = {
        m["key"]: {
            "asset": m["spec"],
            "model_dependencies": list(m["deps"]),
            "model_settings": {"load_s": m["load_s"]},
        }
        for m in job["models"]
    }

    class BenchModel(base):  # type: ignore[misc]
        CONFIGURATIONS = configurations

        def _load(self) -> None:
            with open(self.asset_path, "rb") as handle:
                while handle.read(MiB):
                    pass
            time.sleep(self.model_settings["load_s"])

        def _predict(self, item: Any) -> Any:
            return item

    library = ModelLibrary(models=[BenchModel], required_models=[m["key"] for m in job["models"]])
    result["models"] = len(library.models)


def run(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"ok": True, "peer": "modelkit"}
    # Imports are not measured.
    import modelkit.assets.manager  # noqa: F401

    if job.get("start_at") is not None:
        time.sleep(max(0.0, job["start_at"] - time.time()))
    result["base_rss_mib"] = rss_mib()
    cpu = cpu_s()
    start = time.perf_counter()
    result["started"] = time.time()
    try:
        if job["kind"] in ("warm", "graph"):
            _library(job, result)
        else:
            _fetch(job, result)
    except BaseException as exc:  # reported to the harness
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        traceback.print_exc(file=sys.stderr)
    result["wall_s"] = time.perf_counter() - start
    result["ended"] = time.time()
    result["cpu_s"] = cpu_s() - cpu
    result["peak_rss_mib"] = peak_rss_mib()
    return result


if __name__ == "__main__":
    print(json.dumps(run(json.loads(Path(sys.argv[1]).read_text()))), flush=True)
