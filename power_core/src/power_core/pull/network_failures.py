"""Network failures of pulls and pushes, and the short reason a person is told.

requests wraps urllib3, which wraps the socket's error: ``str()`` of the outermost one is a
paragraph (``HTTPSConnectionPool(host=..., port=443): Max retries exceeded with url: ...
(Caused by NameResolutionError(...))``) whose cause comes last. :func:`failure_reason`
walks the chain to that cause instead: ``cannot reach registry.ollama.ai: the host name
could not be resolved``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

#: reasons longer than this (a fallback's message) are cut at a word, with an ellipsis
MAX_REASON = 200


def network_errors() -> tuple[type[BaseException], ...]:
    """What a request, or reading a response body, can raise when the network fails."""
    import requests
    import urllib3.exceptions

    return (
        OSError,
        http.client.HTTPException,
        urllib3.exceptions.HTTPError,
        requests.RequestException,
    )


def failure_reason(exc: BaseException) -> str:
    """Why a request failed, in a few words, with the host when it is known: ``cannot
    reach HOST: connection refused``, ``... timed out``, ``... TLS failed: ...``; a refused
    sign-in in its own words."""
    from power_core.pull.registry_auth import SignInFailed

    if isinstance(exc, SignInFailed):
        return str(exc)
    chain = list(_chain(exc))
    reason = _reason(chain)
    host = _host(chain)
    return f"cannot reach {host}: {reason}" if host else reason


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason`` and the
    exceptions requests passes as arguments."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(e for e in wrapped if isinstance(e, BaseException))


def _reason(chain: list[BaseException]) -> str:
    import urllib3.exceptions

    def found(*kinds: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kinds)), None)

    if found(urllib3.exceptions.NameResolutionError, socket.gaierror):
        return "the host name could not be resolved"
    if found(ConnectionRefusedError):
        return "connection refused"
    tls = found(ssl.SSLError)
    if tls is not None:
        detail = getattr(tls, "verify_message", None) or getattr(tls, "reason", None)
        return f"TLS failed: {detail}" if detail else "TLS failed"
    if found(urllib3.exceptions.ConnectTimeoutError):
        return "timed out connecting"
    if found(urllib3.exceptions.ReadTimeoutError, TimeoutError):
        return "timed out waiting for an answer"
    if found(ConnectionResetError):
        return "the connection was reset"
    if found(http.client.RemoteDisconnected, urllib3.exceptions.ProtocolError):
        return "the connection closed unexpectedly"
    system = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
    if system is not None:
        return str(system.strerror)
    return _shortened(str(chain[-1]) or type(chain[-1]).__name__)


def _host(chain: list[BaseException]) -> str | None:
    """The host the request went to: requests keeps the request, urllib3 the pool."""
    for exc in chain:
        request = getattr(exc, "request", None)
        url = getattr(request, "url", None)
        if isinstance(url, str) and urlsplit(url).hostname:
            return urlsplit(url).hostname
        pool = getattr(exc, "pool", None)
        host = getattr(pool, "host", None)
        if isinstance(host, str) and host:
            return host
    return None


def _shortened(text: str) -> str:
    if len(text) <= MAX_REASON:
        return text
    return text[:MAX_REASON].rsplit(" ", 1)[0] + " …"
