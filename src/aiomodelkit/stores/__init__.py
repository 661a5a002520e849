"""Object stores: one small async protocol, chosen by URL.

``S3Store`` needs the ``s3`` extra, ``GCSStore`` the ``gcs`` extra and ``AzureStore`` the
``azure`` extra; each is imported on first use, so the package works with none installed.

Example:
    >>> from aiomodelkit.stores import open_store
    >>> store = open_store("file:///srv/models/modelkit-assets")
    >>> type(store).__name__
    'LocalStore'
"""

from typing import TYPE_CHECKING, Any

from ._base import DEFAULT_PREFIX as DEFAULT_PREFIX
from ._base import ObjectInfo as ObjectInfo
from ._base import Store as Store
from ._base import StoreOptions as StoreOptions
from ._local import LocalStore as LocalStore
from ._memory import MemoryStore as MemoryStore
from ._registry import StoreURL as StoreURL
from ._registry import open_store as open_store
from ._registry import parse_store_url as parse_store_url

if TYPE_CHECKING:
    from ._azure import AzureStore as AzureStore
    from ._gcs import GCSStore as GCSStore
    from ._s3 import S3Store as S3Store

__all__ = [
    "DEFAULT_PREFIX",
    "AzureStore",
    "GCSStore",
    "LocalStore",
    "MemoryStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "StoreOptions",
    "StoreURL",
    "open_store",
    "parse_store_url",
]


def __getattr__(name: str) -> Any:
    # Optional extras: importing aiomodelkit.stores must not require aiobotocore, gcloud-aio
    # or azure-storage-blob.
    if name == "AzureStore":
        from ._azure import AzureStore

        return AzureStore
    if name == "S3Store":
        from ._s3 import S3Store

        return S3Store
    if name == "GCSStore":
        from ._gcs import GCSStore

        return GCSStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
