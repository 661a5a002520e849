"""Our SigV4 GET signer gives exactly the headers botocore's signer gives (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore import auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from aiomodelkit.stores._sigv4 import sign_get

NOW = datetime(2026, 11, 25, 13, 7, 42, tzinfo=UTC)


def _botocore(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    headers: dict[str, str],
    token: str | None,
    region: str,
) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url, headers=dict(headers))
    credentials = Credentials("AKIDEXAMPLE", "wJalr/K7MDENG+bPxRfi", token)
    monkeypatch.setattr(auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    auth.S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize(
    ("origin", "host", "path", "headers", "token", "region"),
    [
        ("http://127.0.0.1:8333", "127.0.0.1:8333", "/bucket/a/b.bin", {}, None, "us-east-1"),
        (
            "https://models.s3.eu-west-3.amazonaws.com",
            "models.s3.eu-west-3.amazonaws.com",
            "/team/sp%20ace/x%2By%3Dz%26q%3F.bin",
            {"Range": "bytes=8388608-16777215", "If-Match": '"9b2cf535f27731c974343645a3985328"'},
            "FQoGZXIvYXdzE//session+token==",
            "eu-west-3",
        ),
        (
            "http://[::1]:9000",
            "[::1]:9000",
            "/b/%C3%BCn%C3%AF/%E2%98%83.txt",
            {"Range": "bytes=0-"},
            None,
            "us-west-2",
        ),
    ],
)
def test_the_signature_is_botocore_s(
    monkeypatch: pytest.MonkeyPatch,
    origin: str,
    host: str,
    path: str,
    headers: dict[str, str],
    token: str | None,
    region: str,
) -> None:
    ours = sign_get(
        host=host,
        path=path,
        headers=headers,
        access_key="AKIDEXAMPLE",
        secret_key="wJalr/K7MDENG+bPxRfi",
        token=token,
        region=region,
        service="s3",
        now=NOW,
    )
    theirs = _botocore(monkeypatch, origin + path, headers, token, region)
    assert {name.lower(): value for name, value in ours.items() if name != "Host"} == theirs
    assert ours["Host"] == host


def test_the_signing_key_depends_on_the_day() -> None:
    def signature(now: datetime) -> str:
        return sign_get(
            host="h", path="/k", headers={}, access_key="AK", secret_key="SK", token=None,
            region="us-east-1", service="s3", now=now,
        )["Authorization"]  # fmt: skip

    assert signature(NOW) == signature(NOW)
    assert signature(NOW) != signature(NOW.replace(day=26))
