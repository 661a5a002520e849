"""Choosing a store by URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aiomodelkit import UnknownStoreError
from aiomodelkit.stores import (
    AzureStore,
    GCSStore,
    LocalStore,
    S3Store,
    StoreURL,
    open_store,
    parse_store_url,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", StoreURL("s3", "bucket", "modelkit-assets")),
        ("s3://bucket/", StoreURL("s3", "bucket", "modelkit-assets")),
        ("s3://bucket/team/a/", StoreURL("s3", "bucket", "team/a")),
        ("gs://bucket/p", StoreURL("gs", "bucket", "p")),
        ("GS://bucket", StoreURL("gs", "bucket", "modelkit-assets")),
        ("az://container", StoreURL("az", "container", "modelkit-assets")),
        ("az://container/team/a", StoreURL("az", "container", "team/a")),
        ("file:///srv/models", StoreURL("file", "/srv/models", "")),
        ("file://localhost/srv/my%20models", StoreURL("file", "/srv/my models", "")),
        ("/srv/models", StoreURL("file", "/srv/models", "")),
    ],
)
def test_parse(url: str, expected: StoreURL) -> None:
    assert parse_store_url(url) == expected


def test_relative_paths_become_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store_url("store").bucket == str(tmp_path / "store")
    assert str(parse_store_url("store")) == (tmp_path / "store").as_uri()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://host/x", "unknown storage scheme 'ftp'"),
        ("hdfs://container", "unknown storage scheme 'hdfs'"),
        ("s3://", "has no bucket"),
        ("s3://bucket/p?x=1", "no query"),
        ("file://remote-host/dir", "must be absolute"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(UnknownStoreError, match=match):
        parse_store_url(url)


def test_credentials_in_url_are_refused_without_echo() -> None:
    with pytest.raises(UnknownStoreError) as info:
        parse_store_url("s3://AKIAEXAMPLE:s3cr3t-value@bucket/prefix")
    assert "s3cr3t-value" not in str(info.value)
    assert "s3cr3t-value" not in repr(info.value)
    assert "AKIAEXAMPLE" not in str(info.value)


def test_open_store_types(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    s3 = open_store("s3://bucket/team")
    gcs = open_store("gs://bucket")
    assert isinstance(s3, S3Store)
    assert s3.url == "s3://bucket/team"
    assert isinstance(gcs, GCSStore)
    assert gcs.url == "gs://bucket/modelkit-assets"
    azure = open_store("az://container/team")
    assert isinstance(azure, AzureStore)
    assert azure.url == "az://container/team"
