"""Issue 14, item 1: a store that accepts conditional writes but ignores them is detected.

fake-gcs-server is such a store (it accepts ``ifGenerationMatch`` and overwrites anyway), so
these tests use it as the dishonest server; moto, the local and the memory stores enforce
conditions. Publishing to a dishonest store is refused with one clear error unless
``allow_unsafe_publish``; then publishers take turns under a lease and read back what they
wrote, so an overwrite by a publisher that ignores the lease is reported, not silent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest
from typer.testing import CliRunner

from aiomodelkit import (
    AssetsManager,
    PublishConflictError,
    Settings,
    UnsafeStoreError,
)
from aiomodelkit._cli import app
from aiomodelkit._conditions import Lease, conditions_honoured
from aiomodelkit.stores import GCSStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aiomodelkit.stores import ObjectInfo, Store
    from aiomodelkit.testing import FakeGCSServer

    StoreFactory = Callable[..., Store]

runner = CliRunner()


async def _keys(store: Store) -> list[str]:
    async with store:
        return sorted([info.key async for info in store.list_objects()])


@pytest.mark.parametrize("kind", ["memory", "local", "s3", "gcs"])
async def test_the_probe_tells_honest_stores_from_the_one_that_ignores_conditions(
    request: pytest.FixtureRequest, kind: str
) -> None:
    factory: StoreFactory = request.getfixturevalue(f"{kind}_store_factory")
    store = factory()
    async with store:
        honoured = await conditions_honoured(store)
    assert honoured is (kind != "gcs")  # fake-gcs-server ignores ifGenerationMatch
    assert await _keys(factory()) == []  # the sentinel is gone


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(assets_dir=tmp_path / "cache", pushed_by="alice", **values)  # type: ignore[arg-type]


async def test_publishing_to_a_dishonest_store_is_refused_and_writes_nothing(
    gcs_store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    async with AssetsManager(storage=gcs_store_factory(), settings=_settings(tmp_path)) as am:
        with pytest.raises(UnsafeStoreError, match="accepts conditional writes but ignores them"):
            await am.new(source, "models/clf")
        plan = await am.new(source, "models/clf", dry_run=True)  # a dry run writes nothing
    assert plan.version == "0.0"
    assert await _keys(gcs_store_factory()) == []


def test_the_cli_refuses_in_one_line_and_names_the_setting(
    gcs_server: FakeGCSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcs_server.reset()
    gcs_server.create_bucket("bucket")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint_url)
    monkeypatch.setenv("AIOMODELKIT_ASSETS_DIR", str(tmp_path / "cache"))
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    args = ["assets", "new", str(source), "models/clf", "--storage", "gs://bucket", "--yes"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "gs://bucket/modelkit-assets accepts conditional writes but ignores them" in line
    assert "--allow-unsafe-publish" in line
    allowed = runner.invoke(app, [*args, "--allow-unsafe-publish"])
    assert allowed.exit_code == 0, allowed.output
    assert "published models/clf:0.0" in allowed.stdout


async def test_with_the_opt_in_publishers_take_turns_and_leave_no_lease(
    gcs_store_factory: StoreFactory, tmp_path: Path
) -> None:
    sources = []
    for index in range(4):
        source = tmp_path / f"s{index}.txt"
        source.write_text(f"content {index}")
        sources.append(source)
    settings = _settings(tmp_path, allow_unsafe_publish=True)
    async with AssetsManager(storage=gcs_store_factory(), settings=settings) as am:
        await am.new(sources[0], "models/race")
        async with anyio.create_task_group() as tg:
            for source in sources[1:]:
                tg.start_soon(am.update, source, "models/race")
        versions = await am.versions("models/race")
        contents = {(await am.fetch(f"models/race:{v}")).path.read_text() for v in versions}
    assert versions == ["0.3", "0.2", "0.1", "0.0"]
    assert contents == {f"content {index}" for index in range(4)}
    assert "models/race.publishing" not in await _keys(gcs_store_factory())


async def test_a_live_lease_of_another_publisher_is_waited_for_then_reported(
    gcs_store_factory: StoreFactory,
) -> None:
    store = gcs_store_factory()
    async with store:
        holder = {
            "id": "someone-else",
            "by": "bob@build-7",
            "expires": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }
        await store.put("models/clf.publishing", json.dumps(holder).encode())
        with pytest.raises(PublishConflictError, match=r"another publisher \(bob@build-7 until"):
            await Lease(store, "models/clf", holder="alice").acquire(wait=0.3)
        # An expired lease (its holder crashed) is taken over.
        holder["expires"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        await store.put("models/clf.publishing", json.dumps(holder).encode())
        lease = Lease(store, "models/clf", holder="alice")
        await lease.acquire(wait=0.3)
        await lease.release()
    assert await _keys(gcs_store_factory()) == []


class _Rogue(GCSStore):
    """fake-gcs-server, plus a second publisher that ignores the lease: right after our meta
    is written, it overwrites the version's meta with its own."""

    async def put(
        self,
        key: str,
        data: bytes | Path,
        *,
        if_absent: bool = False,
        if_match: str | None = None,
    ) -> ObjectInfo:
        info = await super().put(key, data, if_absent=if_absent, if_match=if_match)
        if key.endswith("/0.1.meta") and isinstance(data, bytes):
            meta = bytes(data)
            await super().put(key, meta.replace(b'"alice"', b'"rogue"'))
        return info


async def test_an_overwrite_during_an_unsafe_publication_is_reported(
    gcs_server: FakeGCSServer, gcs_store_factory: StoreFactory, tmp_path: Path
) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    settings = _settings(tmp_path, allow_unsafe_publish=True)
    store = _Rogue("bucket", "modelkit-assets", api_root=gcs_server.endpoint_url)
    async with AssetsManager(storage=store, settings=settings) as am:
        await am.new(source, "models/clf")
        with pytest.raises(PublishConflictError, match=r"version 0\.1 was overwritten"):
            await am.update(source, "models/clf")
    assert "models/clf.publishing" not in await _keys(gcs_store_factory())
