"""aiomodelkit: asyncio-first model assets, stored with modelkit's layout.

Example:
    >>> from aiomodelkit import AssetSpec
    >>> AssetSpec.parse("models/clf:1.2[weights.bin]").version
    '1.2'
"""

from ._errors import AssetExistsError as AssetExistsError
from ._errors import AssetNotFoundError as AssetNotFoundError
from ._errors import BucketNotFoundError as BucketNotFoundError
from ._errors import CacheError as CacheError
from ._errors import ConfigError as ConfigError
from ._errors import DependencyCycleError as DependencyCycleError
from ._errors import DownloadError as DownloadError
from ._errors import IntegrityError as IntegrityError
from ._errors import InvalidAssetSpecError as InvalidAssetSpecError
from ._errors import InvalidStoreDataError as InvalidStoreDataError
from ._errors import InvalidVersionError as InvalidVersionError
from ._errors import LoadError as LoadError
from ._errors import ModelkitError as ModelkitError
from ._errors import ModelTypeError as ModelTypeError
from ._errors import NotModifiedError as NotModifiedError
from ._errors import PreconditionFailedError as PreconditionFailedError
from ._errors import PublishConflictError as PublishConflictError
from ._errors import StoreError as StoreError
from ._errors import StorePermissionError as StorePermissionError
from ._errors import StoreUnavailableError as StoreUnavailableError
from ._errors import UnknownModelError as UnknownModelError
from ._errors import UnknownStoreError as UnknownStoreError
from ._errors import UnsafeStoreError as UnsafeStoreError
from ._events import AssetPublished as AssetPublished
from ._events import AssetResolved as AssetResolved
from ._events import BytesReceived as BytesReceived
from ._events import CacheHit as CacheHit
from ._events import DownloadStarted as DownloadStarted
from ._events import Event as Event
from ._events import EventCallback as EventCallback
from ._events import FetchFinished as FetchFinished
from ._events import ObjectDownloaded as ObjectDownloaded
from ._events import ObjectUploaded as ObjectUploaded
from ._events import Retrying as Retrying
from ._events import StoreRequest as StoreRequest
from ._fetch import FetchedAsset as FetchedAsset
from ._graph import ModelConfiguration as ModelConfiguration
from ._graph import ModelGraph as ModelGraph
from ._layout import AssetMeta as AssetMeta
from ._layout import FileEntry as FileEntry
from ._library import LibraryState as LibraryState
from ._library import ModelLibrary as ModelLibrary
from ._lockfile import LockedAsset as LockedAsset
from ._lockfile import LockFile as LockFile
from ._manager import AssetsManager as AssetsManager
from ._model import Model as Model
from ._model import ModelDependencies as ModelDependencies
from ._publish import PublishResult as PublishResult
from ._settings import Settings as Settings
from ._spec import AssetSpec as AssetSpec
from ._status import LibraryEventCallback as LibraryEventCallback
from ._status import ModelEvent as ModelEvent
from ._status import ModelEvicted as ModelEvicted
from ._status import ModelFailed as ModelFailed
from ._status import ModelFetchFinished as ModelFetchFinished
from ._status import ModelFetchStarted as ModelFetchStarted
from ._status import ModelLoadFinished as ModelLoadFinished
from ._status import ModelLoadStarted as ModelLoadStarted
from ._status import ModelState as ModelState
from ._status import ModelStatus as ModelStatus
from ._status import ModelSwapFailed as ModelSwapFailed
from ._status import ModelSwapped as ModelSwapped
from ._version import __version__ as __version__
from ._versioning import MAJOR_MINOR as MAJOR_MINOR
from ._versioning import SIMPLE_DATE as SIMPLE_DATE
from ._versioning import MajorMinorVersioning as MajorMinorVersioning
from ._versioning import SimpleDateVersioning as SimpleDateVersioning
from ._versioning import VersioningSystem as VersioningSystem
from ._versioning import get_versioning as get_versioning

__all__ = [
    "MAJOR_MINOR",
    "SIMPLE_DATE",
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
]
