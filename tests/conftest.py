"""Shared fixtures: the house rules, isolation from the developer's environment, and real
object-store servers.

Every test runs under blockbuster scoped to ``aiomodelkit``: a blocking call (file I/O,
``time.sleep``, a blocking socket, a contended lock...) made on the event loop with our code
on the stack fails the test. Sockets are limited to loopback by pytest-socket (``addopts``).

Servers are synchronous, session-scoped, bind 127.0.0.1 on a free port and stop themselves.
Per test, each store gets a fresh bucket (moto and fake-gcs-server are reset; SeaweedFS,
which has no reset, gets one shared bucket and a unique prefix per test; Azurite, which has
none either, a container of its own). Azurite is installed from npm on first use; its tests
are skipped, with one reason, only where Node.js is absent.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Protocol

import pytest
from blockbuster import BlockBuster

from aiomodelkit.stores import (
    AzureStore,
    GCSStore,
    LocalStore,
    MemoryStore,
    S3Store,
    Store,
    StoreOptions,
)
from aiomodelkit.testing import AzuriteServer, FakeGCSServer, MotoServer, SeaweedFSServer
from aiomodelkit.testing._npm import NodeMissingError, default_npm_cache, node_tools

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_ISOLATED_PREFIXES = (
    "AIOMODELKIT_", "MODELKIT_", "AWS_", "GOOGLE_", "GCLOUD_", "BOTO_",
    "AZURE_", "IDENTITY_", "MSI_",  # Azure: storage credentials, azure-identity's chain
)  # fmt: skip
_ISOLATED_NAMES = ("STORAGE_EMULATOR_HOST", "CLOUDSDK_CONFIG", "S3_ENDPOINT")


# The allow-list: blocking calls our code may make on the event loop, each with its reason.
# (blockbuster's name for the function, the file that may call it, the functions in that file)
_MAY_BLOCK: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # Logging from the loop is ordinary practice (an application that minds installs a
    # QueueHandler); under pytest every record also goes to a log-file handler on /dev/null.
    ("io.TextIOWrapper.write", "/logging/__init__.py", ("emit", "flush")),
    ("io.BufferedWriter.write", "/logging/__init__.py", ("emit", "flush")),
)
# The server helpers of aiomodelkit.testing are synchronous by design (their docstring says
# so): tests call ``reset()`` or ``create_bucket()`` between awaits. Their frames are not
# counted as ours, so the HTTP requests they make to their own server are allowed.
_SYNC_HELPERS = (
    "aiomodelkit.testing._process",
    "aiomodelkit.testing._moto",
    "aiomodelkit.testing._fakegcs",
    "aiomodelkit.testing._seaweedfs",
    "aiomodelkit.testing._azurite",
    "aiomodelkit.testing._npm",
    "aiomodelkit.testing._gcsadmin",
    "aiomodelkit.testing._s3admin",
    "aiomodelkit.testing._s3rver",
    "aiomodelkit.testing._rclone",
    "aiomodelkit.testing._pys3local",
    "aiomodelkit.testing._gcpemu",
)


@pytest.fixture(autouse=True)
def _no_blocking_on_the_loop() -> Iterator[BlockBuster]:
    """Fail any test in which aiomodelkit blocks the event loop (house style §5).

    Only calls made on a thread running an event loop, with a frame of ``aiomodelkit`` on the
    stack, are checked: a test's own setup may write small files on the loop, and sync
    fixtures (the servers of ``aiomodelkit.testing``) and worker threads are never checked.
    """
    blockbuster = BlockBuster("aiomodelkit", excluded_modules=_SYNC_HELPERS)
    for function, filename, names in _MAY_BLOCK:
        blockbuster.functions[function].can_block_in(filename, names)
    blockbuster.activate()
    checked_connect = socket.socket.connect
    try:
        yield blockbuster
    finally:
        connect = socket.socket.connect
        blockbuster.deactivate()
        # pytest-socket restores socket.connect before fixtures are torn down: keep its
        # restoration rather than re-installing the loopback guard of this test.
        if connect is not checked_connect:
            socket.socket.connect = connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's cloud configuration or aiomodelkit settings."""
    for name in list(os.environ):  # noqa: TID251 - to clear them, the fixture must see them all
        if name.startswith(_ISOLATED_PREFIXES) or name in _ISOLATED_NAMES:
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    # botocore must never find real credentials or config files.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGCSServer]:
    with FakeGCSServer() as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFSServer]:
    with SeaweedFSServer(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket("tests")
        yield server


# npm installs (Azurite) are kept across runs, in a cache resolved at import: by the time a
# test asks for a server, _isolated_environment may have pointed HOME at a temporary directory.
_NPM_CACHE = default_npm_cache()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    try:
        node_tools()
    except NodeMissingError:
        pytest.skip("Azurite (the Azure Storage emulator) needs Node.js: node and npm on PATH")
    with AzuriteServer(install_dir=_NPM_CACHE) as server:
        yield server


class StoreFactory(Protocol):
    """Builds an unopened store; tests enter it with ``async with``."""

    def __call__(self, options: StoreOptions | None = None) -> Store: ...


@pytest.fixture
def s3_store_factory(moto_server: MotoServer) -> StoreFactory:
    moto_server.reset()
    moto_server.create_bucket("bucket")

    def make(options: StoreOptions | None = None) -> Store:
        return S3Store(
            "bucket",
            "modelkit-assets",
            options=options,
            endpoint_url=moto_server.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    return make


@pytest.fixture
def seaweedfs_store_factory(seaweedfs_server: SeaweedFSServer) -> StoreFactory:
    prefix = f"t-{uuid.uuid4().hex[:12]}"

    def make(options: StoreOptions | None = None) -> Store:
        return S3Store(
            "tests",
            prefix,
            options=options,
            endpoint_url=seaweedfs_server.endpoint_url,
            aws_access_key_id=seaweedfs_server.access_key,
            aws_secret_access_key=seaweedfs_server.secret_key,
            region_name="us-east-1",
        )

    return make


@pytest.fixture
def gcs_store_factory(gcs_server: FakeGCSServer) -> StoreFactory:
    gcs_server.reset()
    gcs_server.create_bucket("bucket")

    def make(options: StoreOptions | None = None) -> Store:
        return GCSStore(
            "bucket", "modelkit-assets", options=options, api_root=gcs_server.endpoint_url
        )

    return make


@pytest.fixture
def azure_store_factory(azurite_server: AzuriteServer) -> StoreFactory:
    container = f"t-{uuid.uuid4().hex[:20]}"  # Azurite has no reset: one container per test
    azurite_server.create_container(container)

    def make(options: StoreOptions | None = None) -> Store:
        return AzureStore(
            container,
            "modelkit-assets",
            options=options,
            connection_string=azurite_server.connection_string,
        )

    return make


@pytest.fixture
def local_store_factory(tmp_path: Path) -> StoreFactory:
    root = tmp_path / "bucket" / "modelkit-assets"
    root.mkdir(parents=True)

    def make(options: StoreOptions | None = None) -> Store:
        return LocalStore(root, options=options)

    return make


@pytest.fixture
def memory_store_factory() -> StoreFactory:
    stores: dict[StoreOptions | None, MemoryStore] = {}

    def make(options: StoreOptions | None = None) -> Store:
        # The same instance (and content) for every call with the same options.
        return stores.setdefault(options, MemoryStore(options=options))

    return make


@pytest.fixture(params=["memory", "local", "s3", "gcs", "azure"])
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """The same contract, run against every store."""
    factory: StoreFactory = request.getfixturevalue(f"{request.param}_store_factory")
    return factory


@pytest.fixture
def unreachable_s3() -> S3Store:
    """An S3 store on a loopback port nothing listens on: every request fails as transient."""
    return S3Store(
        "bucket",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        region_name="us-east-1",
    )
