"""Talking to a running A3S Power server from the CLI (``ps``, ``stop``, ``rm``, ``run``),
with ``requests``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from power_core.config import Settings
from power_core.errors import PowerError
from power_core.host_address import url_host

if TYPE_CHECKING:
    import requests


class ServerNotRunning(PowerError):
    """No server answers at the configured address."""


class ServerRefused(PowerError):
    """The server answered with an error; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def server_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    return f"{settings.scheme}://{url_host(host)}:{settings.port}"


def call_server(
    settings: Settings,
    method: str,
    path: str,
    payload: Any = None,
    *,
    wait: float | None = 30.0,
) -> Any:
    """Send one request to the local server and return its JSON answer, waiting at most
    ``wait`` seconds for it (``None``: as long as the server works on it)."""
    import requests

    url = server_url(settings) + path
    try:
        response = requests.request(
            method, url, json=payload, headers=key_header(settings), timeout=(10.0, wait)
        )
    except requests.ConnectionError:
        raise ServerNotRunning(
            f"could not connect to a running A3S Power server at {server_url(settings)} "
            "(start one with `a3s-power serve`)"
        ) from None
    except requests.Timeout:
        raise PowerError(
            f"the server at {server_url(settings)} did not answer in {wait} s"
        ) from None
    if response.status_code >= 400:
        raise refusal(response)
    try:
        return response.json()
    except ValueError:
        return {}


def refusal(response: requests.Response) -> ServerRefused:
    """The server's refusal (a status of 400 or more), in its own words; a refused key
    also says which setting the CLI reads its key from."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) else None
    text = str(message or f"server answered {response.status_code}")
    if response.status_code == 401:
        text += " (the CLI sends the first of its api_keys: A3S_POWER_API_KEYS)"
    return ServerRefused(text, response.status_code)


def key_header(settings: Settings) -> dict[str, str]:
    """The server's own first key, when it requires keys (the CLI reads its config)."""
    return {"Authorization": f"Bearer {settings.api_keys[0]}"} if settings.api_keys else {}
