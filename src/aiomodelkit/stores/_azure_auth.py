"""How :class:`~aiomodelkit.stores.AzureStore` authenticates: credentials as Azure users give them.

Three forms, the first one given wins:

1. **A connection string** (``AccountName=…;AccountKey=…`` or ``…;SharedAccessSignature=…``,
   ``BlobEndpoint=`` for emulators, ``UseDevelopmentStorage=true`` for Azurite's defaults),
   which is what modelkit reads from ``AZURE_STORAGE_CONNECTION_STRING``.
2. **An account URL with a key or a SAS token** (``https://acct.blob.core.windows.net``).
3. **An account URL alone**: Microsoft Entra ID through ``azure-identity``'s
   ``DefaultAzureCredential`` (managed identity, workload identity, ``az login``...), imported
   only then, so the package is optional.

Given no argument, the store reads the same forms from the environment when it opens, the
way botocore reads ``AWS_*``: ``AZURE_STORAGE_CONNECTION_STRING``, else
``AZURE_STORAGE_ACCOUNT`` with ``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN`` (the Azure
CLI's names), else ``AZURE_STORAGE_ACCOUNT`` alone with ``DefaultAzureCredential``.

Secrets never reach a ``repr``, a message or a log: :class:`AzureAccess` hides them, and
:attr:`AzureAccess.secrets` lists what error messages must blank out.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import ipaddress
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiomodelkit._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "AzureAccess",
    "access_from_arguments",
    "access_from_environment",
    "parse_connection_string",
    "resolve_access",
    "with_default_credential",
]

#: Azurite's well-known development account and key (published by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_AZURITE_BLOB_ENDPOINT = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"
_ENV_HINT = (
    "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or "
    "AZURE_STORAGE_SAS_TOKEN (or with azure-identity installed, for DefaultAzureCredential)"
)


@dataclass(frozen=True, slots=True)
class AzureAccess:
    """An account endpoint and one way to authenticate to it.

    Attributes:
        account_url: the blob endpoint, without query (``https://acct.blob.core.windows.net``
            or, path-style, ``http://127.0.0.1:10000/devstoreaccount1``).
        account_name: the account, when known (needed with a key).
        account_key: the shared key (base64), if that is the credential.
        sas_token: a SAS token (without ``?``), if that is the credential.
        token_credential: an async Entra ID credential, if that is the credential.
        owns_credential: whether the store created ``token_credential`` (and closes it).
        wants_default_credential: no credential was given: the store creates
            ``DefaultAzureCredential`` when it opens (see :func:`with_default_credential`).
    """

    account_url: str
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    token_credential: AsyncTokenCredential | None = field(default=None, repr=False)
    owns_credential: bool = field(default=False, repr=False)
    wants_default_credential: bool = field(default=False, repr=False)

    @property
    def kind(self) -> str:
        """``key``, ``sas``, ``token`` or ``anonymous``."""
        if self.account_key:
            return "key"
        if self.sas_token:
            return "sas"
        return "token" if self.token_credential is not None else "anonymous"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings no message may show (short ones would mangle messages, protecting nothing)."""
        found = [self.account_key, self.sas_token]
        if self.sas_token:
            found += [
                part.partition("=")[2] for part in self.sas_token.split("&") if "sig=" in part
            ]
        return tuple(s for s in found if s and len(s) >= 8)

    def sdk_credential(self) -> AzureNamedKeyCredential | AzureSasCredential | Any:
        """The credential object ``azure-storage-blob``'s clients take."""
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

        if self.account_key:
            assert self.account_name is not None  # checked when built
            return AzureNamedKeyCredential(self.account_name, self.account_key)
        if self.sas_token:
            return AzureSasCredential(self.sas_token)
        return self.token_credential


def with_default_credential(access: AzureAccess) -> AzureAccess:
    """``access`` with ``azure-identity``'s ``DefaultAzureCredential``, if it wants one.

    Blocking (the credential chain may look at files when it is built): call it from a
    worker thread.

    Raises:
        ConfigError: azure-identity is not installed.
    """
    if not access.wants_default_credential:
        return access
    try:
        # An optional package: imported by name, so that type checks need not have it.
        identity = importlib.import_module("azure.identity.aio")
    except ImportError as exc:
        raise ConfigError(
            "an Azure account without a key or SAS token authenticates through Microsoft "
            "Entra ID, which needs azure-identity: pip install azure-identity "
            f"(or {_ENV_HINT})"
        ) from exc
    return replace(
        access,
        token_credential=identity.DefaultAzureCredential(),
        owns_credential=True,
        wants_default_credential=False,
    )


def parse_connection_string(text: str) -> AzureAccess:
    """The account and credential an Azure Storage connection string holds.

    Example:
        >>> access = parse_connection_string(
        ...     "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5;"
        ...     "EndpointSuffix=core.windows.net"
        ... )
        >>> access.account_url, access.account_name, access.kind
        ('https://acct.blob.core.windows.net', 'acct', 'key')
        >>> access  # the key stays out of the repr
        AzureAccess(account_url='https://acct.blob.core.windows.net', account_name='acct')
        >>> parse_connection_string("UseDevelopmentStorage=true").account_url
        'http://127.0.0.1:10000/devstoreaccount1'

    Raises:
        ConfigError: the string is malformed or names no blob endpoint (the message never
            repeats the string: it holds a secret).
    """
    fields: dict[str, str] = {}
    for part in text.strip().strip(";").split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or not name:
            raise ConfigError("malformed Azure Storage connection string (expected Name=value;…)")
        fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return AzureAccess(_AZURITE_BLOB_ENDPOINT, AZURITE_ACCOUNT, AZURITE_KEY)
    account = fields.get("accountname") or None
    endpoint = fields.get("blobendpoint")
    if not endpoint:
        if not account:
            raise ConfigError(
                "the Azure Storage connection string has neither BlobEndpoint nor AccountName"
            )
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        endpoint = f"{protocol}://{account}.blob.{suffix}"
    return _checked(
        endpoint,
        account_name=account,
        account_key=fields.get("accountkey") or None,
        sas_token=fields.get("sharedaccesssignature") or None,
    )


def access_from_arguments(
    *,
    connection_string: str | None,
    account_url: str | None,
    account_name: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: AsyncTokenCredential | None,
) -> AzureAccess | None:
    """The access the store's arguments describe; None when none was given (then the
    environment decides, see :func:`access_from_environment`).

    Raises:
        ConfigError: the arguments contradict each other or are incomplete.
    """
    given = [account_url, account_name, account_key, sas_token, credential]
    if connection_string is not None:
        if any(value is not None for value in given):
            raise ConfigError("pass a connection string alone, or an account URL and a credential")
        return parse_connection_string(connection_string)
    if all(value is None for value in given):
        return None
    if sum(value is not None for value in (account_key, sas_token, credential)) > 1:
        raise ConfigError("pass one credential: account_key, sas_token or credential")
    if account_url is None:
        if account_name is None:
            raise ConfigError("an Azure credential needs account_url or account_name")
        account_url = f"https://{account_name}.blob.core.windows.net"
    if account_key is None and sas_token is None and credential is None:
        return _default_credential(account_url, account_name)
    return _checked(
        account_url,
        account_name=account_name,
        account_key=account_key,
        sas_token=sas_token,
        token_credential=credential,
    )


def resolve_access(given: AzureAccess | None) -> AzureAccess:
    """The access a store uses: what it was given, else the environment's (blocking: it may
    read files through azure-identity; call it from a worker thread).

    The provider's credential chain is read when the client opens, as botocore reads
    ``AWS_*``: Settings has no Azure fields, and the SDK itself reads none of these.
    """
    access = given if given is not None else access_from_environment(os.environ)  # noqa: TID251
    return with_default_credential(access)


def access_from_environment(environ: Mapping[str, str]) -> AzureAccess:
    """The access the usual Azure variables of ``environ`` describe.

    Example:
        >>> env = {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=abc"}
        >>> access = access_from_environment(env)
        >>> access.account_url, access.kind
        ('https://acct.blob.core.windows.net', 'sas')

    Raises:
        ConfigError: no usable variable is set.
    """
    connection_string = environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    if connection_string:
        return parse_connection_string(connection_string)
    account = environ.get("AZURE_STORAGE_ACCOUNT", "").strip()
    if not account:
        raise ConfigError(f"az:// stores need Azure credentials: {_ENV_HINT}")
    key = environ.get("AZURE_STORAGE_KEY", "").strip() or None
    sas = environ.get("AZURE_STORAGE_SAS_TOKEN", "").strip() or None
    url = f"https://{account}.blob.core.windows.net"
    if key is None and sas is None:
        return _default_credential(url, account)
    return _checked(
        url,
        account_name=account,
        account_key=key if sas is None else None,
        sas_token=sas if key is None else None,
    )


def _default_credential(account_url: str, account_name: str | None) -> AzureAccess:
    # Created when the store opens (with_default_credential), never here: no I/O yet.
    return replace(_checked(account_url, account_name=account_name), wants_default_credential=True)


def _checked(
    account_url: str,
    *,
    account_name: str | None = None,
    account_key: str | None = None,
    sas_token: str | None = None,
    token_credential: AsyncTokenCredential | None = None,
    owns_credential: bool = False,
) -> AzureAccess:
    parts = urlsplit(account_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the Azure account URL must be http(s)://host[/account]")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("the Azure account URL must not embed credentials (user:password@)")
    if parts.query or parts.fragment:
        # A SAS token belongs in sas_token (or the connection string), never in the URL.
        raise ConfigError("pass the SAS token as sas_token, not in the account URL")
    url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if account_name is None:
        account_name = _account_in_url(parts.hostname, parts.path)
    if account_key is not None:
        if not account_name:
            raise ConfigError("an account key needs the account name")
        try:
            base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            # Caught here, not when the first request is signed (never echo it).
            raise ConfigError("the Azure account key is not valid base64") from None
    return AzureAccess(
        url,
        account_name=account_name,
        account_key=account_key,
        sas_token=sas_token.lstrip("?") if sas_token else None,
        token_credential=token_credential,
        owns_credential=owns_credential,
    )


def _account_in_url(host: str, path: str) -> str | None:
    """``acct`` of ``acct.blob.core.windows.net``, or of ``127.0.0.1:10000/acct`` (path style)."""
    try:
        ipaddress.ip_address(host)
        path_style = True
    except ValueError:
        path_style = host == "localhost"
    if path_style:
        return path.strip("/").partition("/")[0] or None
    return host.partition(".")[0] or None
