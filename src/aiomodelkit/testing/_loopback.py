"""The one loopback guard of the test servers and proxies: nothing here talks to other hosts.

:class:`~aiomodelkit.testing.FaultProxy` and :class:`~aiomodelkit.testing.LatencyProxy`
forward bytes between sockets; pointed at a real endpoint by mistake, either would carry a
test's traffic (and credentials) off the machine. Both check every address they listen on or
forward to with :func:`ensure_loopback` when they are built.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["ensure_loopback"]


def ensure_loopback(host: str, *, role: str = "address") -> str:
    """Return ``host`` if it is a loopback address or resolves only to loopback addresses.

    ``127.0.0.1`` (any of ``127.0.0.0/8``), ``::1`` and ``localhost`` pass; an address
    literal is checked without a DNS lookup.

    Args:
        host: an IP address or a host name.
        role: what the host is for (``"upstream"``, ``"listen address"``), for the message.

    Raises:
        ValueError: the host is not loopback, or does not resolve.

    Example:
        >>> ensure_loopback("::1")
        '::1'
        >>> ensure_loopback("10.0.0.1", role="upstream")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the upstream '10.0.0.1' is not a loopback address: ...
    """
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ValueError(f"cannot resolve the {role} {host!r}: {exc}") from None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if not addresses or not all(address.is_loopback for address in addresses):
        raise ValueError(
            f"the {role} {host!r} is not a loopback address: "
            "test proxies and servers only talk to this machine"
        )
    return host
