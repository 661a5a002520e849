"""Issue 13 friction: ``gs://`` without credentials fails at once, naming what is missing.

No test here contacts a metadata server or a DNS server: the machine facts (its DMI product
name, whether the metadata host resolves) are replaced, and pytest-socket refuses any
connection beyond loopback. HOME is a fresh directory (no gcloud credentials) and the
Google variables are cleared by the autouse fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import anyio
import pytest

from aiomodelkit import StorePermissionError
from aiomodelkit.stores import GCSStore, _gcs_auth, open_store
from aiomodelkit.testing._process import free_port

if TYPE_CHECKING:
    from pathlib import Path


class _Machine:
    """What the store learns about the machine: its DMI product name and the DNS."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.product = tmp_path / "product_name"
        self.resolvable = False
        self.lookups: list[str] = []
        monkeypatch.setattr(_gcs_auth, "_DMI_PRODUCT_NAME", self.product)
        monkeypatch.setattr(_gcs_auth, "_resolves", self._resolves)

    async def _resolves(self, host: str) -> bool:
        self.lookups.append(host)
        return self.resolvable


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Machine:
    """A machine outside Google Cloud (unless a test says otherwise)."""
    found = _Machine(tmp_path, monkeypatch)
    found.product.write_text("Standard PC (Q35 + ICH9, 2009)\n")
    return found


async def test_no_credentials_fail_at_once_with_one_line(machine: _Machine) -> None:
    store = open_store("gs://bucket/team")
    with pytest.raises(StorePermissionError) as info:
        async with store:
            await store.stat("models/clf.versions")
    text = str(info.value)
    assert text.startswith("no Google credentials found:")
    for hint in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "gcloud auth application-default login",
        "STORAGE_EMULATOR_HOST",
        "metadata.google.internal does not resolve",
    ):
        assert hint in text
    assert "\n" not in text
    assert info.value.store_url == "gs://bucket/team"
    assert machine.lookups == [_gcs_auth.METADATA_HOST]


async def test_an_unreadable_credentials_file_is_no_credentials(
    machine: _Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "key.json"
    garbage.write_text("not json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(garbage))
    with pytest.raises(StorePermissionError, match="no readable GOOGLE_APPLICATION_CREDENTIALS"):
        async with GCSStore("bucket"):
            pass


async def test_a_missing_credentials_file_is_named(
    machine: _Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    with pytest.raises(StorePermissionError, match=r"credentials file '.*nope\.json' does not"):
        async with GCSStore("bucket"):
            pass
    assert machine.lookups == []


@pytest.mark.parametrize("where", ["compute-engine", "metadata-resolves"])
async def test_a_machine_with_a_metadata_server_is_trusted(machine: _Machine, where: str) -> None:
    if where == "compute-engine":
        machine.product.write_text("Google Compute Engine\n")
    else:
        machine.product.unlink()  # Cloud Run has no DMI, but its metadata host resolves
        machine.resolvable = True
    async with GCSStore("bucket"):
        pass  # opening makes no request: the token is asked for by the first one
    assert machine.lookups == ([] if where == "compute-engine" else [_gcs_auth.METADATA_HOST])


async def test_gcloud_application_default_credentials_are_used(
    machine: _Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    adc = home / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "c",
                "client_secret": "s",
                "refresh_token": "r",
            }
        )
    )
    monkeypatch.setenv("HOME", str(home))
    async with GCSStore("bucket"):
        pass
    assert machine.lookups == []


async def test_an_emulator_needs_no_credentials(
    machine: _Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    async with open_store("gs://bucket"):
        pass
    async with GCSStore("bucket", api_root=f"http://127.0.0.1:{free_port()}"):
        pass
    assert machine.lookups == []


async def test_resolving_is_bounded_and_failures_are_no(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await _gcs_auth._resolves("localhost")  # /etc/hosts: no DNS server asked

    async def never(*args: object, **kwargs: object) -> None:
        await anyio.sleep_forever()

    async def unknown(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(_gcs_auth, "RESOLVE_TIMEOUT", 0.01)
    for fake in (never, unknown):
        monkeypatch.setattr(anyio, "getaddrinfo", fake)
        assert not await _gcs_auth._resolves(_gcs_auth.METADATA_HOST)
