"""Azure-specific behaviour of AzureStore against Azurite (the shared contract is elsewhere).

Azurite checks every signature, so the credential forms are proven for real: a connection
string, an account URL with the key, an account URL with a SAS token. Failures Azurite cannot
produce (503 ``ServerBusy``, a stalled body) come from a canned HTTP server on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import pickle
import traceback
import tracemalloc
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute
from azure.storage.blob import generate_container_sas
from azure.storage.blob.aio import BlobServiceClient

from aiomodelkit import (
    AssetNotFoundError,
    BucketNotFoundError,
    ConfigError,
    ModelkitError,
    PreconditionFailedError,
    StoreError,
    StorePermissionError,
    StoreUnavailableError,
)
from aiomodelkit.stores import AzureStore, Store, StoreOptions, open_store
from aiomodelkit.stores._azure_auth import (
    AZURITE_KEY,
    access_from_environment,
    parse_connection_string,
)
from aiomodelkit.stores._base import MiB

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from anyio.abc import SocketStream

    from aiomodelkit.testing import AzuriteServer

DATA = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable


async def read_all(store: Store, key: str, **kwargs: int | str | None) -> bytes:
    async with store.read(key, **kwargs) as chunks:  # type: ignore[arg-type]
        return b"".join([chunk async for chunk in chunks])


def new_container(azurite: AzuriteServer) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    azurite.create_container(name)
    return name


def key_store(azurite: AzuriteServer, container: str, **kwargs: object) -> AzureStore:
    return AzureStore(
        container,
        account_url=azurite.account_url,
        account_key=azurite.account_key,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_no_secret(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


def error_texts(error: ModelkitError) -> list[str]:
    return [
        str(error),
        repr(error),
        repr(pickle.loads(pickle.dumps(error))),
        "".join(traceback.format_exception(error)),
    ]


# -- credentials -----------------------------------------------------------------------------


async def test_account_url_and_key(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    async with key_store(azurite_server, container, prefix="team") as store:
        written = await store.put("models/clf/1.0", DATA)
        assert await read_all(store, "models/clf/1.0") == DATA
        assert [info.key async for info in store.list_objects()] == ["models/clf/1.0"]
    assert written.md5 == hashlib.md5(DATA).hexdigest()  # the service records it
    assert repr(store) == f"AzureStore('{container}', 'team', account='devstoreaccount1')"


async def test_account_url_and_sas_token(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    sas = generate_container_sas(
        azurite_server.account,
        container,
        account_key=azurite_server.account_key,
        permission="racwdl",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    store = AzureStore(container, account_url=azurite_server.account_url, sas_token="?" + sas)
    async with store:
        info = await store.put("k", DATA, if_absent=True)
        assert await read_all(store, "k", offset=5, length=10, if_match=info.etag) == DATA[5:15]
        assert [i.key async for i in store.list_objects()] == ["k"]
        await store.delete("k")
    signature = sas.partition("sig=")[2].partition("&")[0]
    assert signature not in repr(store)


async def test_a_read_only_sas_cannot_write(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    sas = generate_container_sas(
        azurite_server.account,
        container,
        account_key=azurite_server.account_key,
        permission="rl",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    store = AzureStore(container, account_url=azurite_server.account_url, sas_token=sas)
    async with store:
        with pytest.raises(StorePermissionError) as info:
            await store.put("k", b"x")
    assert_no_secret(error_texts(info.value), sas, azurite_server.account_key)


async def test_connection_string_from_the_environment(
    azurite_server: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What modelkit reads, and what the registry's az:// store falls back to.
    container = new_container(azurite_server)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    async with open_store(f"az://{container}/team-a") as store:
        await store.put("x", b"1")
        assert await read_all(store, "x") == b"1"
    assert store.url == f"az://{container}/team-a"


async def test_no_credentials_anywhere_is_a_config_error() -> None:
    store = AzureStore("container")
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        async with store:
            pass


@pytest.mark.skipif(
    importlib.util.find_spec("azure.identity") is not None, reason="azure-identity is installed"
)
async def test_an_account_alone_needs_azure_identity() -> None:
    store = AzureStore("container", account_url="https://acct.blob.core.windows.net")
    with pytest.raises(ConfigError, match="pip install azure-identity"):
        async with store:
            pass


def test_environment_forms() -> None:
    key = access_from_environment({"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_KEY": "a2V5"})
    assert (key.account_url, key.account_name, key.kind) == (
        "https://acct.blob.core.windows.net",
        "acct",
        "key",
    )
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCOUNT"):
        access_from_environment({})
    dev = access_from_environment({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert (dev.account_name, dev.account_key) == ("devstoreaccount1", AZURITE_KEY)


@pytest.mark.parametrize(
    ("text", "url", "kind"),
    [
        (
            "AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn",
            "https://acct.blob.core.chinacloudapi.cn",
            "key",
        ),
        (
            "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=x",
            "https://acct.blob.core.windows.net",
            "sas",
        ),
        (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            "http://127.0.0.1:10000/devstoreaccount1",
            "key",
        ),
    ],
)
def test_connection_strings(text: str, url: str, kind: str) -> None:
    access = parse_connection_string(text)
    assert (access.account_url, access.kind) == (url, kind)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"connection_string": "AccountName=a;AccountKey=k", "account_key": "k"}, "alone"),
        ({"account_url": "https://a.blob.core.windows.net", "account_key": "k", "sas_token": "s"},
         "one credential"),
        ({"account_url": "https://a.blob.core.windows.net?sv=1&sig=SECRETSIG"}, "sas_token"),
        ({"account_url": "https://u:SECRETSIG@a.blob.core.windows.net", "sas_token": "x"},
         "embed credentials"),
        ({"connection_string": "AccountKey=SECRETSIG"}, "neither BlobEndpoint"),
        ({"connection_string": "garbage SECRETSIG"}, "malformed"),
        ({"account_name": "acct", "account_key": "SECRETSIG!"}, "not valid base64"),
    ],
)  # fmt: skip
def test_bad_credential_arguments(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        AzureStore("container", **kwargs)  # type: ignore[arg-type]
    assert "SECRETSIG" not in str(info.value)


# -- secrets and errors -----------------------------------------------------------------------


async def test_a_wrong_key_is_a_permission_error_that_never_shows_it(
    azurite_server: AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = new_container(azurite_server)
    wrong = base64.b64encode(os.urandom(32)).decode()
    store = AzureStore(container, account_url=azurite_server.account_url, account_key=wrong)
    async with store:
        with pytest.raises(StorePermissionError) as stat_info:
            await store.stat("k")
        with pytest.raises(StorePermissionError) as read_info:
            await read_all(store, "k")  # our own GET, with a SAS we signed
        with pytest.raises(StorePermissionError):
            await store.put("k", b"x")
    for error in (stat_info.value, read_info.value):
        assert_no_secret([*error_texts(error), repr(store), caplog.text], wrong)
    assert "AuthorizationFailure" in str(read_info.value) or "403" in str(read_info.value)


async def test_logs_never_show_a_sas_signature(
    azurite_server: AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = new_container(azurite_server)
    async with key_store(azurite_server, container) as store:
        await store.put("k", DATA)
        assert await read_all(store, "k", offset=3, length=4) == DATA[3:7]
        with pytest.raises(AssetNotFoundError) as info:
            await read_all(store, "missing")
        assert store._clients is not None
        signed = [s for s in store._clients.reader.secrets if s != azurite_server.account_key]
    assert signed  # the read SAS signature we made, and must keep out of sight
    assert_no_secret([caplog.text, *error_texts(info.value)], azurite_server.account_key, *signed)


async def test_missing_blob_and_container(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    async with key_store(azurite_server, container) as store:
        with pytest.raises(AssetNotFoundError) as stat_info:
            await store.stat("nope")
        with pytest.raises(AssetNotFoundError):
            await read_all(store, "nope", offset=10, length=5)
        await store.delete("nope")  # not an error
    async with key_store(azurite_server, "no-such-container") as store:
        for call in (
            store.stat("k"),
            read_all(store, "k"),
            store.put("k", b"x"),
            store.delete("k"),
        ):
            with pytest.raises(BucketNotFoundError):
                await call
        with pytest.raises(BucketNotFoundError):
            _ = [i async for i in store.list_objects()]
    assert stat_info.value.key == "nope"
    assert not isinstance(stat_info.value, BucketNotFoundError)


async def test_unreachable_endpoint_is_unavailable() -> None:
    store = AzureStore(
        "container", account_url="http://127.0.0.1:9/devstoreaccount1", account_key=AZURITE_KEY
    )
    async with store:
        with pytest.raises(StoreUnavailableError):
            await store.stat("k")
        with pytest.raises(StoreUnavailableError):
            await read_all(store, "k")


def _answer(status: str, body: bytes = b"", *, length: int | None = None, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body) if length is None else length}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join([*lines, "", ""]).encode() + body


@asynccontextmanager
async def canned_server(answer: bytes, *, stall: bool = False) -> AsyncIterator[str]:
    """An HTTP server on loopback answering every request with ``answer``; yields its URL."""

    head = answer.partition(b"\r\n\r\n")[0]

    async def handle(client: SocketStream) -> None:
        async with client:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await client.receive()
            # A HEAD answer has no body (get_blob_properties is a HEAD).
            await client.send(head + b"\r\n\r\n" if received.startswith(b"HEAD") else answer)
            if stall:
                await anyio.sleep_forever()

    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, handle)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}/devstoreaccount1"
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        ("503 Service Unavailable", "ServerBusy", StoreUnavailableError),
        ("500 Internal Server Error", "InternalError", StoreUnavailableError),
        ("403 Forbidden", "AuthorizationPermissionMismatch", StorePermissionError),
        ("404 Not Found", "ContainerNotFound", BucketNotFoundError),
        ("412 Precondition Failed", "LeaseIdMissing", StoreError),
        ("400 Bad Request", "InvalidHeaderValue", StoreError),
    ],
)
async def test_error_answers_are_mapped_on_both_paths(
    status: str, code: str, error: type[StoreError]
) -> None:
    body = (
        f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>told by the server\n"
        "RequestId:1</Message></Error>"
    ).encode()
    answer = _answer(status, body, x_ms_error_code=code, Content_Type="application/xml")
    async with canned_server(answer) as url:
        store = AzureStore("c", account_url=url, account_key=AZURITE_KEY)
        async with store:
            with pytest.raises(StoreError) as stat_info:
                await store.stat("k")  # through the SDK
            with pytest.raises(StoreError) as read_info:
                await read_all(store, "k")  # through our GET
    for info in (stat_info, read_info):
        assert type(info.value) is error, info.value
        assert code in str(info.value)
        assert "RequestId" not in str(info.value)  # the first line only
        assert "http" not in str(info.value)


async def test_a_stalled_body_times_out_as_unavailable() -> None:
    answer = _answer("200 OK", b"x" * 10, length=1000, ETag='"0x1"')
    async with canned_server(answer, stall=True) as url:
        options = StoreOptions(read_timeout=0.2)
        async with AzureStore("c", account_url=url, account_key=AZURITE_KEY, options=options) as s:
            with pytest.raises(StoreUnavailableError, match=r"[Tt]imeout"), anyio.fail_after(5):
                await read_all(s, "k")


# -- reads -----------------------------------------------------------------------------------


async def test_ranged_reads_are_pinned_by_etag(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    options = StoreOptions(chunk_size=64 * 1024)
    data = os.urandom(300_000)
    async with key_store(azurite_server, container, options=options) as store:
        first = await store.put("w.bin", data)
        token = first.version_token
        assert token is not None
        parts = []
        for offset in range(0, len(data), 100_000):
            async with store.read("w.bin", offset=offset, length=100_000, if_match=token) as s:
                sizes = []
                async for chunk in s:
                    sizes.append(len(chunk))
                    parts.append(chunk)
                assert s.info.size == len(data)  # the whole blob, even for a range
                assert s.info.version_token == token
            assert max(sizes) <= 64 * 1024
        assert b"".join(parts) == data
        # Quoted or not, the token pins the read.
        assert (
            await read_all(store, "w.bin", offset=1, length=2, if_match=f'"{token}"') == data[1:3]
        )
        await store.put("w.bin", b"replaced")
        with pytest.raises(PreconditionFailedError):
            await read_all(store, "w.bin", offset=100_000, length=10, if_match=token)
        with pytest.raises(PreconditionFailedError):
            await read_all(store, "w.bin", offset=8, if_match=token)  # at the end: a stat
        with pytest.raises(PreconditionFailedError):
            await read_all(store, "w.bin", length=0, if_match=token)


async def test_reads_report_the_stored_md5(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    async with key_store(azurite_server, container) as store:
        await store.put("k", DATA)
        async with store.read("k") as whole, store.read("k", offset=10, length=10) as part:
            infos = [whole.info, part.info]
        listed = [info async for info in store.list_objects()]
    for info in [*infos, *listed]:
        assert info.md5 == hashlib.md5(DATA).hexdigest()
        assert info.size == len(DATA)


# -- uploads ---------------------------------------------------------------------------------


async def test_block_upload_of_a_large_file_in_bounded_memory(
    azurite_server: AzuriteServer, tmp_path: Path
) -> None:
    container = new_container(azurite_server)
    source = tmp_path / "weights.bin"
    data = os.urandom(24 * MiB + 123)
    source.write_bytes(data)
    store = key_store(azurite_server, container, block_threshold=MiB, block_size=MiB)
    async with store:
        tracemalloc.start()
        try:
            written = await store.put("models/big/0.0", source, if_absent=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        stat = await store.stat("models/big/0.0")
        digest = hashlib.sha256()
        async with store.read("models/big/0.0") as stream:
            async for chunk in stream:
                digest.update(chunk)
            read_md5 = stream.info.md5
        with pytest.raises(PreconditionFailedError):
            await store.put("models/big/0.0", data, if_absent=True)  # bytes take blocks too
        with pytest.raises(PreconditionFailedError):
            await store.put("models/big/0.0", data, if_match="0x8D0000000000000")
        replaced = await store.put("models/big/0.0", data[: 3 * MiB], if_match=written.etag)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert written.size == len(data)
    # Put Block List records no MD5 of the blob; a digest, if reported, must be the blob's.
    assert written.md5 is None
    assert stat.md5 in (None, hashlib.md5(data).hexdigest())
    assert read_md5 in (None, hashlib.md5(data).hexdigest())
    assert (stat.size, stat.etag) == (written.size, written.etag)
    assert replaced.etag != written.etag
    # Four 1 MiB blocks in flight at most, plus copies in transit: far below the 24 MiB file.
    assert peak < 10 * MiB, peak
    async with BlobServiceClient.from_connection_string(azurite_server.connection_string) as sdk:
        blob = sdk.get_blob_client(container, "modelkit-assets/models/big/0.0")
        committed, _ = await blob.get_block_list()
    assert len(committed) == 3


async def test_if_match_on_a_missing_blob_fails_the_condition(
    azurite_server: AzuriteServer,
) -> None:
    container = new_container(azurite_server)
    async with key_store(azurite_server, container) as store:
        first = await store.put("k", b"1")
        await store.delete("k")
        with pytest.raises(PreconditionFailedError):
            await store.put("k", b"2", if_match=first.etag)
        with pytest.raises(ValueError, match="not both"):
            await store.put("k", b"2", if_absent=True, if_match=first.etag)


async def test_a_cancelled_block_upload_leaves_no_partial_blob(
    azurite_server: AzuriteServer,
) -> None:
    container = new_container(azurite_server)
    store = key_store(azurite_server, container, block_threshold=MiB, block_size=MiB)
    async with store:
        with anyio.move_on_after(0.02):
            await store.put("big", os.urandom(32 * MiB))
        with anyio.move_on_after(5):
            # Committed only if the upload finished before the deadline: then it is whole.
            try:
                info = await store.stat("big")
            except AssetNotFoundError:
                return
        assert info.size == 32 * MiB


async def test_listing_stays_inside_the_prefix(azurite_server: AzuriteServer) -> None:
    container = new_container(azurite_server)
    async with (
        key_store(azurite_server, container, prefix="team") as team,
        key_store(azurite_server, container, prefix="team-b") as team_b,
        key_store(azurite_server, container, prefix="") as root,
    ):
        await team.put("a/0.0", b"1")
        await team_b.put("a/0.0", b"2")
        assert [i.key async for i in team.list_objects()] == ["a/0.0"]
        assert [i.key async for i in root.list_objects()] == ["team-b/a/0.0", "team/a/0.0"]
        assert root.url == f"az://{container}"


async def test_lifecycle_and_arguments() -> None:
    store = AzureStore("c", connection_string="UseDevelopmentStorage=true")
    with pytest.raises(RuntimeError, match="not open"):
        await store.stat("k")
    async with store:
        with pytest.raises(ValueError, match="empty"):
            await store.stat("/")
        with pytest.raises(ValueError, match="negative"):
            await read_all(store, "k", offset=-1)
    await store.aclose()
    with pytest.raises(ValueError, match="container"):
        AzureStore("a/b")
