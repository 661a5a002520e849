"""Run Azurite, Microsoft's Azure Storage emulator, on a free loopback port, for your own tests.

Azurite comes from the npm registry: the first start installs the pinned version through
``_npm`` (once per machine, under a file lock, into ``~/.cache/aiomodelkit/npm`` unless told
otherwise); later starts reuse it. It needs Node.js (``node`` and ``npm`` on ``PATH``). Version
3.35.0 is pinned: the last one whose ``engines`` accept Node.js 20, which Debian and our
machines ship (3.36 asks for Node.js 21, 3.37 for 22).

Each start runs the blob service alone, in memory, on ``127.0.0.1``, with telemetry off
(Azurite otherwise reports usage to Microsoft), one account whose key is random per server,
and the API version check off (the SDK may be newer than the emulator). Only the stdlib is
used to run it, so the helper works without an event loop (:meth:`AzuriteServer.create_container`
asks ``azure-storage-blob`` only to sign its request).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ._npm import node_tools, npm_install
from ._process import HOST, Launch, SubprocessServer, answers, create_with_put

__all__ = ["AZURITE_VERSION", "AzuriteServer", "install_azurite"]

#: The Azurite release the helper installs.
AZURITE_VERSION = "3.35.0"
#: Where the blob service's entry point sits inside the npm prefix.
_ENTRY = Path("node_modules", "azurite", "dist", "src", "blob", "main.js")
#: Memory Azurite may use for blob contents (it defaults to half the machine's).
_EXTENT_MEMORY_MB = 4096


def install_azurite(cache_dir: Path | None = None, version: str = AZURITE_VERSION) -> Path:
    """Install Azurite ``version`` from npm unless it is already there; return its entry point.

    Raises:
        NodeMissingError: ``node`` or ``npm`` is missing.
        RuntimeError: ``npm install`` failed (the message holds the end of its output).
    """
    entry = npm_install("azurite", version, cache_dir=cache_dir) / _ENTRY
    if not entry.is_file():
        raise RuntimeError(f"azurite@{version} installed without {_ENTRY}")
    return entry


class AzuriteServer(SubprocessServer):
    """Azurite's blob service on ``127.0.0.1``, in memory, started on entry, stopped on exit.

    Args:
        install_dir: the npm cache directory where Azurite is installed (and looked for);
            by default ``_npm.default_npm_cache()``.
        account: the storage account the server knows (the only one).
        startup_timeout: seconds to wait for the server to answer, per start attempt (the
            first start also waits for ``npm install``, which has its own limit).

    Attributes:
        account: the account name.
        account_key: its key, random per server (base64, as Azure's are).

    Point a store at it with ``AzureStore(container, connection_string=server.connection_string)``
    (or ``account_url=server.account_url`` and ``account_key=server.account_key``). There is
    no reset: give each test a container of its own.

    Example:
        >>> from aiomodelkit.stores import AzureStore
        >>> with AzuriteServer() as azurite:  # doctest: +SKIP
        ...     azurite.create_container("models")
        ...     store = AzureStore("models", connection_string=azurite.connection_string)
    """

    name = "Azurite"
    _poll_interval = 0.05
    _stop_grace = 5.0
    # Azurite writes nothing in memory mode, but run it where stray files do no harm.
    _temporary_prefix = "azurite-"

    def __init__(
        self,
        *,
        install_dir: Path | None = None,
        account: str = "devstoreaccount1",
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._install_dir = install_dir
        self.account = account
        self.account_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self._entry: Path | None = None

    # The base's repr shows the endpoint only: never the key.

    @property
    def account_url(self) -> str:
        """``http://127.0.0.1:PORT/<account>``: the blob endpoint (path-style, as Azurite's)."""
        return f"{self.endpoint_url}/{self.account}"

    @property
    def connection_string(self) -> str:
        """A connection string for the account (it holds the key)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.account_key};BlobEndpoint={self.account_url};"
        )

    def start(self) -> None:
        """Install Azurite if needed, then start it.

        Raises:
            NodeMissingError: ``node`` or ``npm`` is missing.
            RuntimeError: the install failed, or the server did not come up.
        """
        self._entry = install_azurite(self._install_dir)
        super().start()

    def _launch(self, port: int) -> Launch:
        node, _ = node_tools()
        if self._entry is None:
            raise RuntimeError("Azurite is not installed: start() installs it")
        argv = [
            node, str(self._entry),
            "--blobHost", HOST, "--blobPort", str(port),
            "--inMemoryPersistence", "--extentMemoryLimit", str(_EXTENT_MEMORY_MB),
            "--disableTelemetry", "--silent", "--skipApiVersionCheck", "--loose",
        ]  # fmt: skip
        # A minimal environment: node needs none, and the account comes from this variable.
        env = {"AZURITE_ACCOUNTS": f"{self.account}:{self.account_key}"}
        return Launch(argv, port, cwd=self._temporary_dir(), env=env)

    def _is_ready(self) -> bool:
        # Any HTTP answer means it serves (an unsigned request gets 403 or 400).
        return answers(f"{self.endpoint_url}/{self.account}?comp=list")

    def create_container(self, name: str) -> None:
        """Create a container; an existing one is kept.

        Needs ``azure-storage-blob`` (the ``azure`` extra).
        """
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

        # Signed by the SDK, sent by urllib through the helpers' proxy-free opener: the SDK's
        # own (requests-based) client would go through an HTTP proxy the developer has set.
        sas = generate_account_sas(
            self.account,
            self.account_key,
            resource_types=ResourceTypes(container=True),
            permission=AccountSasPermissions(create=True),
            expiry=datetime.now(UTC) + timedelta(minutes=10),
        )
        # 409: ContainerAlreadyExists
        create_with_put(f"{self.account_url}/{name}?restype=container&{sas}")
