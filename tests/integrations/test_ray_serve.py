"""aiomodelkit.integrations.ray_serve on a real local Ray instance: two replicas, one node.

Marked ``ray`` (deselected by default; ``pytest -m ray tests/integrations``, or ``nox -s
ray``). One Ray instance and one application serve the whole module: Ray listens on
127.0.0.1 only, and so does Serve's HTTP proxy, on a free port.

The replicas are other processes, so what happens in them is read from outside:

* **downloads**: the store is moto's S3 server behind :class:`FaultProxy`, which counts every
  request the replicas make, server side;
* **loads and closes**: the models of ``_ray_models.py`` write each load's start and end
  (wall clock) and each close, with the replica's pid, into files of their own.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from aiomodelkit import AssetsManager, Settings, UnknownModelError
from aiomodelkit.integrations.ray_serve import deployment
from aiomodelkit.stores import S3Store
from aiomodelkit.testing import FaultProxy, MotoServer
from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ray.serve.handle import DeploymentHandle

pytestmark = [
    pytest.mark.ray,
    # Starting Ray and two replicas on two cores takes most of the first test's time.
    pytest.mark.timeout(240),
    # Ray's own modules still use pydantic 1-style Field arguments and other deprecated APIs.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

HERE = Path(__file__).resolve().parent
BUCKET = "models"
PREFIX = "team-a"
KEYS = tuple(f"m{i}" for i in range(6))  # as in _ray_models.py
PRELOADED = ("m0", "m1")
#: Each replica keeps two models loaded: the requests below make them evict.
BUDGET = 2
#: Cleared for Ray's processes too, as tests/conftest.py clears them for each test.
_ISOLATED_PREFIXES = ("AIOMODELKIT_", "MODELKIT_", "AWS_", "GOOGLE_", "GCLOUD_", "AZURE_")


@dataclass(frozen=True)
class Served:
    """The running application and what the test reads its effects from."""

    handle: DeploymentHandle[Any]
    proxy: FaultProxy
    log_dir: Path
    http_url: str
    ready_at: float  # wall clock, when serve.run returned (every replica had started)

    def data_gets(self, key: str) -> int:
        """GET requests for the one data object of model ``key``'s asset."""
        return self.proxy.count("GET", f"{PREFIX}/models/{key}/0.0/weights.txt")

    def records(
        self, event: str, since: float = 0.0, until: float = math.inf
    ) -> list[dict[str, Any]]:
        """Every ``load`` or ``close`` the replicas recorded, started and ended in the window."""
        found = [json.loads(path.read_text()) for path in self.log_dir.glob(f"{event}-*.json")]
        return [r for r in found if since <= r["start"] and r["end"] <= until]


def s3(endpoint_url: str) -> S3Store:
    return S3Store(
        BUCKET,
        PREFIX,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


async def publish_all(endpoint_url: str, work: Path) -> None:
    """Publish ``models/<key>:0.0`` (one file, ``weights.txt``) for every key, straight to
    moto (not through the proxy, whose counts are the replicas')."""
    settings = Settings(assets_dir=work / "publisher-cache")
    async with AssetsManager(storage=s3(endpoint_url), settings=settings) as am:
        for key in KEYS:
            source = work / "sources" / key
            source.mkdir(parents=True)
            (source / "weights.txt").write_text(f"weights-{key}")
            await am.new(source, f"models/{key}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import ray
    from ray import serve

    work = tmp_path_factory.mktemp("ray")
    log_dir = work / "records"
    log_dir.mkdir()
    with (
        pytest.MonkeyPatch.context() as env,
        MotoServer() as moto,
        FaultProxy(moto.endpoint_url) as proxy,
    ):
        for name in list(os.environ):  # noqa: TID251 - Ray's processes inherit this environment
            if name.startswith(_ISOLATED_PREFIXES):
                env.delenv(name)
        env.setenv("HOME", str(work / "home"))
        env.syspath_prepend(str(HERE))  # the driver imports _ray_models to check the graph
        moto.create_bucket(BUCKET)
        anyio.run(publish_all, moto.endpoint_url, work)
        replica_env = {
            "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
            "AWS_ENDPOINT_URL": proxy.endpoint_url,  # every store request goes through it
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            num_cpus=2,
            object_store_memory=128 * 1024 * 1024,
            runtime_env={"env_vars": replica_env},
            log_to_driver=False,
        )
        try:
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            app = deployment(
                "_ray_models",
                # One cache directory for both replicas (one node): one download per object.
                settings=Settings(storage=f"s3://{BUCKET}/{PREFIX}", assets_dir=work / "cache"),
                name="models",
                num_replicas=2,
                max_loaded_models=BUDGET,
                preload=PRELOADED,
                configuration={key: {"model_settings": {"log_dir": str(log_dir)}} for key in KEYS},
                # Two replicas and Serve's own actors on two CPUs.
                ray_actor_options={"num_cpus": 0.5},
            )
            handle = serve.run(app, name="models", route_prefix="/")
            yield Served(handle, proxy, log_dir, f"http://127.0.0.1:{port}/", time.time())
        finally:
            serve.delete("models")  # a no-op if the last test deleted it
            ray.shutdown()  # Serve's own actors too: the instance was started here


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two recorded loads ran at the same time."""
    return bool(a["start"] < b["end"] and b["start"] < a["end"])


def by_pid(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["pid"]].append(record)
    return grouped


def test_each_replica_preloads_concurrently_from_one_download(served: Served) -> None:
    preloads = served.records("load", until=served.ready_at)
    replicas = by_pid(preloads)
    assert len(replicas) == 2, replicas  # both replicas, each its own process
    for loads in replicas.values():
        assert sorted(r["key"] for r in loads) == sorted(PRELOADED)
        assert overlap(*loads), loads  # one replica, two models loading at once
    for key in PRELOADED:  # both replicas loaded it, from one download in the shared cache
        assert served.data_gets(key) == 1, served.proxy.counts()


def test_requests_for_different_models_are_answered(served: Served) -> None:
    fresh = [key for key in KEYS if key not in PRELOADED]
    # All at once: some replica gets several new models to load (4 models, 2 replicas).
    sent = time.time()
    responses = [served.handle.options(multiplexed_model_id=key).remote("x") for key in fresh]
    assert [r.result(timeout_s=60) for r in responses] == [f"{k}:weights-{k}:x" for k in fresh]

    loads = served.records("load", since=sent, until=time.time())
    assert sorted(r["key"] for r in loads) == fresh  # each model loaded once, where routed
    concurrent = [
        (a["key"], b["key"])
        for replica in by_pid(loads).values()
        for a, b in itertools.combinations(replica, 2)
        if overlap(a, b)
    ]
    assert concurrent, loads  # Ray's own multiplexed loader would load them one by one

    # Every model again, and a batch: the evicted ones load again, from the cache.
    again = [served.handle.options(multiplexed_model_id=key).remote("y") for key in KEYS]
    assert [r.result(timeout_s=60) for r in again] == [f"{k}:weights-{k}:y" for k in KEYS]
    batch = served.handle.options(multiplexed_model_id="m3").predict_batch.remote(["a", "b"])
    assert batch.result(timeout_s=60) == ["m3:weights-m3:a", "m3:weights-m3:b"]
    assert {key: served.data_gets(key) for key in KEYS} == dict.fromkeys(KEYS, 1)
    statuses = served.handle.status.remote().result(timeout_s=60)  # one replica's library
    assert set(statuses) <= set(KEYS)
    assert 0 < sum(status.loaded for status in statuses.values()) <= BUDGET

    # Over budget, the library closed models (close() awaited), in the replica that had them.
    closes = served.records("close")
    assert closes
    loaded = {(r["pid"], r["key"]) for r in served.records("load")}
    assert all((r["pid"], r["key"]) in loaded for r in closes)


def test_a_handle_gets_the_library_errors(served: Served) -> None:
    with pytest.raises(UnknownModelError, match="m9"):
        served.handle.options(multiplexed_model_id="m9").remote("x").result(timeout_s=60)
    with pytest.raises(ValueError, match="no model id"):
        served.handle.remote("x").result(timeout_s=60)


def post(url: str, body: bytes, model_id: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if model_id is not None:
        headers["serve_multiplexed_model_id"] = model_id
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_requests_name_their_model_in_a_header(served: Served) -> None:
    assert post(served.http_url, b'"z"', "m4") == (200, "m4:weights-m4:z")
    status, body = post(served.http_url, b'"z"', "m9")
    assert (status, "m9" in body["error"]) == (404, True)
    status, body = post(served.http_url, b'"z"', None)
    assert (status, "no model id" in body["error"]) == (400, True)
    status, body = post(served.http_url, b"{not json", "m4")
    assert (status, "not valid JSON" in body["error"]) == (400, True)


def test_deleting_the_application_closes_every_model(served: Served) -> None:
    """Last: Ray Serve stops each replica gracefully, and the replica closes its library."""
    from ray import serve

    serve.delete("models")
    loads = [(r["pid"], r["key"]) for r in served.records("load")]
    closes = [(r["pid"], r["key"]) for r in served.records("close")]
    assert sorted(closes) == sorted(loads)  # every instance loaded was closed, once
