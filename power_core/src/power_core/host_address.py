"""The ``host`` setting in the forms Ollama users give ``OLLAMA_HOST``.

``host``, ``host:port``, ``:port``, ``[v6]``, ``[v6]:port``, a bare ``v6`` address, and any
of those after ``http://`` or ``https://`` (with a trailing ``/``). One reading serves
``serve`` (where it listens) and the client commands (where they connect).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: what a host name or IPv4 address may hold (an IPv6 address is checked by ``ipaddress``)
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")

#: said in the error for a value of none of the forms
EXPECTED = "a host like 127.0.0.1, 0.0.0.0:11435, :11435, [::1]:11435 or http://host:port"


@dataclass(frozen=True)
class HostAddress:
    """A parsed ``host`` value; ``None`` for a part it does not give."""

    host: str | None
    port: int | None
    scheme: str | None


def parse_host(text: str) -> HostAddress:
    """Read ``text``; raises ``ValueError`` naming the forms accepted."""
    rest = text.strip()
    scheme = None
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(EXPECTED)
        rest = rest.removesuffix("/")
    host, port_text = _split_port(rest)
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdecimal() and 0 < int(port_text) < 65536):
            raise ValueError(EXPECTED)
        port = int(port_text)
    if host is None and port is None:
        raise ValueError(EXPECTED)
    return HostAddress(host, port, scheme)


def _split_port(text: str) -> tuple[str | None, str | None]:
    """(host, port text) of ``text``, either ``None`` where absent."""
    if text.startswith("["):  # [v6] or [v6]:port
        address, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(EXPECTED)
        return _ipv6(address), after[1:] if after else None
    if text.count(":") > 1:  # a bare IPv6 address carries no port
        return _ipv6(text), None
    host, colon, port = text.partition(":")
    if host and not _HOST_NAME.fullmatch(host):
        raise ValueError(EXPECTED)
    return host or None, port if colon else None


def _ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise ValueError(EXPECTED) from None


def url_host(host: str) -> str:
    """``host`` as a URL writes it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
