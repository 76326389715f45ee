"""Signing in to registries that want a token, as ollama.com does: pulls and pushes against a
local registry whose token service checks the Ed25519 signature of a key it knows."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from power_core.errors import PullFailed, PushFailed
from power_core.library import ModelLibrary
from power_core.pull import registry_auth
from power_core.pull.registry_auth import _may_sign, parse_challenge, token_url
from power_core.registry_key import RegistryKey
from registry_server import RegistryServer, TokenService


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``A3S_POWER_HOME`` for this test: where the registry key is made."""
    monkeypatch.setenv("A3S_POWER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def wire_form(key: RegistryKey) -> str:
    return key.public_line.split()[1]


def token_queries(service: TokenService) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(path).query) for path, _ in service.requests]


def test_a_pull_signs_in_with_a_key_the_registry_knows(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    key = RegistryKey.load_or_create()
    registry.require_token = TokenService(known_keys={wire_form(key)})
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes(), {"system": b"Be brief."})

    name = registry.name("tiny", "v1")
    assert puller.pull(name) == name
    assert puller.resolve(name).system == "Be brief."
    # one token, asked once with the challenge's service and scope, then used for every blob
    assert len(registry.require_token.requests) == 1
    (query,) = token_queries(registry.require_token)
    assert query["service"] == ["test-registry"]
    assert query["scope"] == ["repository:library/tiny:pull"]
    assert (
        query["ts"][0].isdecimal() and len(base64.urlsafe_b64decode(query["nonce"][0] + "==")) == 16
    )
    assert list(query) == sorted(query)  # the keys in Go's order, as Ollama sends them
    _, signed_by = registry.require_token.requests[0]
    assert signed_by.split(":")[0] == wire_form(key)


def test_an_unknown_key_is_refused_with_what_to_do_and_stores_nothing(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    registry.require_token = TokenService()
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())

    with pytest.raises(PullFailed) as refused:
        puller.pull(registry.name("tiny", "v1"))
    message = refused.value.message
    assert "token service" in message and "HTTP 401" in message and "unknown key" in message
    assert f"{home / 'id_ed25519'}.pub" in message and "a3s-power key" in message
    assert "https://ollama.com/settings/keys" in message
    assert puller.list_models() == []
    # the key it signed with was made on first use, for the owner's eyes only
    key_file = home / "id_ed25519"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    made = RegistryKey.load_or_create()
    assert (home / "id_ed25519.pub").read_text().strip() == made.public_line

    # once the registry knows it, the same key signs in
    registry.require_token.known_keys.add(wire_form(made))
    assert puller.pull(registry.name("tiny", "v1")) == registry.name("tiny", "v1")


def test_a_realm_on_another_host_gets_an_unsigned_request(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    port = registry.host.rsplit(":", 1)[1]
    # Docker Hub's way: the token service lives elsewhere and gives pull tokens to anyone
    registry.require_token = TokenService(anonymous_pull=True, realm_host=f"localhost:{port}")
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())

    assert puller.pull(registry.name("tiny", "v1")) == registry.name("tiny", "v1")
    assert [auth for _, auth in registry.require_token.requests] == [""]
    assert not (home / "id_ed25519").exists()  # nothing was signed, so no key was made


def test_the_token_is_not_sent_on_to_storage_elsewhere(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    key = RegistryKey.load_or_create()
    registry.require_token = TokenService(known_keys={wire_form(key)})
    port = registry.host.rsplit(":", 1)[1]
    registry.storage_host = f"localhost:{port}"  # another host name for the blob storage
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())

    assert puller.pull(registry.name("tiny", "v1")) == registry.name("tiny", "v1")
    assert registry.storage_authorizations and set(registry.storage_authorizations) == {""}


def test_a_token_service_that_cannot_be_reached_is_named(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    registry.require_token = TokenService(realm_host="127.0.0.1:9")  # nothing listens
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())
    with pytest.raises(PullFailed) as failed:
        puller.pull(registry.name("tiny", "v1"))
    assert failed.value.message.endswith(
        "cannot get a token from http://127.0.0.1:9/token: cannot reach 127.0.0.1: "
        "connection refused"
    )


def test_a_key_that_cannot_be_made_names_the_key_file(
    puller: ModelLibrary,
    registry: RegistryServer,
    tiny_gguf: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("A3S_POWER_HOME", str(blocker / "home"))  # under a file: no folder
    registry.require_token = TokenService()
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())
    with pytest.raises(PullFailed) as failed:
        puller.pull(registry.name("tiny", "v1"))
    assert f"cannot read or make the registry key {blocker / 'home' / 'id_ed25519'}: " in (
        failed.value.message
    )


def test_signatures_go_only_to_the_hosts_requests_were_sent_to() -> None:
    assert _may_sign("https://r.example/token?x=1", "https://r.example/v2/a/b/manifests/c")
    assert _may_sign("http://127.0.0.1:5000/token", "http://127.0.0.1:5000/v2/a/b/blobs/d")
    assert not _may_sign("https://auth.example/token", "https://r.example/v2/a/b/manifests/c")
    assert not _may_sign("https://r.example:444/token", "https://r.example/v2/a/b/manifests/c")
    assert not _may_sign("http://r.example/token", "https://r.example/v2/a/b/manifests/c")
    assert not _may_sign("https://r.example/token", None)  # a redirect's hop


def test_the_token_url_is_what_go_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_auth.time, "time", lambda: 1_700_000_000.5)
    monkeypatch.setattr(registry_auth.secrets, "token_bytes", lambda n: bytes(range(n)))
    url = token_url(
        {
            "realm": "https://registry.ollama.ai/v2/token",
            "service": "registry.ollama.ai",
            "scope": "repository:me/model:push,pull repository:me/base:pull",
        }
    )
    assert url == (
        "https://registry.ollama.ai/v2/token?nonce=AAECAwQFBgcICQoLDA0ODw"
        "&scope=repository%3Ame%2Fmodel%3Apush%2Cpull&scope=repository%3Ame%2Fbase%3Apull"
        "&service=registry.ollama.ai&ts=1700000000"
    )


def test_a_push_signs_in_for_the_push_scope(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    key = RegistryKey.load_or_create()
    registry.require_token = TokenService(known_keys={wire_form(key)})
    name = registry.name("tiny", "v1", namespace="me")
    puller.create_from_modelfile(name, f"FROM {tiny_gguf}\nSYSTEM Hi.\n", tiny_gguf.parent)

    assert puller.push(name) == name
    assert ("me", "tiny", "v1") in registry.manifests
    # the first HEAD asked to pull; opening an upload asked to push as well
    scopes = [query["scope"] for query in token_queries(registry.require_token)]
    assert scopes == [["repository:me/tiny:pull"], ["repository:me/tiny:push,pull"]]

    # a token that expires while a blob goes up: a new one, and the blob is sent again whole
    other = registry.name("tiny", "v2", namespace="me")
    puller.create_from_modelfile(other, f"FROM {name}\nSYSTEM Another layer.\n", tiny_gguf.parent)
    registry.expire_tokens_before_upload = True
    asked = len(registry.require_token.requests)
    assert puller.push(other) == other
    # a new push signs in anew (pull, then push), and once more when its token expired
    assert len(registry.require_token.requests) == asked + 3
    assert ("me", "tiny", "v2") in registry.manifests  # its blobs all arrived whole

    registry.require_token.known_keys.clear()
    registry.require_token.tokens.clear()
    with pytest.raises(PushFailed, match=r"refused: HTTP 401.*a3s-power key"):
        puller.push(name)


def test_a_key_file_that_cannot_be_used_is_reported_and_kept(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, home: Path
) -> None:
    registry.require_token = TokenService()
    registry.add_model("tiny", "v1", tiny_gguf.read_bytes())
    home.mkdir()
    (home / "id_ed25519").write_text("not a key\n")

    with pytest.raises(PullFailed, match=r"cannot use the registry key .*id_ed25519"):
        puller.pull(registry.name("tiny", "v1"))
    assert (home / "id_ed25519").read_text() == "not a key\n"
    assert registry.require_token.requests == []  # nothing went out unsigned instead


def test_signatures_are_ed25519_over_what_ollama_signs(home: Path) -> None:
    key = RegistryKey.load_or_create()
    assert RegistryKey.load_or_create().public_line == key.public_line  # made once
    public, _, signature = key.sign(b"GET,https://r.example/token?a=1,abc").partition(":")
    verifier = load_ssh_public_key(f"ssh-ed25519 {public}".encode())
    assert isinstance(verifier, Ed25519PublicKey)
    verifier.verify(base64.b64decode(signature), b"GET,https://r.example/token?a=1,abc")


def test_a_key_copied_in_gets_its_own_public_half(home: Path, tmp_path: Path) -> None:
    # as when Ollama's ~/.ollama/id_ed25519 is copied over ours: the .pub must follow it
    ollamas = RegistryKey.load_or_create(tmp_path / "ollama" / "id_ed25519")
    ours = RegistryKey.load_or_create()
    assert ours.public_line != ollamas.public_line
    (home / "id_ed25519").write_bytes((tmp_path / "ollama" / "id_ed25519").read_bytes())
    assert RegistryKey.load_or_create().public_line == ollamas.public_line
    assert (home / "id_ed25519.pub").read_text() == ollamas.public_line + "\n"
    (home / "id_ed25519.pub").unlink()
    RegistryKey.load_or_create()
    assert (home / "id_ed25519.pub").read_text() == ollamas.public_line + "\n"


def test_processes_making_the_key_at_once_end_with_one(home: Path) -> None:
    made: list[str] = []
    start = threading.Barrier(4)

    def make() -> None:
        start.wait()
        made.append(RegistryKey.load_or_create().public_line)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 1
    assert (home / "id_ed25519.pub").read_text().strip() == made[0]
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []  # no leftovers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://r.example/token",service="r.example",'
            'scope="repository:me/m:push,pull"',
            {
                "realm": "https://r.example/token",
                "service": "r.example",
                "scope": "repository:me/m:push,pull",
            },
        ),
        ('bearer Realm="https://r.example/t"', {"realm": "https://r.example/t"}),
        ('Basic realm="r.example"', None),
        ('Bearer service="r.example"', None),
        ("", None),
    ],
)
def test_bearer_challenges_are_read_as_registries_write_them(
    header: str, expected: dict[str, str] | None
) -> None:
    assert parse_challenge(header) == expected


def test_the_token_url_keeps_the_realms_query_and_every_scope() -> None:
    url = token_url(
        {
            "realm": "https://r.example/token?x=1",
            "service": "svc",
            "scope": "repository:a/b:pull repository:c/d:pull",
        }
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "r.example", "/token")
    query = parse_qs(parts.query)
    assert query["x"] == ["1"] and query["service"] == ["svc"]
    assert query["scope"] == ["repository:a/b:pull", "repository:c/d:pull"]
    assert [k.split("=")[0] for k in parts.query.split("&")] == [
        "nonce",
        "scope",
        "scope",
        "service",
        "ts",
        "x",
    ]
    assert token_url({"realm": "https://r.example/token"}) != token_url(
        {"realm": "https://r.example/token"}
    )


def test_key_files_are_not_world_readable_even_with_a_loose_umask(home: Path) -> None:
    old = os.umask(0)
    try:
        RegistryKey.load_or_create()
    finally:
        os.umask(old)
    assert stat.S_IMODE((home / "id_ed25519").stat().st_mode) == 0o600
