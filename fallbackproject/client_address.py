"""The client's address for django-axes: `X-Forwarded-For` only behind a trusted proxy.

Behind the TLS proxy every request comes from the proxy's address, so a lockout
keyed on REMOTE_ADDR would lock every client out together. When REMOTE_ADDR is
one of DJANGO_TRUSTED_PROXIES (addresses or networks), the client is the
right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
further left were written by the client and prove nothing). From anyone else,
`X-Forwarded-For` is ignored: a client cannot choose its own address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest


@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(
        ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()
    )


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    if not remote or not _trusted(remote):
        return remote
    forwarded = [
        hop.strip()
        for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if hop.strip()
    ]
    for hop in reversed(forwarded):
        if not _trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # garbage where an address should be: do not trust the header
    return remote
