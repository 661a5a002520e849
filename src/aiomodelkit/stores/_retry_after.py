"""The ``Retry-After`` of a "slow down" or "unavailable" answer, as seconds to wait (issue 18).

Every store reads it the same way, where it maps the answer to
:class:`~aiomodelkit.StoreUnavailableError`, so that the retry loop can wait as long as the
server asked. RFC 9110 allows whole delay-seconds (``120``) or an HTTP-date; a fraction
(``0.25``, which some servers and our fault proxy send) is taken as written. A value that is
neither is ignored rather than trusted, and a huge one is capped: a server asking for an hour
should not park a download that long (the retry loop gives up sooner anyway).
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_RETRY_AFTER", "parse_retry_after", "retry_after_of"]

#: The longest wait we accept from a server, in seconds; longer requests are cut to it.
MAX_RETRY_AFTER: Final = 300.0
#: Longer values are not headers anyone meant to send (and 64 digits still make a finite float).
_MAX_LENGTH = 64
_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)  # ASCII: "١٢" is not 12 seconds


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header value asks to wait, at most :data:`MAX_RETRY_AFTER`.

    Args:
        value: the header's value, or None when the answer had none.
        now: the current time, for an HTTP-date (the clock when None).

    Returns:
        The seconds to wait (an HTTP-date in the past gives ``0.0``, never a negative
        wait), or None when ``value`` is absent or neither seconds nor an HTTP-date.

    Example:
        >>> parse_retry_after("2"), parse_retry_after(" 0.25 "), parse_retry_after("86400")
        (2.0, 0.25, 300.0)
        >>> now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now)
        30.0
        >>> parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now)
        0.0
        >>> [parse_retry_after(v) for v in (None, "", "soon", "-5", "nan", "1e3", "2, 3")]
        [None, None, None, None, None, None, None]
    """
    if value is None or len(value) > _MAX_LENGTH:
        return None
    text = value.strip()
    seconds = float(text) if _SECONDS.fullmatch(text) else _seconds_until(text, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def _seconds_until(text: str, now: datetime | None) -> float | None:
    """The seconds from ``now`` to the HTTP-date ``text`` (never negative); None if no date."""
    if not text[:1].isalpha():
        return None  # every HTTP-date form starts with a day name
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # asctime form and "-0000": HTTP-dates are GMT
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """:func:`parse_retry_after` of the ``Retry-After`` in ``headers``, whatever its case.

    Example:
        >>> retry_after_of({"retry-after": "3"}), retry_after_of({"Retry-After": "3"})
        (3.0, 3.0)
        >>> retry_after_of(None), retry_after_of({})
        (None, None)
    """
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        # botocore lower-cases header names; a plain dict is case-sensitive.
        value = headers.get("retry-after")
    return parse_retry_after(value if isinstance(value, str) else None)
