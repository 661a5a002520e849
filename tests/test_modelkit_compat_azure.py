"""Migration on Azure: modelkit 0.1.3's Azure driver and AzureStore share one container.

modelkit runs in a subprocess with its own settings (``MODELKIT_STORAGE_PROVIDER=az``, the
container as ``MODELKIT_STORAGE_BUCKET``, ``AZURE_STORAGE_CONNECTION_STRING``) against the
same Azurite container as ``az://container`` here: each reads what the other publishes, and
the blob names are the same either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING

import anyio
from azure.storage.blob.aio import ContainerClient

from aiomodelkit import AssetsManager, Settings
from aiomodelkit.stores import AzureStore

if TYPE_CHECKING:
    from pathlib import Path

    from aiomodelkit.testing import AzuriteServer

_MODELKIT = textwrap.dedent(
    """
    import json, sys
    from modelkit.assets.manager import AssetsManager
    from modelkit.assets.remote import StorageProvider

    command, *args = sys.argv[1:]
    if command == "fetch":
        info = AssetsManager().fetch_asset(args[0], return_info=True)
        print(json.dumps({"path": info["path"], "version": info["version"]}))
    elif command == "versions":
        print(json.dumps(StorageProvider().get_versions_info(args[0])))
    elif command in ("new", "update"):
        path, name, version = args
        getattr(StorageProvider(), command)(path, name, version)
    """
)


def _modelkit(azurite: AzuriteServer, container: str, cache: Path, *args: str) -> str:
    """Run modelkit 0.1.3 with its Azure driver on ``container`` (default prefix)."""
    env = {
        # modelkit's process needs a PATH and a HOME; nothing else of this environment.
        "PATH": os.environ["PATH"],  # noqa: TID251
        "HOME": os.environ["HOME"],  # noqa: TID251
        "MODELKIT_STORAGE_PROVIDER": "az",
        "MODELKIT_STORAGE_BUCKET": container,
        "MODELKIT_ASSETS_DIR": str(cache),
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    done = subprocess.run(
        [sys.executable, "-c", _MODELKIT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def _store(azurite: AzuriteServer, container: str) -> AzureStore:
    return AzureStore(container, connection_string=azurite.connection_string)


async def _blob_names(azurite: AzuriteServer, container: str) -> list[str]:
    async with ContainerClient.from_connection_string(
        azurite.connection_string, container
    ) as client:
        return [name async for name in client.list_blob_names()]


def _model(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 1000)
    (model / "sub" / "vocab.txt").write_text("vocab")
    single = tmp_path / "single.bin"
    single.write_bytes(b"single")
    return model, single


_LAYOUT = [
    "modelkit-assets/models/one.versions",
    "modelkit-assets/models/one/0.0",
    "modelkit-assets/models/one/0.0.meta",
    "modelkit-assets/models/tok.versions",
    "modelkit-assets/models/tok/0.0.meta",
    "modelkit-assets/models/tok/0.0/sub/vocab.txt",
    "modelkit-assets/models/tok/0.0/weights.bin",
    "modelkit-assets/models/tok/0.1.meta",
    "modelkit-assets/models/tok/0.1/sub/vocab.txt",
    "modelkit-assets/models/tok/0.1/weights.bin",
]


async def test_modelkit_reads_what_we_publish_on_azure(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = f"mk-{uuid.uuid4().hex[:16]}"
    azurite_server.create_container(container)
    model, single = _model(tmp_path)
    settings = Settings(assets_dir=tmp_path / "cache", pushed_by="tester")
    async with AssetsManager(storage=_store(azurite_server, container), settings=settings) as am:
        await am.new(model, "models/tok")
        await am.update(model, "models/tok")
        await am.new(single, "models/one")
    assert sorted(await _blob_names(azurite_server, container)) == _LAYOUT
    cache = tmp_path / "modelkit-cache"
    cache.mkdir()
    run = (azurite_server, container, cache)
    versions = json.loads(await anyio.to_thread.run_sync(_modelkit, *run, "versions", "models/tok"))
    tok = json.loads(
        await anyio.to_thread.run_sync(_modelkit, *run, "fetch", "models/tok:0[sub/vocab.txt]")
    )
    one = json.loads(await anyio.to_thread.run_sync(_modelkit, *run, "fetch", "models/one"))
    assert versions == ["0.1", "0.0"]
    assert tok["version"] == "0.1"
    assert await anyio.Path(tok["path"]).read_text() == "vocab"
    assert one["version"] == "0.0"
    assert await anyio.Path(one["path"]).read_bytes() == b"single"


async def test_we_read_what_modelkit_publishes_on_azure(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = f"mk-{uuid.uuid4().hex[:16]}"
    azurite_server.create_container(container)
    model, single = _model(tmp_path)
    cache = tmp_path / "modelkit-cache"
    cache.mkdir()
    run = (azurite_server, container, cache)
    await anyio.to_thread.run_sync(_modelkit, *run, "new", str(model), "models/tok", "0.0")
    await anyio.to_thread.run_sync(_modelkit, *run, "update", str(model), "models/tok", "0.1")
    await anyio.to_thread.run_sync(_modelkit, *run, "new", str(single), "models/one", "0.0")
    # The very names we would have written.
    assert sorted(await _blob_names(azurite_server, container)) == _LAYOUT
    settings = Settings(assets_dir=tmp_path / "cache", pushed_by="tester")
    async with AssetsManager(storage=_store(azurite_server, container), settings=settings) as am:
        versions = await am.versions("models/tok")
        meta = await am.meta("models/tok", "0.0")
        directory = await am.fetch("models/tok:0[sub/vocab.txt]")
        file_asset = await am.fetch("models/one")
        update = await am.update(single, "models/one", bump_major=True)
    assert versions == ["0.1", "0.0"]
    assert meta.is_directory
    assert {f.path for f in meta.files} == {"sub/vocab.txt", "weights.bin"}
    assert directory.version == "0.1"
    assert directory.path.read_text() == "vocab"
    assert file_asset.path.read_bytes() == b"single"
    assert update.version == "1.0"
    versions_after = await anyio.to_thread.run_sync(_modelkit, *run, "versions", "models/one")
    assert json.loads(versions_after) == ["1.0", "0.0"]
