"""The helpers behind tests/compat's extra servers: the npm installer and four launchers.

The launchers start for real (each in well under a second, s3rver after its one npm
install); the installer runs against a fake ``npm`` on ``PATH``, so its locking, reuse and
failure paths are tested without the registry.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.config  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import pytest

from aiomodelkit.testing import _s3admin
from aiomodelkit.testing._gcpemu import GcpStorageEmulator, gcp_storage_emulator_script
from aiomodelkit.testing._npm import NodeMissingError, default_npm_cache, node_tools, npm_install
from aiomodelkit.testing._process import SubprocessServer, answers_ok
from aiomodelkit.testing._pys3local import PyS3LocalServer, pys3local_script
from aiomodelkit.testing._rclone import RcloneS3Server, rclone_binary
from aiomodelkit.testing._s3rver import S3rverServer

if TYPE_CHECKING:
    from collections.abc import Callable

# Resolved at import, before _isolated_environment points HOME at a temporary directory.
_NPM_CACHE = default_npm_cache()

# A stand-in for npm: records each call, then installs a package.json for the spec
# (FAKE_NPM_VERSION overrides the version, FAKE_NPM_FAIL makes it fail).
_FAKE_NPM = """#!/bin/sh
echo "$@" >> "$FAKE_NPM_LOG"
sleep "${FAKE_NPM_DELAY:-0}"
prefix=""; spec=""
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix="$2"; shift ;; -*|install) ;; *) spec="$1" ;; esac
  shift
done
if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm error E404 no such package" >&2; exit 1; fi
name="${spec%@*}"
mkdir -p "$prefix/node_modules/$name"
printf '{"name": "%s", "version": "%s"}' "$name" "${FAKE_NPM_VERSION:-${spec##*@}}" \\
  > "$prefix/node_modules/$name/package.json"
"""


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a fake ``node`` and ``npm`` first on ``PATH``; return npm's call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("npm", _FAKE_NPM), ("node", "#!/bin/sh\nexit 0\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "npm-calls.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    return log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_npm_install_installs_once_then_reuses(tmp_path: Path, fake_npm: Path) -> None:
    prefix = npm_install("@scope/server", "1.2.3", cache_dir=tmp_path / "cache")
    assert prefix == tmp_path / "cache" / "@scope+server@1.2.3"
    manifest = prefix / "node_modules" / "@scope" / "server" / "package.json"
    assert json.loads(manifest.read_text())["version"] == "1.2.3"
    assert npm_install("@scope/server", "1.2.3", cache_dir=tmp_path / "cache") == prefix
    [call] = _calls(fake_npm)
    assert "--ignore-scripts" in call.split()
    assert call.endswith("@scope/server@1.2.3")
    assert npm_install("@scope/server", "1.2.4", cache_dir=tmp_path / "cache") != prefix


def test_concurrent_installs_run_npm_once(
    tmp_path: Path, fake_npm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_DELAY", "0.3")
    results: list[Path] = []

    def install() -> None:
        results.append(npm_install("server", "1.0.0", cache_dir=tmp_path))

    threads = [threading.Thread(target=install) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert len(set(results)) == 1
    assert len(_calls(fake_npm)) == 1


@pytest.mark.parametrize(
    ("variable", "message"),
    [("FAKE_NPM_FAIL", "E404 no such package"), ("FAKE_NPM_VERSION", "exit 0")],
    ids=["npm-fails", "wrong-version"],
)
def test_a_failed_install_leaves_nothing_that_looks_installed(
    tmp_path: Path,
    fake_npm: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, "9.9.9")
    with pytest.raises(RuntimeError, match=r"npm install server@1\.0\.0 failed") as caught:
        npm_install("server", "1.0.0", cache_dir=tmp_path / "cache")
    assert message in str(caught.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["server@1.0.0.lock"]
    monkeypatch.delenv(variable)
    assert npm_install("server", "1.0.0", cache_dir=tmp_path / "cache").is_dir()


def test_without_node_the_error_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NodeMissingError, match="node and npm are not on PATH"):
        npm_install("server", "1.0.0", cache_dir=tmp_path)
    (tmp_path / "node").write_text("#!/bin/sh\n")
    (tmp_path / "node").chmod(0o755)
    with pytest.raises(NodeMissingError, match="but npm is not on PATH"):
        node_tools()


def test_the_npm_cache_follows_xdg_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_npm_cache() == tmp_path / "aiomodelkit" / "npm"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert default_npm_cache() == Path.home() / ".cache" / "aiomodelkit" / "npm"


@pytest.mark.parametrize(
    "find", [rclone_binary, pys3local_script, gcp_storage_emulator_script], ids=lambda f: f.__name__
)
def test_a_missing_server_command_names_its_package(
    find: Callable[[], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pip install"):
        find()


# -- the launchers ---------------------------------------------------------------------------


def _s3rver() -> S3rverServer:
    try:
        node_tools()
    except NodeMissingError as exc:
        pytest.skip(str(exc))
    return S3rverServer(cache_dir=_NPM_CACHE)


_LAUNCHERS: dict[str, Callable[[], SubprocessServer]] = {
    "s3rver": _s3rver,
    "rclone": RcloneS3Server,
    "pys3local": PyS3LocalServer,
    "gcp-storage-emulator": GcpStorageEmulator,
}


def _bucket_exists(server: Any, name: str) -> bool:
    if isinstance(server, GcpStorageEmulator):
        return answers_ok(f"{server.endpoint_url}/storage/v1/b/{name}")
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=botocore.config.Config(s3={"addressing_style": "path"}, proxies={}),
    )
    try:
        client.head_bucket(Bucket=name)
    except botocore.exceptions.ClientError:
        return False
    finally:
        client.close()
    return True


@pytest.mark.parametrize("name", list(_LAUNCHERS))
def test_a_server_serves_makes_buckets_and_cleans_up(name: str) -> None:
    server = _LAUNCHERS[name]()
    with server:
        assert repr(server) == f"{type(server).__name__}({server.endpoint_url})"
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        workdir = server._temporary_dir()  # made by the start, removed by the stop
        assert workdir.is_dir()
        create: Callable[[str], None] = server.create_bucket  # type: ignore[attr-defined]
        assert not _bucket_exists(server, "one-bucket")
        create("one-bucket")
        create("one-bucket")  # an existing bucket is kept
        assert _bucket_exists(server, "one-bucket")
        if isinstance(server, GcpStorageEmulator):
            server.reset()
            assert not _bucket_exists(server, "one-bucket")
    assert repr(server).endswith("(stopped)")
    assert not workdir.exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url
    server.stop()  # idempotent


def test_a_signed_bucket_creation_refused_for_a_bad_secret_raises() -> None:
    with RcloneS3Server() as rclone:
        with pytest.raises(urllib.error.HTTPError) as caught:
            _s3admin.create_bucket(
                rclone.endpoint_url, "refused", access_key="testing", secret_key="wrong"
            )
        assert caught.value.code == 403
        assert _s3admin.answers(rclone.endpoint_url)  # a 400 answer counts
    assert not _s3admin.answers("http://127.0.0.1:9")  # nothing listens there
