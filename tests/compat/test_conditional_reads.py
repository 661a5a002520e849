"""Conditional reads (``if_none_match``), what a version watch sends every interval, on every
server of the matrix.

An unchanged object is always :class:`~aiomodelkit.NotModifiedError`: the server answers
304 with no body, or (``Gap.IGNORES_CONDITIONAL_READS``: pys3local, fake-gcs-server,
gcp-storage-emulator) 200 with the body, which the store closes once the answer's token
shows the object unchanged. A changed object comes with its new token. Where a server
honours the condition, the bytes on the wire (through a :class:`LatencyProxy`) show that
nothing of the body came back.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from aiomodelkit import NotModifiedError
from aiomodelkit.stores import AzureStore, GCSStore, S3Store
from aiomodelkit.stores._base import read_small_object_info
from aiomodelkit.testing import InstrumentedStore, LatencyProxy

from ._backends import BACKENDS, GAPS, MULTIPART_THRESHOLD, Backend, Gap

if TYPE_CHECKING:
    from aiomodelkit.stores import Store

INDEX = "compat/clf.versions"
FIRST = b'{"versions": ["0.0"]}'
SECOND = b'{"versions": ["0.1", "0.0"]}'
#: An object a 304 cannot hide, and the most a 304 (status line and headers) can weigh.
BIG = 1024 * 1024
NO_BODY = 4096


@pytest.mark.parametrize("backend", [pytest.param(n, id=n) for n in BACKENDS], indirect=True)
async def test_unchanged_index_is_not_modified(backend: Backend) -> None:
    store = InstrumentedStore(backend.store())
    async with store:
        await store.put(INDEX, FIRST)
        data, info = await read_small_object_info(store, INDEX)
        assert data == FIRST
        token = info.version_token
        if Gap.NO_GENERATION_HEADER in backend.gaps:
            # The answer does not tell its generation; the object's metadata does.
            assert token is None
            token = (await store.stat(INDEX)).version_token
        assert token is not None
        for _ in range(2):
            with pytest.raises(NotModifiedError) as caught:
                await read_small_object_info(store, INDEX, if_none_match=token)
            assert (caught.value.token, caught.value.key) == (token, INDEX)
        await store.put(INDEX, SECOND)
        data, info = await read_small_object_info(store, INDEX, if_none_match=token)
        assert data == SECOND
        assert info.version_token not in (None, token)
        with pytest.raises(NotModifiedError):
            await read_small_object_info(store, INDEX, if_none_match=info.version_token)
    # One request per conditional read, whatever the server does with the condition.
    assert store.count("read", INDEX) == 5
    assert store.count("conditional_read", INDEX) == 4
    assert store.count("not_modified", INDEX) == 3


def _through(backend: Backend, endpoint_url: str) -> Store:
    """A store on the backend's prefix that talks to ``endpoint_url`` (a proxy) instead."""
    if backend.kind == "s3":
        access_key, secret_key = backend.credentials
        return S3Store(
            backend.bucket,
            backend.prefix,
            options=backend.store_options,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            multipart_part_size=MULTIPART_THRESHOLD,
        )
    if backend.kind == "gcs":
        return GCSStore(
            backend.bucket, backend.prefix, options=backend.store_options, api_root=endpoint_url
        )
    connection_string = backend.env["AZURE_STORAGE_CONNECTION_STRING"]
    return AzureStore(
        backend.bucket,
        backend.prefix,
        options=backend.store_options,
        connection_string=connection_string.replace(backend.endpoint_url, endpoint_url),
    )


_HONOURING = [n for n in BACKENDS if Gap.IGNORES_CONDITIONAL_READS not in GAPS[n]]


@pytest.mark.parametrize("backend", [pytest.param(n, id=n) for n in _HONOURING], indirect=True)
async def test_a_server_that_honours_the_condition_sends_no_body(backend: Backend) -> None:
    parts = urlsplit(backend.endpoint_url)
    assert parts.hostname is not None
    assert parts.port is not None
    async with LatencyProxy((parts.hostname, parts.port), rtt=0) as proxy:
        async with _through(backend, proxy.url) as store:
            await store.put("compat/big.versions", os.urandom(BIG))
            token = (await store.stat("compat/big.versions")).version_token
            assert token is not None
            proxy.reset_stats()
            with pytest.raises(NotModifiedError):
                async with store.read("compat/big.versions", if_none_match=token):
                    pytest.fail("entering the read must raise")
            stats = proxy.stats
    assert stats.requests == {"GET": 1}
    assert stats.bytes_down < NO_BODY, f"{backend.name} sent a body: declare the gap"
