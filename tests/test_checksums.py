"""Which checksum verifies an object, the hashers, and one pass over a file for several."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from aiomodelkit import FileEntry
from aiomodelkit._checksums import (
    MD5,
    SHA256,
    XXH3_128,
    Expected,
    from_meta,
    from_store,
    hash_file,
    new_hasher,
    summary,
)
from aiomodelkit.stores import ObjectInfo

if TYPE_CHECKING:
    from pathlib import Path

SHA, XXH, MD = "a" * 64, "b" * 32, "c" * 32


def test_the_meta_s_xxh3_128_first_then_its_sha256() -> None:
    assert from_meta(FileEntry("", 1, SHA, XXH)) == Expected(XXH3_128, XXH)
    assert from_meta(FileEntry("", 1, None, XXH)) == Expected(XXH3_128, XXH)
    assert from_meta(FileEntry("", 1, SHA)) == Expected(SHA256, SHA)  # an older meta of ours
    assert from_meta(FileEntry("", 1)) is None  # modelkit's


def test_a_lock_file_pins_sha256() -> None:
    assert from_meta(FileEntry("", 1, SHA, XXH), pinned=True) == Expected(SHA256, SHA)
    # Nothing cryptographic to pin: the fast checksum is still better than none.
    assert from_meta(FileEntry("", 1, None, XXH), pinned=True) == Expected(XXH3_128, XXH)


def test_the_store_s_md5_only_when_it_is_a_content_hash() -> None:
    assert from_store(ObjectInfo("k", 1, etag="e", md5=MD)) == Expected(MD5, MD, "store")
    assert from_store(ObjectInfo("k", 1, etag="e-2")) is None
    assert Expected(MD5, MD, "store").mismatch() == "MD5 does not match the store's"
    assert Expected(XXH3_128, XXH).mismatch() == "XXH3-128 does not match the meta"


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**40))
def test_never_fewer_objects_verified_than_with_sha256_alone(
    has_sha: bool, has_xxh: bool, has_md5: bool, pinned: bool, size: int
) -> None:
    entry = FileEntry("", size, SHA if has_sha else None, XXH if has_xxh else None)
    info = ObjectInfo("k", size, md5=MD if has_md5 else None)
    chosen = from_meta(entry, pinned=pinned) or from_store(info)
    # Before issue 17: the meta's SHA-256, else the store's MD5.
    before = SHA256 if has_sha else MD5 if has_md5 else None
    if before is not None:
        assert chosen is not None  # whatever was verified still is
    if has_sha or has_xxh:
        assert chosen is not None
        assert chosen.origin == "meta"  # never traded for the store's
    if pinned and has_sha:
        assert chosen == Expected(SHA256, SHA)


def test_hashers_match_the_reference_implementations() -> None:
    data = os.urandom(3000)
    for algorithm, reference in (
        (XXH3_128, xxhash.xxh3_128(data).hexdigest()),
        (SHA256, hashlib.sha256(data).hexdigest()),
        (MD5, hashlib.md5(data, usedforsecurity=False).hexdigest()),
    ):
        hasher = new_hasher(algorithm)
        hasher.update(data[:1000])
        hasher.update(memoryview(data)[1000:])
        assert hasher.hexdigest() == reference
    # The canonical (big-endian) XXH128 of nothing, as xxh128sum prints it.
    assert new_hasher(XXH3_128).hexdigest() == "99aa06d3014798d86001c324468d497f"
    with pytest.raises(KeyError):
        new_hasher("crc32")


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 2 * 1024 * 1024 + 17])
def test_hash_file_reads_once_for_every_algorithm(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(path, (SHA256, XXH3_128)) == (
        size,
        {SHA256: hashlib.sha256(data).hexdigest(), XXH3_128: xxhash.xxh3_128(data).hexdigest()},
    )
    assert hash_file(path, ()) == (size, {})


def test_summary_names_each_kind_once_strongest_claim_first() -> None:
    assert summary([XXH3_128] * 3) == "xxh3_128"
    assert summary(["size", MD5, SHA256, XXH3_128]) == "xxh3_128+sha256+md5+size"
    assert summary(()) is None
