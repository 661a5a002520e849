"""Local disk failures of the cache, mapped once into :class:`CacheError` by meaning.

Store errors are mapped at each store's boundary; what is left of ``OSError`` on the way
through a fetch (a lock file, a staging directory, a write, the publishing rename) is the
cache's disk. A read-only cache is a supported way to run, so its refusal says what it can do.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ._errors import CacheError, ModelkitError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["cache_errors"]

_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def cache_errors(root: Path, asset: str) -> Iterator[None]:
    """Local disk failures (store errors are mapped already) become one CacheError.

    The message names the cache directory; the asset and the failing path are its fields.

    Example:
        >>> from pathlib import Path
        >>> try:
        ...     with cache_errors(Path("/cache"), "models/clf"):
        ...         raise PermissionError(errno.EACCES, "Permission denied", "/cache/.locks")
        ... except CacheError as exc:
        ...     print(exc.key)
        /cache/.locks
    """
    try:
        yield
    except OSError as exc:
        if isinstance(exc, ModelkitError):
            raise  # AssetNotFoundError and StorePermissionError are OSErrors too
        where = exc.filename if isinstance(exc.filename, str) else None
        reason = exc.strerror or type(exc).__name__
        message = f"cannot write to the assets cache {str(root)!r}: {reason}"
        if exc.errno in _READ_ONLY:
            # A pre-populated read-only cache is a supported way to run: say what it can do.
            message += "; a read-only cache serves only the versions it already holds"
        raise CacheError(message, asset=asset, key=where) from exc
