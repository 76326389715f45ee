"""User names and passwords for registries, where ``docker login`` keeps them.

A private repository on Docker Hub, GitHub's ``ghcr.io`` or a self-hosted ``registry:2``
wants a user name and a password (or an access token) instead of Ollama's signed key. Docker
keeps them in ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``): in
``auths`` (``"auth"``: base64 of ``user:password``, or ``"username"`` and ``"password"``), or
in a credential helper program named by ``credHelpers`` (per registry) or ``credsStore``
(for all), which ``docker-credential-<name> get`` asks with the registry on its standard
input and answers ``{"Username": ..., "Secret": ...}`` (Docker's credential helper
protocol). A ``credsStore`` is asked only for a registry that ``auths`` lists (``docker
login`` lists there every registry it stored credentials for), so pulls from other
registries never wait for a helper. Nothing here writes that file: ``docker login`` (or an
editor) does.

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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: the names of Docker Hub's registry; ``docker.io/ai/smollm2`` is served by the last
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
#: a credential helper that takes longer than this is given up on (no credentials)
HELPER_TIMEOUT = 10.0
#: what a config file or a helper's answer may hold; larger is not one
_MAX_ANSWER = 1 << 20


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (or access token) for one registry."""

    username: str
    password: str = field(repr=False)
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
    auths = config.get("auths")
    entries = _entries_for(key, auths if isinstance(auths, dict) else {})
    helpers = config.get("credHelpers")
    helper = helpers.get(key) if isinstance(helpers, dict) else None
    if not helper and entries:  # the store holds only what docker login listed in auths
        helper = config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, key)
        if found is not None:
            return found
    for entry in entries:
        found = _from_entry(entry, str(path))
        if found is not None:
            return found
    return None


def is_docker_hub(host: str) -> bool:
    """Whether ``host`` is one of Docker Hub's registry names."""
    return host.lower() in DOCKER_HUB_HOSTS


def _entries_for(key: str, auths: dict[Any, Any]) -> list[Any]:
    """The ``auths`` entries filed for ``key``: its exact spelling first, then any other
    spelling of the same host (``https://ghcr.io``, ``ghcr.io/v2/``)."""
    exact = [auths[key]] if key in auths else []
    others = [
        entry
        for name, entry in auths.items()
        if isinstance(name, str) and name != key and _registry_key(_host_of(name)) == key
    ]
    return exact + others


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
    return DOCKER_HUB_KEY if is_docker_hub(host) else host.lower()


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
    # its answer goes to a file read up to a bound: a helper printing without end costs
    # no memory
    with tempfile.TemporaryFile() as answer_file:
        try:
            done = subprocess.run(
                [program, "get"],
                input=key.encode(),
                stdout=answer_file,
                stderr=subprocess.DEVNULL,
                timeout=HELPER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("cannot run the credential helper %s: %s", program, exc)
            return None
        if done.returncode != 0:  # "credentials not found in native keychain", for one
            return None
        answer_file.seek(0)
        raw = answer_file.read(_MAX_ANSWER + 1)
    try:
        answer = json.loads(raw) if len(raw) <= _MAX_ANSWER else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        answer = None
    if answer is None:
        log.warning("the credential helper %s answered with what is not its JSON", program)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not username:
        return None
    if username == "<token>":  # an identity token, for an OAuth exchange not done here
        return None
    return Credentials(username, secret, program)
