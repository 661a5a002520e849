"""Google credentials, checked when a :class:`~aiomodelkit.stores.GCSStore` opens.

gcloud-aio-auth looks for credentials where google-auth does: the file named by
``GOOGLE_APPLICATION_CREDENTIALS``, then gcloud's application-default credentials
(``~/.config/gcloud/application_default_credentials.json``, or under ``CLOUDSDK_CONFIG``),
then the metadata server of Google Compute Engine. Finding no file, it assumes the metadata
server, and its first request asks ``metadata.google.internal`` for a token, five times with
exponential waits: on a machine outside Google Cloud that took 7 s (33 s where DNS answers
slowly) and ended in a DNS error that named no missing credential (issue 13).

So when gcloud-aio found no credentials file, :func:`check_credentials` makes sure a metadata
server can exist before any request: the machine says it is a Compute Engine VM (its DMI
product name, as google-auth checks), or the metadata host resolves (one DNS lookup: Cloud
Run and Cloud Functions answer it, machines elsewhere do not). Otherwise the store fails at
once, with one line naming what is missing and how to provide it. Emulators need no
credentials and are never checked.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from gcloud.aio.auth.token import Token, Type

from aiomodelkit._errors import StorePermissionError

if TYPE_CHECKING:
    from gcloud.aio.storage import Storage

__all__ = ["METADATA_HOST", "NO_CREDENTIALS", "check_credentials"]

#: The metadata server gcloud-aio asks when no ``GCE_METADATA_HOST`` names another one.
METADATA_HOST = "metadata.google.internal"
#: What Compute Engine VMs (and so GKE nodes) report as their DMI product name.
_GCE_PRODUCT = "Google"
_DMI_PRODUCT_NAME = Path("/sys/class/dmi/id/product_name")
#: How long the metadata host may take to resolve: a lookup on Google Cloud is local.
RESOLVE_TIMEOUT = 1.0

NO_CREDENTIALS = (
    "no Google credentials found: no readable GOOGLE_APPLICATION_CREDENTIALS file, no gcloud "
    "application-default credentials (~/.config/gcloud/application_default_credentials.json) "
    f"and no metadata server ({METADATA_HOST} does not resolve); set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run 'gcloud auth "
    "application-default login', or set STORAGE_EMULATOR_HOST to use an emulator"
)


async def check_credentials(storage: Storage, *, store_url: str) -> None:
    """Refuse a client that would have to ask a metadata server that cannot exist.

    Args:
        storage: a gcloud-aio client built for Google's API (not an emulator).
        store_url: the store's URL, for the error.

    Raises:
        StorePermissionError: no credentials file was found and there is no metadata server.
    """
    token = storage.token
    if not isinstance(token, Token) or token.token_type is not Type.GCE_METADATA:
        return  # credentials from a file (or a token the caller made): nothing to guess
    host = urlsplit(token.token_uri).hostname or ""
    if host != METADATA_HOST:
        return  # GCE_METADATA_HOST names a metadata server: its answer will tell
    if await anyio.to_thread.run_sync(_says_compute_engine):
        return
    if await _resolves(host):
        return
    raise StorePermissionError(NO_CREDENTIALS, store_url=store_url)


def _says_compute_engine() -> bool:
    """Whether the machine reports itself as a Compute Engine VM (blocking; Linux only)."""
    try:
        return _DMI_PRODUCT_NAME.read_text().strip().startswith(_GCE_PRODUCT)
    except OSError:
        return False


async def _resolves(host: str) -> bool:
    """Whether ``host`` resolves within :data:`RESOLVE_TIMEOUT` seconds."""
    with anyio.move_on_after(RESOLVE_TIMEOUT):
        try:
            await anyio.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
        except OSError:  # socket.gaierror: no such name
            return False
        return True
    return False
