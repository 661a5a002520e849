"""The exception tree of aiomodelkit.

Every error the library raises on purpose derives from :class:`ModelkitError`::

    ModelkitError
    ├── ConfigError                    bad settings or arguments
    │   ├── InvalidAssetSpecError      a spec, name, sub-part or version that does not parse
    │   │   └── InvalidVersionError    a version string the versioning system refuses
    │   ├── UnknownStoreError          a storage URL with no store for its scheme
    │   ├── UnknownModelError          a model key no configuration declares (also a LookupError)
    │   ├── DependencyCycleError       models that depend on each other in a loop
    │   └── ModelTypeError             a model is not of the type asked for (also a TypeError)
    ├── AssetNotFoundError             an asset or a version is absent (also a FileNotFoundError)
    ├── AssetExistsError               publishing over an existing, immutable version
    ├── InvalidStoreDataError          the store holds a malformed index, meta or hostile name
    ├── DownloadError                  a download could not complete
    │   ├── IntegrityError             downloaded bytes do not match their size or checksum
    │   └── CacheError                 the local cache cannot be written (disk full, permissions)
    ├── StoreError                     a store operation failed
    │   ├── StoreUnavailableError      transient: 5xx, throttling, timeouts, resets; retry later
    │   ├── StorePermissionError       403 / access denied (never reported as "not found")
    │   ├── PreconditionFailedError    a conditional write lost a race
    │   ├── NotModifiedError           a conditional read found the object unchanged (no body)
    │   ├── UnsafeStoreError           the store ignores conditional writes: publishing refused
    │   ├── PublishConflictError       another publisher overwrote or holds what we publish
    │   └── BucketNotFoundError        the bucket (or local root) itself does not exist
    └── LoadError                      a model's asset or ``_load`` failed (the cause is chained)

Errors carry their context as keyword-only attributes (``asset``, ``key``, ``store_url``,
``available_versions``, ``model``, ``cycle``, ``token``, ``retry_after``) and build their
message once; the context it does not already state follows in parentheses. Every error pickles.

Something missing is worded one way, "no <thing> in <where>", by the constructors of
:class:`AssetNotFoundError`::

    no asset named 'models/x' in file:///srv/store
    no version 3.1 of 'models/c' in file:///srv/store; available versions: 1.0, 0.0
    no version matching 3 of 'models/c' in file:///srv/store; available versions: 1.0, 0.0
    no file 'w.bin' in version 1.0 of 'models/c' in file:///srv/store
    no object 'models/c/1.0' in file:///srv/store      (a store, which knows keys, not assets)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Self

__all__ = [
    "AssetExistsError", "AssetNotFoundError", "BucketNotFoundError", "CacheError", "ConfigError",
    "DependencyCycleError", "DownloadError", "IntegrityError", "InvalidAssetSpecError",
    "InvalidStoreDataError", "InvalidVersionError", "LoadError", "ModelTypeError", "ModelkitError",
    "NotModifiedError", "PreconditionFailedError", "PublishConflictError", "StoreError",
    "StorePermissionError", "StoreUnavailableError", "UnknownModelError", "UnknownStoreError",
    "UnsafeStoreError",
]  # fmt: skip


class ModelkitError(Exception):
    """Root of every error aiomodelkit raises on purpose.

    Args:
        message: the human-readable explanation.
        asset: the asset name or spec the error concerns, if any.
        key: the store key (object name) the error concerns, if any.
        store_url: the (credential-free) URL of the store, if any.
        model: the model (configuration key) the error concerns, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
    ) -> None:
        self.message = message
        self.asset = asset
        self.key = key
        self.store_url = store_url
        self.model = model
        super().__init__(self._render())

    def _context(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("asset", "key", "store_url", "model")}

    def _shown(self) -> dict[str, Any]:
        """The context printed after the message (everything but long lists)."""
        return {name: getattr(self, name) for name in ("model", "asset", "key", "store_url")}

    def _render(self) -> str:
        shown = self._shown().items()
        where = [f"{k}={v!r}" for k, v in shown if v and not _states(self.message, str(v))]
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def add_context(self, **context: str) -> None:
        """Fill in context that was unknown where the error was raised, and re-render.

        Only attributes still None are set, so the innermost context wins.
        """
        for name, value in context.items():
            if getattr(self, name, None) is None:
                setattr(self, name, value)
        self.args = (self._render(),)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._context()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._render()!r})"


def _rebuild(cls: type[ModelkitError], message: str, context: dict[str, Any]) -> ModelkitError:
    return cls(message, **context)


def _states(message: str, value: str) -> bool:
    """Whether ``message`` names ``value`` as a whole (``'a'`` is not named by ``bad``)."""
    edge = r"[\w./:\-]"
    return re.search(rf"(?<!{edge}){re.escape(value)}(?!{edge})", message) is not None


def _in(store_url: str | None) -> str:
    return f" in {store_url}" if store_url else ""


class ConfigError(ModelkitError):
    """Bad settings, arguments or configuration, detected before any I/O."""


class InvalidAssetSpecError(ConfigError, ValueError):
    """An asset spec, name, sub-part or version that does not parse or could escape a directory."""

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
        spec: str | None = None,
    ) -> None:
        self.spec = spec
        super().__init__(message, asset=asset, key=key, store_url=store_url, model=model)

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "spec": self.spec}

    def _shown(self) -> dict[str, Any]:
        return {"spec": self.spec, **super()._shown()}


class InvalidVersionError(InvalidAssetSpecError):
    """A version string that the versioning system refuses."""


class UnknownStoreError(ConfigError):
    """A storage URL whose scheme has no store, or whose extra is not installed."""


class AssetNotFoundError(ModelkitError, FileNotFoundError):
    """An asset, one of its versions or files, or a store object is absent.

    Build it with :meth:`no_asset`, :meth:`no_version`, :meth:`no_file` or :meth:`no_object`,
    so that every "not found" reads the same way (see the module docstring).

    Attributes:
        available_versions: the versions that do exist, newest first, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
        available_versions: Sequence[str] | None = None,
    ) -> None:
        self.available_versions = (
            tuple(available_versions) if available_versions is not None else None
        )
        super().__init__(message, asset=asset, key=key, store_url=store_url, model=model)

    @classmethod
    def no_asset(cls, name: str, *, store_url: str | None, key: str | None = None) -> Self:
        """The store has no asset ``name`` (no ``.versions`` index; ``key`` is its key)."""
        return cls(
            f"no asset named {name!r}{_in(store_url)}", asset=name, key=key, store_url=store_url
        )

    @classmethod
    def no_version(
        cls,
        name: str,
        version: str | None,
        *,
        store_url: str | None,
        partial: bool = False,
        available: Sequence[str] | None = None,
        key: str | None = None,
    ) -> Self:
        """Asset ``name`` has no ``version`` (None: no version at all; ``partial``: none
        matches it), listing the ``available`` versions when they are known."""
        if version is None:
            what = "no version"
        else:
            what = f"no version matching {version}" if partial else f"no version {version}"
        return cls(
            f"{what}{f' of {name!r}' if name else ''}{_in(store_url)}",
            asset=name,
            key=key,
            store_url=store_url,
            available_versions=available,
        )

    @classmethod
    def no_file(
        cls, name: str, version: str, sub_part: str, *, store_url: str | None = None
    ) -> Self:
        """Version ``version`` of asset ``name`` has no file ``sub_part``."""
        return cls(
            f"no file {sub_part!r} in version {version} of {name!r}{_in(store_url)}",
            asset=name,
            store_url=store_url,
        )

    @classmethod
    def no_object(cls, key: str, *, store_url: str | None, detail: str = "") -> Self:
        """A store has no object ``key`` (``detail``: what the server said, if anything)."""
        text = f"no object {key!r}{_in(store_url)}"
        return cls(f"{text} ({detail})" if detail else text, key=key, store_url=store_url)

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "available_versions": self.available_versions}

    def _shown(self) -> dict[str, Any]:
        # A message that names the asset says what is missing: its store key adds nothing.
        if self.asset and _states(self.message, repr(self.asset)):
            return {**super()._shown(), "key": None}
        return super()._shown()

    def _render(self) -> str:
        text = super()._render()
        if self.available_versions is not None:
            text += f"; available versions: {', '.join(self.available_versions) or 'none'}"
        return text


class AssetExistsError(ModelkitError):
    """Publishing over an existing version: versions are immutable."""


class InvalidStoreDataError(ModelkitError):
    """The store returned malformed or hostile data (bad JSON, unsafe paths, lying sizes)."""


class DownloadError(ModelkitError):
    """A download could not complete."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the size or checksum the store or meta records."""


class CacheError(DownloadError):
    """The local cache cannot be written: disk full, permission denied, read-only filesystem.

    Nothing is published; what was already in the cache is untouched.
    """


class StoreError(ModelkitError):
    """A store operation failed for a reason other than a missing object."""


class StoreUnavailableError(StoreError):
    """A transient failure (5xx, throttling, timeout, connection reset): retrying may succeed.

    ``retry_after``: the seconds the server asked us to wait (``Retry-After``), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, asset=asset, key=key, store_url=store_url, model=model)

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "retry_after": self.retry_after}


class StorePermissionError(StoreError, PermissionError):
    """The store refused access (HTTP 403, bad credentials, or a filesystem permission)."""


class PreconditionFailedError(StoreError):
    """A conditional write found the object created or changed by someone else."""


class NotModifiedError(StoreError):
    """A conditional read (``if_none_match``) found the object still at the caller's token.

    Not a failure and never retried: the caller's copy is current, and no body was sent
    where the store could avoid it. ``token`` is the version token the object still has.
    """

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
        token: str | None = None,
    ) -> None:
        self.token = token
        super().__init__(message, asset=asset, key=key, store_url=store_url, model=model)

    @classmethod
    def since(cls, token: str, *, key: str | None, store_url: str | None) -> Self:
        """The object ``key`` still has version token ``token``."""
        return cls(f"not modified since {token}", key=key, store_url=store_url, token=token)

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "token": self.token}


class UnsafeStoreError(StoreError):
    """The store accepts conditional writes but ignores them, so publishing is refused.

    Some S3- and GCS-compatible servers accept ``If-None-Match`` / ``If-Match`` /
    ``ifGenerationMatch`` and overwrite anyway: two publishers at once could overwrite each
    other's version. ``allow_unsafe_publish`` publishes anyway, with a lease and a read-back.
    """


class PublishConflictError(StoreError):
    """Another publisher holds the asset's publishing lease, or overwrote what we published
    (on a store that ignores conditional writes, under ``allow_unsafe_publish``)."""


class BucketNotFoundError(StoreError):
    """The bucket, or the local store's root directory, does not exist."""


class UnknownModelError(ConfigError, LookupError):
    """A model key that no configuration declares; the message suggests close matches."""


class DependencyCycleError(ConfigError):
    """Models that depend on each other in a loop.

    Attributes:
        cycle: the keys along the loop, first key repeated at the end (``a``, ``b``, ``a``).
    """

    def __init__(
        self,
        message: str,
        *,
        asset: str | None = None,
        key: str | None = None,
        store_url: str | None = None,
        model: str | None = None,
        cycle: Sequence[str] | None = None,
    ) -> None:
        self.cycle = tuple(cycle) if cycle is not None else None
        super().__init__(message, asset=asset, key=key, store_url=store_url, model=model)

    def _context(self) -> dict[str, Any]:
        return {**super()._context(), "cycle": self.cycle}


class ModelTypeError(ConfigError, TypeError):
    """A model (or a dependency) is not an instance of the type the caller asked for."""


class LoadError(ModelkitError):
    """A model could not be made ready: fetching its asset or its ``_load`` failed.

    The original exception is chained as ``__cause__``; ``model`` names the model that
    failed and ``asset`` its asset spec, if any.
    """
