"""Registries that want a user name and password (private Docker Hub, ghcr.io, a
``registry:2`` with htpasswd): the credentials ``docker login`` keeps in Docker's
config.json, or that a Docker credential helper gives, sent as Docker sends them."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from power_core.errors import PullFailed, PushFailed
from power_core.library import ModelLibrary
from power_core.pull.docker_credentials import DOCKER_HUB_KEY, Credentials, credentials_for
from power_core.pull.registry_auth import _may_send_password
from registry_server import RegistryServer, TokenService


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$DOCKER_CONFIG/config.json`` for this test (written by each test)."""
    folder = tmp_path / "docker"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder / "config.json"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``A3S_POWER_HOME`` for this test: where a registry key would be made."""
    monkeypatch.setenv("A3S_POWER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def encoded(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(path: Path, config: dict[str, object]) -> None:
    path.write_text(json.dumps(config))


def helper_program(folder: Path, name: str, answers: dict[str, dict[str, str]]) -> Path:
    """A ``docker-credential-<name>`` program speaking Docker's credential helper protocol
    (``get``: the registry on standard input, its credentials as JSON, or exit 1); every
    registry it is asked for is added to the file returned."""
    program = folder / f"docker-credential-{name}"
    asked = folder / f"{name}.asked"
    asked.touch()
    program.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"answers = {answers!r}\n"
        "server = sys.stdin.read().strip()\n"
        f"open({str(asked)!r}, 'a').write(server + '\\n')\n"
        "if sys.argv[1:] != ['get'] or server not in answers:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(json.dumps(answers[server]))\n"
    )
    program.chmod(0o755)
    return asked


def test_credentials_are_found_as_docker_files_them(docker_config: Path) -> None:
    write_config(
        docker_config,
        {
            "auths": {
                DOCKER_HUB_KEY: {"auth": encoded("hubuser", "hub:pass")},
                "https://ghcr.io": {"auth": encoded("octo", "ghp_token")},
                "registry.local:5000": {"username": "me", "password": "secret"},
                "broken.example": {"auth": "not base64!"},
            }
        },
    )
    origin = str(docker_config)
    # every Docker Hub host name finds the one entry; a password may hold colons
    for host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        assert credentials_for(host) == Credentials("hubuser", "hub:pass", origin)
    assert credentials_for("GHCR.io") == Credentials("octo", "ghp_token", origin)
    assert credentials_for("registry.local:5000") == Credentials("me", "secret", origin)
    assert credentials_for("registry.local") is None  # another port, another registry
    assert credentials_for("broken.example") is None
    assert credentials_for("quay.io") is None
    # the password never shows in a log line or a traceback's locals
    assert "hub:pass" not in repr(credentials_for("docker.io"))
    # the exact key first: another spelling of the host with nothing in it does not hide it
    write_config(
        docker_config, {"auths": {"docker.io": {}, DOCKER_HUB_KEY: {"auth": encoded("a", "b")}}}
    )
    assert credentials_for("docker.io") == Credentials("a", "b", origin)


def test_passwords_go_in_plain_text_only_where_the_registry_was_reached_so() -> None:
    assert _may_send_password("https://auth.docker.io/token", "https://registry-1.docker.io/v2/")
    assert _may_send_password("http://127.0.0.1:5000/token", "http://127.0.0.1:5000/v2/a/b")
    assert not _may_send_password("http://127.0.0.1:5001/token", "http://127.0.0.1:5000/v2/")
    assert not _may_send_password("http://auth.example/token", "https://registry.example/v2/")
    assert not _may_send_password("https://auth.example/token", None)


def test_a_config_that_is_missing_or_not_json_gives_no_credentials(docker_config: Path) -> None:
    assert credentials_for("ghcr.io") is None
    docker_config.write_text("{not json")
    assert credentials_for("ghcr.io") is None
    docker_config.write_text('["a list"]')
    assert credentials_for("ghcr.io") is None


def test_credential_helpers_are_asked_before_the_auths(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    asked = helper_program(
        bin_folder,
        "vault",
        {
            "ghcr.io": {"Username": "octo", "Secret": "from-the-helper"},
            "oauth.example": {"Username": "<token>", "Secret": "a refresh token"},
        },
    )
    write_config(
        docker_config,
        {
            "credsStore": "vault",
            "credHelpers": {"quay.io": "absent-helper"},
            "auths": {
                "ghcr.io": {"auth": encoded("octo", "from-the-file")},
                "oauth.example": {"auth": encoded("u", "p")},
                "elsewhere.example": {"auth": encoded("e", "f")},
            },
        },
    )
    assert credentials_for("ghcr.io") == Credentials(
        "octo", "from-the-helper", "docker-credential-vault"
    )
    # an identity token (for an OAuth exchange) is not a password: the file's entry is used
    assert credentials_for("oauth.example") == Credentials("u", "p", str(docker_config))
    # the helper knows nothing of it (exit 1): the file's entry
    assert credentials_for("elsewhere.example") == Credentials("e", "f", str(docker_config))
    assert credentials_for("quay.io") is None  # its helper is not installed
    # the store is asked only for what auths lists, as docker login lists what it stores
    assert credentials_for("registry.ollama.ai") is None
    assert asked.read_text().split() == ["ghcr.io", "oauth.example", "elsewhere.example"]


def test_a_private_registry_gets_the_password_at_its_token_service(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, docker_config: Path, home: Path
) -> None:
    registry.require_token = TokenService(passwords={"me": "s3cret"})
    registry.add_model("private", "v1", tiny_gguf.read_bytes(), namespace="me")
    name = registry.name("private", "v1", namespace="me")

    with pytest.raises(PullFailed, match="docker login") as refused:
        puller.pull(name)  # no credentials: signed with this machine's key, as Ollama signs
    assert "wants a signed-in key" in refused.value.message
    _, first = registry.require_token.requests[0]
    assert first and not first.startswith("Basic ")

    write_config(docker_config, {"auths": {registry.host: {"auth": encoded("me", "wrong")}}})
    with pytest.raises(PullFailed) as refused:
        puller.pull(name)
    assert f"user name 'me' and its password from {docker_config}" in refused.value.message

    write_config(docker_config, {"auths": {registry.host: {"auth": encoded("me", "s3cret")}}})
    assert puller.pull(name) == name
    _, sent = registry.require_token.requests[-1]
    assert sent == "Basic " + encoded("me", "s3cret")  # the password, not Ollama's signature
    assert puller.list_models()[0].name == name


def test_a_registry_that_asks_for_basic_authentication_gets_it_on_every_request(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, docker_config: Path
) -> None:
    registry.require_password = {"me": "s3cret"}
    registry.add_model("private", "v1", tiny_gguf.read_bytes(), {"system": b"Hi."})
    name = registry.name("private", "v1")
    with pytest.raises(PullFailed, match="HTTP 401"):
        puller.pull(name)
    assert puller.list_models() == []

    write_config(docker_config, {"auths": {registry.host: {"auth": encoded("me", "s3cret")}}})
    registry.authorizations.clear()
    assert puller.pull(name) == name
    basic = "Basic " + encoded("me", "s3cret")
    # challenged once; every later request (manifest, three blobs) came with it at once
    assert registry.authorizations == ["", basic, basic, basic, basic]
    assert puller.resolve(name).system == "Hi."

    write_config(docker_config, {"auths": {registry.host: {"auth": encoded("me", "old")}}})
    with pytest.raises(PullFailed, match="HTTP 401") as refused:
        puller.pull(registry.name("private", "v1"))
    assert f"refused the user name 'me' and its password from {docker_config}" in (
        refused.value.message
    )


def test_a_push_to_a_registry_that_asks_for_basic_authentication(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, docker_config: Path
) -> None:
    registry.require_password = {"me": "s3cret"}
    name = registry.name("tiny", "v1", namespace="me")
    puller.create_from_modelfile(name, f"FROM {tiny_gguf}\nSYSTEM Hi.\n", tiny_gguf.parent)
    with pytest.raises(PushFailed, match="docker login"):
        puller.push(name)
    write_config(docker_config, {"auths": {registry.host: {"auth": encoded("me", "s3cret")}}})
    assert puller.push(name) == name
    assert ("me", "tiny", "v1") in registry.manifests
