"""Signing in to a registry: the bearer-token challenge of the Docker registry API, answered
as Ollama answers it.

A registry that wants a token answers ``401`` with ``WWW-Authenticate: Bearer
realm="...",service="...",scope="..."``. The client asks the realm for a token (``GET
<realm>?nonce=...&scope=...&service=...&ts=...``) and sends its request again with
``Authorization: Bearer <token>``. Ollama's registry knows users by their Ed25519 keys: the
token request carries ``Authorization: <public key>:<signature>`` over
``GET,<token URL>,<base64 of the hex SHA-256 of the empty body>``
(:class:`power_core.registry_key.RegistryKey`).

The signature goes only to a realm on the host the request went to, as Ollama checks; a
realm elsewhere (Docker Hub's ``auth.docker.io``, for one) is asked for an anonymous token.
Where ``docker login`` keeps a user name and password for the registry
(:mod:`power_core.pull.docker_credentials`), the token request carries them instead (HTTP
Basic, as Docker sends them, over HTTPS or to a registry already spoken to in plain HTTP),
and a registry that challenges with ``Basic`` itself (``registry:2`` with htpasswd) gets
them on every request.
A request is sent again once, and only when its body can be sent again (none, bytes, or a
body with a ``rewind()`` method, as a push's blob upload has: a token that expires during a
long push is renewed); tokens are kept per host for the requests after it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import urllib3.exceptions
from requests.auth import AuthBase
from requests.utils import parse_dict_header

from power_core.pull.docker_credentials import Credentials, credentials_for
from power_core.registry_key import (
    OLLAMA_KEYS_PAGE,
    RegistryKey,
    RegistryKeyError,
    default_key_path,
)

if TYPE_CHECKING:
    from requests.models import PreparedRequest

#: a token answer larger than this is not one
MAX_TOKEN_RESPONSE = 1 << 16
#: the URL a request was first sent to (see RegistryTokenAuth.__call__)
_ORIGIN = "_a3s_power_origin"
_EMPTY_BODY_HASH = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


class SignInFailed(requests.RequestException):
    """The registry's token service refused or could not be asked; the message says why."""


def sign_in_hint(key_path: Path | None = None) -> str:
    """What to do when a registry refuses this machine's key."""
    path = key_path if key_path is not None else default_key_path()
    return (
        f"the registry wants a signed-in key: add the public key in {path}.pub "
        f"(`a3s-power key` prints it) to your account ({OLLAMA_KEYS_PAGE} for ollama.com); "
        "for a registry that takes a user name and password, `docker login` to it "
        "(A3S Power reads Docker's config.json)"
    )


def is_basic_challenge(header: str) -> bool:
    """Whether a ``WWW-Authenticate`` header asks for HTTP Basic authentication."""
    return header.strip().partition(" ")[0].lower() == "basic"


def parse_challenge(header: str) -> dict[str, str] | None:
    """``realm``, ``service`` and ``scope`` of a ``Bearer`` challenge; None for another
    scheme or one without a realm."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    values = {k.lower(): v for k, v in parse_dict_header(params).items() if v is not None}
    return values if values.get("realm") else None


def token_url(challenge: dict[str, str]) -> str:
    """The realm with the service, every scope, the time and a nonce in its query, keys
    sorted (as Go's ``url.Values.Encode`` writes them, so the URL signed is the one sent)."""
    parts = urlsplit(challenge["realm"])
    query = parse_qsl(parts.query, keep_blank_values=True)
    if challenge.get("service"):
        query.append(("service", challenge["service"]))
    query += [("scope", scope) for scope in challenge.get("scope", "").split()]
    query.append(("ts", str(int(time.time()))))
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    query.append(("nonce", nonce))
    query.sort(key=lambda item: item[0])  # stable: a key's values keep their order
    return urlunsplit(parts._replace(query=urlencode(query)))


class RegistryTokenAuth(AuthBase):
    """``requests`` auth for one pull or push: adds the host's token, and on a ``401``
    with a bearer challenge gets one and sends the request again."""

    def __init__(
        self,
        key_path: Path | None = None,
        credentials: Callable[[str], Credentials | None] = credentials_for,
    ) -> None:
        self._key_path = key_path
        self._tokens: dict[str, str] = {}
        #: where a registry's user name and password are looked up (by ``host[:port]``)
        self._lookup = credentials
        self._credentials: dict[str, Credentials | None] = {}
        #: hosts that asked for HTTP Basic authentication: it goes with every request
        self._basic: dict[str, str] = {}

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        host = _host(request.url)
        token = self._tokens.get(host)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        elif host in self._basic:
            request.headers["Authorization"] = self._basic[host]
        # where the caller sent it: a redirect's copy has no such mark, and a host it was
        # sent on to (a blob's storage) never gets a signature
        setattr(request, _ORIGIN, request.url)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        # the request sent again below goes straight to the adapter, which runs no hooks:
        # a request is answered once
        if response.status_code != 401:
            return response
        request = response.request
        header = response.headers.get("WWW-Authenticate", "")
        challenge = parse_challenge(header)
        origin = getattr(request, _ORIGIN, None)
        host = _host(request.url)
        basic = None
        if challenge is None and is_basic_challenge(header) and origin is not None:
            credentials = self._credentials_for(_host(origin))
            basic = credentials.basic_authorization() if credentials else None
        if challenge is None and basic is None:
            return response
        if basic is not None and request.headers.get("Authorization") == basic:
            return response  # these credentials were refused: the caller says so
        rewind = getattr(request.body, "rewind", None)
        if not isinstance(request.body, (bytes, str, type(None))) and rewind is None:
            return response  # a stream already sent: the caller reports the refusal
        _drain(response)  # before asking for a token, which may fail
        if challenge is not None:
            token = self._token(challenge, origin, verify=kwargs.get("verify", True))
            self._tokens[host] = token
            request.headers["Authorization"] = f"Bearer {token}"
        elif basic is not None:
            self._basic[host] = basic
            request.headers["Authorization"] = basic
        if rewind is not None:
            rewind()
        again: requests.Response = response.connection.send(request, **kwargs)
        again.history.append(response)
        return again

    def _token(self, challenge: dict[str, str], origin: str | None, *, verify: Any) -> str:
        # the URL as requests will send it (host in lower case, a path for a bare host):
        # the signature covers exactly that
        url = requests.Request("GET", token_url(challenge)).prepare().url or ""
        headers = {}
        credentials = self._credentials_for(_host(origin)) if origin is not None else None
        if credentials is not None and _may_send_password(url, origin):
            headers["Authorization"] = credentials.basic_authorization()
        elif _may_sign(url, origin):
            credentials = None
            key = self._key()
            headers["Authorization"] = key.sign(f"GET,{url},{_EMPTY_BODY_HASH}".encode())
        else:
            credentials = None
        realm = challenge["realm"]
        try:
            with requests.get(url, headers=headers, timeout=30, verify=verify, stream=True) as got:
                body = got.raw.read(MAX_TOKEN_RESPONSE + 1, decode_content=True)
                status = f"HTTP {got.status_code} {got.reason or ''}".rstrip()
                failed = got.status_code >= 400
        except _READ_FAILURES as exc:
            from power_core.pull.network_failures import failure_reason

            raise SignInFailed(f"cannot get a token from {realm}: {failure_reason(exc)}") from exc
        if failed:
            detail = body[:200].decode("utf-8", "replace").strip()
            refusal = f"{status} ({detail})" if detail else status
            message = f"the registry's token service {realm} refused: {refusal}"
            if credentials is not None:
                raise SignInFailed(
                    f"{message}; it was sent the user name '{credentials.username}' and its "
                    f"password from {credentials.origin}"
                )
            raise SignInFailed(f"{message}; {sign_in_hint(self._key_path)}")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise SignInFailed(f"the registry's token service {realm} answered without a token")
        return token

    def refusal_hint(self, url: str) -> str:
        """What to do about a registry at ``url`` that refused this pull or push: which
        password it refused, when one was sent, else how to sign in."""
        host = _host(url)
        credentials = self._credentials.get(host)
        if credentials is not None and host in self._basic:
            return (
                f"it refused the user name '{credentials.username}' and its password from "
                f"{credentials.origin}"
            )
        return sign_in_hint(self._key_path)

    def _credentials_for(self, host: str) -> Credentials | None:
        """The user name and password kept for ``host``, looked up once per pull or push."""
        if host not in self._credentials:
            self._credentials[host] = self._lookup(host)
        return self._credentials[host]

    def _key(self) -> RegistryKey:
        path = self._key_path or default_key_path()
        try:
            return RegistryKey.load_or_create(path)
        except RegistryKeyError as exc:
            raise SignInFailed(exc.message) from exc
        except OSError as exc:  # a home that cannot be written, a key one cannot read
            reason = exc.strerror or str(exc)
            raise SignInFailed(f"cannot read or make the registry key {path}: {reason}") from exc


def _may_sign(token_url: str, origin: str | None) -> bool:
    """Only for a realm on the host (and port) the caller sent its request to, as Ollama
    checks, and never in plain text unless that request was plain text too."""
    if origin is None:
        return False
    realm, sent = urlsplit(token_url), urlsplit(origin)
    if realm.netloc.lower() != sent.netloc.lower():
        return False
    return realm.scheme == "https" or sent.scheme == "http"


def _may_send_password(token_url: str, origin: str | None) -> bool:
    """Over HTTPS to any realm the registry names (Docker Hub's is another host), as Docker
    sends it; in plain text only to the very host (and port) the registry was reached at
    in plain text."""
    if origin is None:
        return False
    realm, sent = urlsplit(token_url), urlsplit(origin)
    if realm.scheme == "https":
        return True
    return sent.scheme == "http" and realm.netloc.lower() == sent.netloc.lower()


def _drain(response: requests.Response) -> None:
    """Read the refusal's (short) body so that its connection serves the next request."""
    with contextlib.suppress(*_READ_FAILURES):
        response.raw.read(MAX_TOKEN_RESPONSE)
    response.close()


_READ_FAILURES = (OSError, requests.RequestException, urllib3.exceptions.HTTPError)


def _host(url: str | None) -> str:
    return urlsplit(url or "").netloc.lower()
