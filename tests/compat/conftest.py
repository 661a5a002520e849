"""The servers of the compatibility matrix, one session fixture each, and a ``backend`` fixture.

moto, SeaweedFS, fake-gcs-server and Azurite come from the root ``conftest.py`` (the same
processes as the rest of the suite); s3rver, ``rclone serve s3``, pys3local and
gcp-storage-emulator start here, once per run, on free loopback ports. npm servers
(s3rver, Azurite) are skipped, with one reason, only where Node.js is absent.

``backend`` turns a server name (the test's parameter, see ``_backends.for_step``) into a
:class:`~._backends.Backend` on a fresh key prefix of a shared bucket, so no test needs a
reset and none sees another's objects.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from aiomodelkit.stores import AzureStore, GCSStore, S3Store, StoreOptions
from aiomodelkit.testing._gcpemu import GcpStorageEmulator
from aiomodelkit.testing._npm import NodeMissingError, node_tools
from aiomodelkit.testing._pys3local import PyS3LocalServer
from aiomodelkit.testing._rclone import RcloneS3Server
from aiomodelkit.testing._s3rver import S3rverServer

from ._backends import BACKENDS, BUCKET, KINDS, MULTIPART_THRESHOLD, NPM_CACHE, Backend
from ._raw import close_clients

if TYPE_CHECKING:
    from collections.abc import Iterator

    from aiomodelkit.stores import Store
    from aiomodelkit.testing import AzuriteServer, FakeGCSServer, MotoServer, SeaweedFSServer


@pytest.fixture(scope="session", autouse=True)
def _probe_clients() -> Iterator[None]:
    """Close the probes' S3 clients once the run is over."""
    yield
    close_clients()


def _require_node() -> None:
    try:
        node_tools()
    except NodeMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def s3rver_server() -> Iterator[S3rverServer]:
    _require_node()
    with S3rverServer(cache_dir=NPM_CACHE) as server:
        yield server


@pytest.fixture(scope="session")
def rclone_server() -> Iterator[RcloneS3Server]:
    with RcloneS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def pys3local_server() -> Iterator[PyS3LocalServer]:
    with PyS3LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def gcp_emulator_server() -> Iterator[GcpStorageEmulator]:
    with GcpStorageEmulator() as server:
        yield server


def _s3_backend(
    name: str,
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    prefix: str,
) -> Backend:
    def make(options: StoreOptions) -> Store:
        return S3Store(
            BUCKET,
            prefix,
            options=options,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            multipart_part_size=MULTIPART_THRESHOLD,
        )

    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return Backend(
        name=name,
        kind="s3",
        url=f"s3://{BUCKET}/{prefix}",
        make_store=make,
        store_options=StoreOptions(multipart_threshold=MULTIPART_THRESHOLD),
        env=env,
        endpoint_url=endpoint_url,
        bucket=BUCKET,
        prefix=prefix,
        credentials=(access_key, secret_key),
    )


def _gcs_backend(
    name: str, endpoint_url: str, prefix: str, *, connections: int | None = None
) -> Backend:
    options = StoreOptions() if connections is None else StoreOptions(max_connections=connections)

    def make(options: StoreOptions) -> Store:
        return GCSStore(BUCKET, prefix, options=options, api_root=endpoint_url)

    env = {"STORAGE_EMULATOR_HOST": endpoint_url}
    settings: dict[str, int] = {}
    if connections is not None:
        env["AIOMODELKIT_MAX_CONNECTIONS"] = str(connections)
        settings["max_connections"] = connections
    return Backend(
        name=name,
        kind="gcs",
        url=f"gs://{BUCKET}/{prefix}",
        make_store=make,
        store_options=options,
        env=env,
        settings=settings,
        endpoint_url=endpoint_url,
        bucket=BUCKET,
        prefix=prefix,
    )


def _azure_backend(server: AzuriteServer, prefix: str) -> Backend:
    server.create_container(BUCKET)

    def make(options: StoreOptions) -> Store:
        return AzureStore(
            BUCKET, prefix, options=options, connection_string=server.connection_string
        )

    return Backend(
        name="azurite",
        kind="azure",
        url=f"az://{BUCKET}/{prefix}",
        make_store=make,
        store_options=StoreOptions(),
        env={"AZURE_STORAGE_CONNECTION_STRING": server.connection_string},
        endpoint_url=server.endpoint_url,
        bucket=BUCKET,
        prefix=prefix,
    )


def _moto(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: MotoServer = request.getfixturevalue("moto_server")
    server.create_bucket(BUCKET)  # another test may have reset moto
    return _s3_backend("moto", server.endpoint_url, "testing", "testing", prefix)


def _seaweedfs(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: SeaweedFSServer = request.getfixturevalue("seaweedfs_server")
    server.create_bucket(BUCKET)
    return _s3_backend(
        "seaweedfs", server.endpoint_url, server.access_key, server.secret_key, prefix
    )


def _fake_gcs(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: FakeGCSServer = request.getfixturevalue("gcs_server")
    server.create_bucket(BUCKET)  # another test may have reset it
    return _gcs_backend("fake-gcs-server", server.endpoint_url, prefix)


def _azurite(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: AzuriteServer = request.getfixturevalue("azurite_server")
    return _azure_backend(server, prefix)


def _s3rver(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: S3rverServer = request.getfixturevalue("s3rver_server")
    server.create_bucket(BUCKET)
    return _s3_backend("s3rver", server.endpoint_url, server.access_key, server.secret_key, prefix)


def _rclone(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: RcloneS3Server = request.getfixturevalue("rclone_server")
    server.create_bucket(BUCKET)
    return _s3_backend("rclone", server.endpoint_url, server.access_key, server.secret_key, prefix)


def _pys3local(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: PyS3LocalServer = request.getfixturevalue("pys3local_server")
    server.create_bucket(BUCKET)
    return _s3_backend(
        "pys3local", server.endpoint_url, server.access_key, server.secret_key, prefix
    )


def _gcp_emulator(request: pytest.FixtureRequest, prefix: str) -> Backend:
    server: GcpStorageEmulator = request.getfixturevalue("gcp_emulator_server")
    server.create_bucket(BUCKET)
    # One connection served at a time, backlog 5: more than 4 stall for seconds (GAPS).
    return _gcs_backend("gcp-storage-emulator", server.endpoint_url, prefix, connections=4)


_BUILDERS = {
    "moto": _moto,
    "seaweedfs": _seaweedfs,
    "fake-gcs-server": _fake_gcs,
    "azurite": _azurite,
    "s3rver": _s3rver,
    "rclone": _rclone,
    "pys3local": _pys3local,
    "gcp-storage-emulator": _gcp_emulator,
}
assert tuple(_BUILDERS) == BACKENDS, "every row of GAPS needs a server, in the same order"


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The server named by the test's ``backend`` parameter, on a fresh key prefix."""
    name: str = request.param
    backend = _BUILDERS[name](request, f"t-{uuid.uuid4().hex[:12]}")
    assert backend.kind == KINDS[name]
    return backend
