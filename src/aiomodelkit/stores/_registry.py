"""Choose a store by URL: ``file:///dir``, ``s3://bucket[/prefix]``, ``gs://bucket[/prefix]``,
``az://container[/prefix]``.

For ``s3://``, ``gs://`` and ``az://`` the path after the bucket (or Azure container) is the
key prefix, ``modelkit-assets`` when absent (modelkit's default). An ``az://`` URL names no
account: the credentials say which (``AZURE_STORAGE_CONNECTION_STRING``, as for modelkit).
For ``file://`` (or a bare path) the path is the directory that holds the keys, i.e.
modelkit's local bucket and prefix joined:
``MODELKIT_STORAGE_BUCKET=/data`` with the default prefix is ``file:///data/modelkit-assets``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from aiomodelkit._errors import UnknownStoreError

from ._base import DEFAULT_PREFIX, Store, StoreOptions

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["StoreURL", "open_store", "parse_store_url"]


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed storage URL.

    Attributes:
        scheme: ``file``, ``s3``, ``gs`` or ``az``.
        bucket: the bucket (the container for ``az``), or the local directory for ``file``.
        prefix: the key prefix (always empty for ``file``).
    """

    scheme: str
    bucket: str
    prefix: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return Path(self.bucket).as_uri()
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def parse_store_url(url: str | os.PathLike[str]) -> StoreURL:
    """Parse a storage URL or a local path.

    Raises:
        UnknownStoreError: unknown scheme, missing bucket, or credentials in the URL.
    """
    text = os.fspath(url)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and text[1:3] in (":\\", ":/")):
        raw = unquote(parts.path) if scheme == "file" else text
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            raise UnknownStoreError(
                "file URLs must be absolute (file:///dir), not name a host", store_url=text
            )
        if not raw:
            raise UnknownStoreError("a local store needs a directory", store_url=text)
        return StoreURL("file", str(Path(raw).expanduser().absolute()), "")
    if scheme not in _FACTORIES:
        raise UnknownStoreError(
            f"unknown storage scheme {scheme!r}; use file://, s3://, gs:// or az://",
            store_url=f"{scheme}://…",
        )
    if parts.username is not None or parts.password is not None:
        # Never echo the URL: it holds a secret.
        raise UnknownStoreError(
            "credentials must not be embedded in the storage URL; use the provider's "
            "credential chain",
            store_url=f"{scheme}://{parts.hostname or ''}",
        )
    bucket = parts.netloc
    if not bucket:
        raise UnknownStoreError(f"{scheme}:// URL has no bucket", store_url=text)
    prefix = unquote(parts.path).strip("/")
    if parts.query or parts.fragment:
        raise UnknownStoreError("storage URLs take no query or fragment", store_url=text)
    return StoreURL(scheme, bucket, prefix or DEFAULT_PREFIX)


def _open_file(url: StoreURL, options: StoreOptions) -> Store:
    from ._local import LocalStore

    return LocalStore(url.bucket, options=options)


def _open_s3(url: StoreURL, options: StoreOptions) -> Store:
    try:
        from ._s3 import S3Store
    except ImportError as exc:  # pragma: no cover - CI installs every extra
        raise UnknownStoreError(
            f"s3:// needs the s3 extra: pip install 'aiomodelkit[s3]' ({exc})", store_url=str(url)
        ) from exc
    return S3Store(url.bucket, url.prefix, options=options)


def _open_gs(url: StoreURL, options: StoreOptions) -> Store:
    try:
        from ._gcs import GCSStore
    except ImportError as exc:  # pragma: no cover - CI installs every extra
        raise UnknownStoreError(
            f"gs:// needs the gcs extra: pip install 'aiomodelkit[gcs]' ({exc})",
            store_url=str(url),
        ) from exc
    return GCSStore(url.bucket, url.prefix, options=options)


def _open_az(url: StoreURL, options: StoreOptions) -> Store:
    try:
        from ._azure import AzureStore
    except ImportError as exc:  # pragma: no cover - CI installs every extra
        raise UnknownStoreError(
            f"az:// needs the azure extra: pip install 'aiomodelkit[azure]' ({exc})",
            store_url=str(url),
        ) from exc
    return AzureStore(url.bucket, url.prefix, options=options)


_FACTORIES: dict[str, Callable[[StoreURL, StoreOptions], Store]] = {
    "file": _open_file,
    "s3": _open_s3,
    "gs": _open_gs,
    "az": _open_az,
}


def open_store(url: str | os.PathLike[str], *, options: StoreOptions | None = None) -> Store:
    """Create (but do not open) the store a URL names.

    Example:
        >>> store = open_store("s3://my-bucket/team-a")
        >>> store.url
        's3://my-bucket/team-a'

    Use it as ``async with open_store(url) as store: ...``.

    Raises:
        UnknownStoreError: the URL names no known store, or its extra is not installed.
    """
    parsed = parse_store_url(url)
    return _FACTORIES[parsed.scheme](parsed, options or StoreOptions())
