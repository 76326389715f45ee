"""User names and passwords for registries, where ``docker login`` keeps them.

A private repository on Docker Hub, GitHub's ``ghcr.io`` or a self-hosted ``registry:2``
wants a user name and a password (or an access token) instead of Ollama's signed key. Docker
keeps them in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``): in
``auths`` (``"auth"``: base64 of ``user:password``, or ``"username"`` and ``"password"``), or
in a credential helper program named by ``credHelpers`` (per registry) or ``credsStore``
(for all), which ``docker-credential-<name> get`` asks with the registry on its standard
input and answers ``{"Username": ..., "Secret": ...}`` (Docker's credential helper
protocol). Nothing here writes that file: ``docker login`` (or an editor) does.

Docker Hub's credentials are filed under ``https://index.docker.io/v1/``, whichever of its
host names a request goes to. Identity tokens (OAuth refresh tokens some registries hand
``docker login``) are not used.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
#: a credential helper that takes longer than this is given up on (no credentials)
HELPER_TIMEOUT = 30.0
#: what a config file or a helper's answer may hold; larger is not one
_MAX_ANSWER = 1 << 20


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (or access token) for one registry."""

    username: str
    password: str
    #: where they came from, for messages (``~/.docker/config.json``, a helper's name)
    origin: str

    def basic_authorization(self) -> str:
        """The ``Authorization`` header value of HTTP Basic authentication."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    folder = os.environ.get("DOCKER_CONFIG")
    return (Path(folder) if folder else Path.home() / ".docker") / "config.json"


def credentials_for(host: str, config_path: Path | None = None) -> Credentials | None:
    """The credentials Docker keeps for registry ``host`` (``host[:port]``), or ``None``.

    A config file that cannot be read or parsed, and a helper that fails, give ``None``
    (with a warning in the log): the registry then says what it wants.
    """
    path = config_path if config_path is not None else docker_config_path()
    config = _read_config(path)
    if config is None:
        return None
    key = _registry_key(host)
    helpers = config.get("credHelpers")
    helper = helpers.get(key) if isinstance(helpers, dict) else None
    helper = helper or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, key)
        if found is not None:
            return found
    auths = config.get("auths")
    if isinstance(auths, dict):
        for name, entry in auths.items():
            if isinstance(name, str) and _registry_key(_host_of(name)) == key:
                return _from_entry(entry, str(path))
    return None


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_ANSWER + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc.strerror or exc)
        return None
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        log.warning("%s is not valid JSON (%s); registry credentials in it are not used", path, exc)
        return None
    return config if isinstance(config, dict) else None


def _registry_key(host: str) -> str:
    """How credentials are filed for ``host``: Docker Hub's every name under one key."""
    host = host.lower()
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_HOSTS else host


def _host_of(name: str) -> str:
    """The ``host[:port]`` of an ``auths`` key (``https://ghcr.io``, ``ghcr.io/v2/``, ...)."""
    if name == DOCKER_HUB_KEY:
        return "index.docker.io"
    return urlsplit(name if "://" in name else f"//{name}").netloc


def _from_entry(entry: Any, origin: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password, origin)
    encoded = entry.get("auth")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        pair = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        log.warning("an 'auth' entry of %s is not base64 of user:password", origin)
        return None
    username, colon, password = pair.partition(":")
    return Credentials(username, password, origin) if colon and username else None


def _from_helper(helper: str, key: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get`` for ``key``'s credentials."""
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(
            [program, "get"],
            input=key.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot run the credential helper %s: %s", program, exc)
        return None
    if done.returncode != 0:  # "credentials not found in native keychain", for one
        return None
    try:
        answer = json.loads(done.stdout[:_MAX_ANSWER])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        log.warning("the credential helper %s answered with what is not JSON", program)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not username:
        return None
    if username == "<token>":  # an identity token, for an OAuth exchange not done here
        return None
    return Credentials(username, secret, program)
