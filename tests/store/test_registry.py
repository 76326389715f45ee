"""Pulling models by name from a local registry that speaks Ollama's protocol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import (
    InvalidRequest,
    ModelNotFound,
    PullFailed,
)
from power_core.library import ModelLibrary
from power_core.names import ModelRef
from power_core.pull.registry import RegistrySource, registry_base, registry_tag
from power_core.sources import PullProgress
from power_core.store.builder import MAX_TEXT_LAYER
from registry_server import MANIFEST_TYPE, OCI_MANIFEST_TYPE, RegistryServer, digest_of

TEMPLATE = b"{{ .System }} {{ .Prompt }}"
PARAMS = b'{"stop":["<|im_end|>"],"temperature":0.2}'


@pytest.fixture
def published(registry: RegistryServer, tiny_gguf: Path) -> bytes:
    gguf = tiny_gguf.read_bytes()
    registry.add_model("tiny", "1b", gguf, {"template": TEMPLATE, "params": PARAMS})
    return gguf


def test_a_model_pulled_by_name_has_every_layer(
    puller: ModelLibrary,
    registry: RegistryServer,
    published: bytes,
    check_store: Callable[[Path], None],
) -> None:
    events: list[PullProgress] = []
    name = puller.pull(registry.name("tiny", "1b"), progress=events.append)
    assert name == registry.name("tiny", "1b")
    model = puller.resolve(name)
    assert model.model_digest == digest_of(published)
    assert model.template == TEMPLATE.decode()
    assert model.parameters == {"stop": ["<|im_end|>"], "temperature": 0.2}
    (accepted,) = registry.accept_headers
    assert {MANIFEST_TYPE, OCI_MANIFEST_TYPE} <= set(accepted.split(", "))
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest"
    assert f"pulling {digest_of(published)[7:19]}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]
    check_store(puller.store.root)  # type: ignore[attr-defined]


def test_blobs_already_stored_are_not_downloaded_again(
    puller: ModelLibrary, registry: RegistryServer, published: bytes, tiny_gguf: Path
) -> None:
    puller.pull(registry.name("tiny", "1b"))
    assert registry.storage_gets() == 4  # weights, template, params, config
    # the same weights under another tag, with another template: only new bytes travel
    registry.add_model("tiny", "chat", published, {"template": b"{{ .Prompt }}!"})
    puller.pull(registry.name("tiny", "chat"))
    assert registry.storage_gets() == 5  # only the new template (same config bytes)
    puller.pull(registry.name("tiny", "1b"))
    assert registry.storage_gets() == 5


def test_an_unknown_model_or_tag_is_not_found(
    puller: ModelLibrary, registry: RegistryServer, published: bytes
) -> None:
    with pytest.raises(ModelNotFound):
        puller.pull(registry.name("tiny", "7b"))
    with pytest.raises(ModelNotFound):
        puller.pull(registry.name("ghost", "latest"))
    assert puller.list_models() == []


def test_a_blob_that_does_not_match_its_digest_stores_no_model(
    puller: ModelLibrary, registry: RegistryServer, published: bytes
) -> None:
    registry.blobs[digest_of(TEMPLATE)] = b"t" * len(TEMPLATE)  # the size listed, not the bytes
    with pytest.raises(PullFailed, match="downloaded content has digest"):
        puller.pull(registry.name("tiny", "1b"))
    assert puller.list_models() == []


def test_a_manifest_that_is_not_one_is_refused(
    puller: ModelLibrary, registry: RegistryServer, published: bytes
) -> None:
    registry.manifests[("library", "broken", "latest")] = b"<html>not json</html>"
    with pytest.raises(PullFailed, match="manifest of"):
        puller.pull(registry.name("broken", "latest"))
    registry.manifests[("library", "noweights", "latest")] = (
        b'{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1'
        b'+json","digest":"sha256:' + b"0" * 64 + b'","size":2},"layers":[]}'
    )
    with pytest.raises(PullFailed, match="has no model"):
        puller.pull(registry.name("noweights", "latest"))


def test_weights_that_are_not_gguf_are_refused(
    puller: ModelLibrary, registry: RegistryServer
) -> None:
    registry.add_model("html", "latest", b"<html><body>oops</body></html>")
    with pytest.raises(PullFailed, match="not a GGUF file"):
        puller.pull(registry.name("html", "latest"))
    assert puller.list_models() == []


def test_layers_a_model_could_not_read_back_store_no_model(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    gguf = tiny_gguf.read_bytes()
    registry.add_model("hugetext", "1", gguf, {"template": b"x" * (MAX_TEXT_LAYER + 1)})
    with pytest.raises(PullFailed, match="template layer of 8388609 bytes"):
        puller.pull(registry.name("hugetext", "1"))
    registry.add_model("badparams", "1", gguf, {"params": b"not json"})
    with pytest.raises(PullFailed, match="damaged params layer"):
        puller.pull(registry.name("badparams", "1"))
    # known parameters of the wrong type would fail every request to the model
    for number, params in enumerate(
        [b'{"stop": 5}', b'{"stop": [null, 1]}', b'{"num_keep": NaN}', b'{"temperature": Infinity}']
    ):
        registry.add_model("typed", str(number), gguf, {"params": params})
        with pytest.raises(PullFailed, match="has a params layer whose parameter"):
            puller.pull(registry.name("typed", str(number)))
    assert puller.list_models() == []
    # a parameter this server does not know is kept as it is; a lone stop string is a list
    registry.add_model("typed", "ok", gguf, {"params": b'{"stop": "END", "future_knob": [1]}'})
    name = puller.pull(registry.name("typed", "ok"))
    assert puller.resolve(name).parameters == {"stop": ["END"], "future_knob": [1]}


def test_weights_already_stored_must_be_a_model_too(
    puller: ModelLibrary, registry: RegistryServer, published: bytes
) -> None:
    puller.pull(registry.name("tiny", "1b"))
    # a manifest whose model layer is the template blob the store already holds
    registry.add_model("textasmodel", "1", TEMPLATE)
    with pytest.raises(PullFailed, match="not a GGUF file"):
        puller.pull(registry.name("textasmodel", "1"))
    assert [m.name for m in puller.list_models()] == [registry.name("tiny", "1b")]


def test_an_unreachable_registry_is_a_pull_failure_saying_why(puller: ModelLibrary) -> None:
    with pytest.raises(PullFailed) as caught:
        puller.pull("127.0.0.1:9/library/none:latest")  # discard port: nothing listens
    assert caught.value.message == (
        "cannot pull '127.0.0.1:9/library/none:latest': cannot reach 127.0.0.1: connection refused"
    )


def test_insecure_pulls_speak_plain_http_to_any_registry(
    puller: ModelLibrary, tiny_gguf: Path
) -> None:
    # 127.0.0.2 is loopback too, but not a name the source treats as local: HTTPS unless
    # the pull is insecure; this registry speaks plain HTTP only
    lan = RegistryServer("127.0.0.2")
    try:
        lan.add_model("tiny", "1b", tiny_gguf.read_bytes())
        with pytest.raises(PullFailed, match="cannot pull"):
            puller.pull(lan.name("tiny", "1b"))
        assert lan.requests == {}  # the TLS handshake failed before any request
        assert puller.pull(lan.name("tiny", "1b"), insecure=True) == lan.name("tiny", "1b")
        assert puller.resolve(lan.name("tiny", "1b")).model_digest == digest_of(
            tiny_gguf.read_bytes()
        )
    finally:
        lan.close()


def test_registries_are_https_except_on_loopback() -> None:
    assert registry_base("smollm2:135m") == "https://registry.ollama.ai/v2/library/smollm2"
    assert registry_base("example.com:5000/me/model") == "https://example.com:5000/v2/me/model"
    assert registry_base("localhost:5000/me/model") == "http://localhost:5000/v2/me/model"
    assert registry_base("lan:5000/me/model", insecure=True) == "http://lan:5000/v2/me/model"


def test_registry_addresses_keep_the_spelling_given() -> None:
    # the store lower-cases names; a registry such as hf.co may not
    name = "hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
    assert registry_base(name) == "https://hf.co/v2/Bartowski/Llama-3.2-1B-Instruct-GGUF"
    assert registry_tag(name) == "Q4_K_M"
    assert registry_tag("Me/Model") == "latest"
    assert ModelRef.parse(name).display == "hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m"


def test_file_paths_are_not_model_names_to_pull(puller: ModelLibrary) -> None:
    for path in ("./model.gguf", "models/tiny.gguf", "~/m.gguf"):
        assert not RegistrySource().handles(path)
        with pytest.raises(InvalidRequest, match="create"):
            puller.pull(path)
