"""Helpers shared by the S3Store tests."""

from __future__ import annotations

import pickle
import traceback
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiomodelkit.stores import ObjectInfo, S3Store, Store

if TYPE_CHECKING:
    from aiomodelkit import ModelkitError
    from aiomodelkit.testing import MotoServer


StoreFactory = Callable[..., Store]
SECRET = "sEcReT-d0-n0t-l3ak-7f3a9c"


def _moto_store(moto: MotoServer, bucket: str = "bucket", **kwargs: Any) -> S3Store:
    return S3Store(
        bucket,
        kwargs.pop("prefix", "modelkit-assets"),
        endpoint_url=kwargs.pop("endpoint_url", moto.endpoint_url),
        aws_access_key_id="testing",
        aws_secret_access_key=kwargs.pop("secret", "testing"),
        region_name="us-east-1",
        **kwargs,
    )


async def _read(store: Store, key: str, **kwargs: Any) -> bytes:
    async with store.read(key, **kwargs) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def _collect(items: AsyncIterator[ObjectInfo]) -> list[ObjectInfo]:
    return [item async for item in items]


def _assert_no_secret(error: ModelkitError, store: S3Store) -> None:
    texts = [
        str(error),
        repr(error),
        repr(pickle.loads(pickle.dumps(error))),
        "".join(traceback.format_exception(error)),
        repr(store),
        store.url,
    ]
    for text in texts:
        assert SECRET not in text
