"""The public surface: every exported name exists, is documented, and __all__ stays sorted."""

from __future__ import annotations

import importlib.resources
from typing import TYPE_CHECKING

import pytest

import aiomodelkit
import aiomodelkit.cache
import aiomodelkit.metrics
import aiomodelkit.stores
import aiomodelkit.testing

if TYPE_CHECKING:
    from types import ModuleType

PUBLIC = [
    aiomodelkit,
    aiomodelkit.cache,
    aiomodelkit.metrics,
    aiomodelkit.stores,
    aiomodelkit.testing,
]


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_all_is_sorted_and_importable(module: ModuleType) -> None:
    names = list(module.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_public_classes_and_functions_have_docstrings(module: ModuleType) -> None:
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value) and not name.endswith("Callback"):
            assert value.__doc__, f"{module.__name__}.{name} has no docstring"


# The exact public surface, as literal lists: adding or removing a name is a deliberate change
# made here too (as httpx's tests/test_exported_members.py does).
EXPORTED = {
    "aiomodelkit": [
        "AssetExistsError",
        "AssetMeta",
        "AssetNotFoundError",
        "AssetPublished",
        "AssetResolved",
        "AssetSpec",
        "AssetsManager",
        "BucketNotFoundError",
        "BytesReceived",
        "CacheError",
        "CacheHit",
        "ConfigError",
        "DependencyCycleError",
        "DownloadError",
        "DownloadStarted",
        "Event",
        "EventCallback",
        "FetchFinished",
        "FetchedAsset",
        "FileEntry",
        "IntegrityError",
        "InvalidAssetSpecError",
        "InvalidStoreDataError",
        "InvalidVersionError",
        "LibraryEventCallback",
        "LibraryState",
        "LoadError",
        "LockFile",
        "LockedAsset",
        "MAJOR_MINOR",
        "MajorMinorVersioning",
        "Model",
        "ModelConfiguration",
        "ModelDependencies",
        "ModelEvent",
        "ModelEvicted",
        "ModelFailed",
        "ModelFetchFinished",
        "ModelFetchStarted",
        "ModelGraph",
        "ModelLibrary",
        "ModelLoadFinished",
        "ModelLoadStarted",
        "ModelState",
        "ModelStatus",
        "ModelSwapFailed",
        "ModelSwapped",
        "ModelTypeError",
        "ModelkitError",
        "NotModifiedError",
        "ObjectDownloaded",
        "ObjectUploaded",
        "PreconditionFailedError",
        "PublishConflictError",
        "PublishResult",
        "Retrying",
        "SIMPLE_DATE",
        "Settings",
        "SimpleDateVersioning",
        "StoreError",
        "StorePermissionError",
        "StoreRequest",
        "StoreUnavailableError",
        "UnknownModelError",
        "UnknownStoreError",
        "UnsafeStoreError",
        "VersioningSystem",
        "__version__",
        "get_versioning",
    ],
    "aiomodelkit.metrics": ["Exposition", "Instrumentation", "exposition", "instrument"],
    "aiomodelkit.cache": [
        "CacheScan",
        "CachedVersion",
        "KeptVersion",
        "Leftover",
        "PruneReport",
        "VersionCheck",
        "prune",
        "scan",
        "verify",
    ],
    "aiomodelkit.stores": [
        "AzureStore",
        "DEFAULT_PREFIX",
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
    ],
    "aiomodelkit.testing": [
        "AzuriteServer",
        "CorruptBytes",
        "DelayFirstByte",
        "FakeGCSServer",
        "Fault",
        "FaultProxy",
        "InstrumentedStore",
        "LatencyProxy",
        "LatencyProxyStats",
        "MotoServer",
        "ProxyFault",
        "ProxyRequest",
        "ProxyRule",
        "ReplaceObject",
        "ResetConnection",
        "SeaweedFSServer",
        "ServerError",
        "Stall",
        "ThreadedLatencyProxy",
        "Throttle",
        "Truncate",
        "transient",
    ],
}


@pytest.mark.parametrize("module", PUBLIC, ids=lambda m: m.__name__)
def test_exported_members(module: ModuleType) -> None:
    assert sorted(module.__all__) == EXPORTED[module.__name__]
    assert len(set(module.__all__)) == len(module.__all__)


def test_package_is_typed() -> None:
    files = importlib.resources.files("aiomodelkit")
    assert files.joinpath("py.typed").is_file()


def test_version() -> None:
    assert aiomodelkit.__version__.count(".") == 2
