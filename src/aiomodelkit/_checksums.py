"""Checksums: which one verifies a downloaded object, and the hashers that compute them.

Our ``.meta`` records two digests per object (:mod:`._layout`): SHA-256 and XXH3-128.
A fetch verifies XXH3-128, at a twelfth of the cost. Client CPU per GiB hashed in 1 MiB
updates on the 2-core development machine (AMD EPYC with SHA-NI and AVX2), medians of 5:

==========================  ====  =======
checksum                    bits  s / GiB
==========================  ====  =======
XXH3-128 (``xxhash``)       128   0.048
CRC32C (``google-crc32c``)  32    0.085
SHA-256 (OpenSSL, SHA-NI)   256   0.61
MD5 (OpenSSL)               128   1.44
==========================  ====  =======

XXH3-128 is the cheapest and, with 128 bits, a strong check against corruption of
multi-GB files: a random change escapes it with probability 2^-128, where CRC32C's 32 bits
let one in four billion through. It is no cryptographic hash, though: whoever can write
to the store could craft bytes that match it. Without a lock file that changes nothing
(such a writer rewrites the ``.meta`` too, SHA-256 included); under a lock file, which pins
each object's SHA-256 as a claim of identity, SHA-256 is what we verify.

Which checksum verifies one object, first that applies:

1. ``xxh3_128`` from the meta (unless a lock file pins the object's SHA-256);
2. ``sha256`` from the meta (older metas of ours, or under a lock file);
3. ``md5`` from the store, when it is a content hash (modelkit's metas have no checksum:
   S3 single-part ETags, GCS ``md5Hash``, Azure ``Content-MD5``);
4. none: the size alone (``"size"``).

The store's own checksum is not verified on top of the meta's: the meta's digest was taken
by the publisher from the local file, so it covers the upload, the storage and the download
at once, and a second hash would only add CPU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import xxhash

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable
    from pathlib import Path

    from ._layout import FileEntry
    from .stores._base import ObjectInfo

__all__ = [
    "MD5",
    "SHA256",
    "SIZE",
    "XXH3_128",
    "Expected",
    "Hasher",
    "from_meta",
    "from_store",
    "hash_file",
    "new_hasher",
    "summary",
]

XXH3_128 = "xxh3_128"
SHA256 = "sha256"
MD5 = "md5"
#: No checksum anywhere: only the size was checked.
SIZE = "size"
#: How each algorithm is named in messages.
LABELS = {XXH3_128: "XXH3-128", SHA256: "SHA-256", MD5: "MD5", SIZE: "size"}
#: Blocks read per call when hashing a local file (into one reused buffer).
_BLOCK = 1024 * 1024


class Hasher(Protocol):
    """A running digest (hashlib's and xxhash's objects are)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


_FACTORIES: dict[str, Callable[[], Hasher]] = {
    XXH3_128: xxhash.xxh3_128,
    SHA256: hashlib.sha256,
    MD5: lambda: hashlib.md5(usedforsecurity=False),
}


def new_hasher(algorithm: str) -> Hasher:
    """A fresh running digest of ``algorithm`` (``xxh3_128``, ``sha256`` or ``md5``)."""
    return _FACTORIES[algorithm]()


@dataclass(frozen=True, slots=True)
class Expected:
    """The checksum one object must have.

    Attributes:
        algorithm: ``xxh3_128``, ``sha256`` or ``md5``.
        hexdigest: the expected hex digest.
        origin: where it comes from: ``"meta"`` or ``"store"``.
    """

    algorithm: str
    hexdigest: str
    origin: str = "meta"

    def mismatch(self) -> str:
        """The message of an :class:`~aiomodelkit.IntegrityError` for a wrong digest."""
        where = "the meta" if self.origin == "meta" else "the store's"
        return f"{LABELS[self.algorithm]} does not match {where}"


def from_meta(entry: FileEntry, *, pinned: bool = False) -> Expected | None:
    """The meta's checksum that verifies ``entry``, if it records one.

    Args:
        entry: the object, as the meta records it.
        pinned: a lock file pins the version: its SHA-256 wins over the faster XXH3-128.
    """
    if entry.xxh3_128 is not None and not (pinned and entry.sha256 is not None):
        return Expected(XXH3_128, entry.xxh3_128)
    if entry.sha256 is not None:
        return Expected(SHA256, entry.sha256)
    return None


def from_store(info: ObjectInfo) -> Expected | None:
    """The store's checksum of a whole object, when the meta has none (modelkit's metas)."""
    return Expected(MD5, info.md5, "store") if info.md5 is not None else None


def hash_file(path: Path, algorithms: Collection[str]) -> tuple[int, dict[str, str]]:
    """The size of a local file and its digests, in one pass (blocking).

    Returns:
        The bytes read, and a hex digest per algorithm.
    """
    hashers = {algorithm: new_hasher(algorithm) for algorithm in algorithms}
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            for hasher in hashers.values():
                hasher.update(view[:count])
            size += count
    return size, {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def summary(algorithms: Iterable[str]) -> str | None:
    """What verified a set of objects, in one word per kind, strongest claim first.

    Example:
        >>> summary(["md5", "size", "md5"]), summary(["xxh3_128"]), summary([])
        ('md5+size', 'xxh3_128', None)
    """
    used = set(algorithms)
    return "+".join(a for a in (XXH3_128, SHA256, MD5, SIZE) if a in used) or None
