"""Pulling Docker's model artifacts (``docker model package``, Docker Hub's ``ai/``) from a
local registry that serves them as an OCI registry does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import PullFailed
from power_core.gguf import read_gguf_info
from power_core.library import ModelLibrary
from power_core.names import ModelRef
from power_core.pull.registry import registry_base, registry_tag
from power_core.store.manifest import Manifest
from registry_server import (
    DOCKER_GGUF,
    DOCKER_LICENSE,
    DOCKER_PROJECTOR,
    DOCKER_TEMPLATE,
    MANIFEST_TYPE,
    OCI_MANIFEST_TYPE,
    RegistryServer,
    digest_of,
)
from split_files import write_tiny_model
from tiny_projector import write_tiny_projector

JINJA = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
LICENSE = b"Apache License 2.0 (test)"


def stored_manifest(library: ModelLibrary, name: str) -> Manifest:
    stored = library.store.read_manifest(ModelRef.parse(name))
    assert stored is not None
    return stored.manifest


def test_a_docker_model_is_stored_with_its_projector_license_template_and_context(
    puller: ModelLibrary,
    registry: RegistryServer,
    tiny_gguf: Path,
    tmp_path: Path,
    check_store: Callable[[Path], None],
) -> None:
    weights = tiny_gguf.read_bytes()
    projector = write_tiny_projector(tmp_path / "mmproj.gguf").read_bytes()
    registry.add_docker_model(
        "tiny",
        "135M-Q4_1",
        [
            (DOCKER_GGUF, weights),
            (DOCKER_PROJECTOR, projector),
            (DOCKER_LICENSE, LICENSE),
            (DOCKER_TEMPLATE, JINJA.encode()),
        ],
        context_size=4096,
    )
    spelled = registry.name("tiny", "135M-Q4_1", namespace="ai")
    name = puller.pull(spelled)
    assert name == f"{registry.host}/ai/tiny:135m-q4_1"
    # an OCI registry is asked for either kind of manifest
    (accepted,) = registry.accept_headers
    assert {MANIFEST_TYPE, OCI_MANIFEST_TYPE} <= set(accepted.split(", "))

    model = puller.resolve(name)
    assert model.model_digest == digest_of(weights)
    assert model.projector is not None and model.projector.read_bytes() == projector
    assert "vision" in model.capabilities
    assert model.template == JINJA
    assert model.license == LICENSE.decode()
    assert model.parameters == {"num_ctx": 4096}
    assert model.details.quantization_level  # read from the GGUF, as a create reads it

    # stored in Ollama's layout, every layer the registry's own bytes (nothing copied twice)
    manifest = stored_manifest(puller, name)
    kinds = {layer.kind: layer.digest for layer in manifest.layers}
    assert kinds["model"] == digest_of(weights)
    assert kinds["projector"] == digest_of(projector)
    assert kinds["license"] == digest_of(LICENSE)
    assert kinds["template"] == digest_of(JINJA.encode())
    assert set(kinds) == {"model", "projector", "license", "template", "params"}
    assert manifest.config.media_type == "application/vnd.docker.container.image.v1+json"
    check_store(puller.store.root)  # type: ignore[attr-defined]
    # the store holds what the model uses and nothing else: Docker's config was only read
    stored = {path.name for path in (puller.store.root / "blobs").iterdir()}  # type: ignore[attr-defined]
    assert stored == {digest.replace(":", "-") for digest in manifest.digests}

    # pulled again (spelled as the registry spells its tag): only the small config travels
    gets = registry.storage_gets()
    assert puller.pull(spelled) == name
    assert registry.storage_gets() == gets + 1


def test_a_docker_model_with_only_weights_keeps_the_gguf_template(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    registry.add_docker_model("plain", "latest", [(DOCKER_GGUF, tiny_gguf.read_bytes())])
    name = puller.pull(registry.name("plain", "latest", namespace="ai"))
    assert [layer.kind for layer in stored_manifest(puller, name).layers] == ["model"]
    model = puller.resolve(name)
    assert model.template == read_gguf_info(tiny_gguf).chat_template  # the GGUF's own applies
    assert model.parameters == {}
    assert model.projector is None
    assert "vision" not in model.capabilities


@pytest.mark.parametrize(
    ("layers", "refusal"),
    [
        ([("application/vnd.docker.ai.safetensors", b"weights")], "holds safetensors weights"),
        ([(DOCKER_LICENSE, LICENSE)], "has no GGUF weights"),
    ],
    ids=["safetensors", "no-weights"],
)
def test_docker_models_the_store_cannot_hold_are_refused_before_any_download(
    puller: ModelLibrary,
    registry: RegistryServer,
    layers: list[tuple[str, bytes]],
    refusal: str,
) -> None:
    registry.add_docker_model("odd", "latest", layers)
    with pytest.raises(PullFailed, match=refusal):
        puller.pull(registry.name("odd", "latest", namespace="ai"))
    assert registry.storage_gets() == 0
    assert puller.list_models() == []


def test_a_split_docker_model_is_pulled_part_by_part_and_joined(
    puller: ModelLibrary,
    registry: RegistryServer,
    tmp_path: Path,
    check_store: Callable[[Path], None],
) -> None:
    write_tiny_model(tmp_path / "whole.gguf")
    write_tiny_model(tmp_path / "tiny.gguf", split_max_tensors=2)
    parts = [path.read_bytes() for path in sorted(tmp_path.glob("tiny-*-of-*.gguf"))]
    # in any order: each part says which it is
    registry.add_docker_model("split", "q8", [(DOCKER_GGUF, part) for part in reversed(parts)])
    name = puller.pull(registry.name("split", "q8", namespace="ai"))
    whole = (tmp_path / "whole.gguf").read_bytes()
    assert puller.resolve(name).model_digest == digest_of(whole)
    manifest = stored_manifest(puller, name)
    stored = {path.name for path in (puller.store.root / "blobs").iterdir()}  # type: ignore[attr-defined]
    assert stored == {digest.replace(":", "-") for digest in manifest.digests}  # parts gone
    check_store(puller.store.root)  # type: ignore[attr-defined]


def test_gguf_layers_that_are_no_parts_of_one_model_are_refused(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, tmp_path: Path
) -> None:
    write_tiny_model(tmp_path / "whole.gguf")
    layers = [
        (DOCKER_GGUF, tiny_gguf.read_bytes()),
        (DOCKER_GGUF, (tmp_path / "whole.gguf").read_bytes()),
    ]
    registry.add_docker_model("two", "models", layers)
    with pytest.raises(PullFailed, match=r"has 2 GGUF layers, not the parts of one model: .*"):
        puller.pull(registry.name("two", "models", namespace="ai"))
    assert puller.list_models() == []
    stored = puller.store.root / "blobs"  # type: ignore[attr-defined]
    assert not stored.exists() or list(stored.iterdir()) == []


def test_a_projector_layer_that_is_no_projector_stores_no_model(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path, tmp_path: Path
) -> None:
    weights = tiny_gguf.read_bytes()
    registry.add_docker_model("mixed", "up", [(DOCKER_GGUF, weights), (DOCKER_PROJECTOR, weights)])
    with pytest.raises(PullFailed, match=r"projector layer .* is not a multimodal projector"):
        puller.pull(registry.name("mixed", "up", namespace="ai"))
    projector = write_tiny_projector(tmp_path / "mmproj.gguf").read_bytes()
    registry.add_docker_model("swapped", "up", [(DOCKER_GGUF, projector)])
    with pytest.raises(PullFailed, match=r"weights of .* are a multimodal projector"):
        puller.pull(registry.name("swapped", "up", namespace="ai"))
    assert puller.list_models() == []


def test_an_image_index_is_refused_as_not_a_model(
    puller: ModelLibrary, registry: RegistryServer
) -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST_TYPE, "digest": "sha256:" + "0" * 64}],
    }
    registry.manifests[("ai", "multi", "latest")] = json.dumps(index).encode()
    with pytest.raises(PullFailed, match="is an image index"):
        puller.pull(registry.name("multi", "latest", namespace="ai"))


def test_docker_hub_names_reach_its_registry_host() -> None:
    assert registry_base("docker.io/ai/smollm2:135M-Q4_K_M") == (
        "https://registry-1.docker.io/v2/ai/smollm2"
    )
    assert registry_base("index.docker.io/ai/qwen3") == "https://registry-1.docker.io/v2/ai/qwen3"
    assert registry_tag("docker.io/ai/smollm2:135M-Q4_K_M") == "135M-Q4_K_M"
    # Ollama's short names keep Ollama's registry
    assert registry_base("ai/smollm2") == "https://registry.ollama.ai/v2/ai/smollm2"


def test_a_license_listed_many_times_is_read_and_stored_once(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    layers = [(DOCKER_GGUF, tiny_gguf.read_bytes()), *[(DOCKER_LICENSE, LICENSE)] * 60]
    registry.add_docker_model("licensed", "v1", layers)
    name = puller.pull(registry.name("licensed", "v1", namespace="ai"))
    licenses = stored_manifest(puller, name).layers_of("license")
    assert [layer.digest for layer in licenses] == [digest_of(LICENSE)]
    assert registry.storage_gets() == 3  # the weights, the license, the config


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ([(DOCKER_LICENSE, b"Lizenz \xfc\xe4")], r"the license \(\w+\) is not UTF-8 text"),
        (
            [(DOCKER_LICENSE, b"x" * (5 << 20))] * 1 + [(DOCKER_LICENSE, b"y" * (4 << 20))],
            "bytes of licenses and template",
        ),
    ],
    ids=["latin-1", "too-much-text"],
)
def test_texts_a_model_cannot_keep_as_sent_store_nothing(
    puller: ModelLibrary,
    registry: RegistryServer,
    tiny_gguf: Path,
    text: list[tuple[str, bytes]],
    refusal: str,
) -> None:
    """Stored otherwise (decoded with replacement characters), the model's license would
    not be the registry's; refused as the registry's fault (502), with no orphan left."""
    registry.add_docker_model("odd-text", "v1", [(DOCKER_GGUF, tiny_gguf.read_bytes()), *text])
    with pytest.raises(PullFailed, match=refusal):
        puller.pull(registry.name("odd-text", "v1", namespace="ai"))
    assert puller.list_models() == []


def test_a_blob_larger_than_its_manifest_lists_is_refused_before_it_is_read(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    weights = tiny_gguf.read_bytes()
    for name, publish in (
        ("docker", lambda: registry.add_docker_model("big", "v1", [(DOCKER_GGUF, weights)])),
        ("ollama", lambda: registry.add_model("big", "v1", weights, namespace="ollama")),
    ):
        manifest = publish()
        manifest["layers"][0]["size"] = 1000  # the registry sends all of the file
        registry.manifests[(name if name == "ollama" else "ai", "big", "v1")] = json.dumps(
            manifest
        ).encode()
        with pytest.raises(PullFailed, match="where the manifest lists 1000"):
            puller.pull(registry.name("big", "v1", namespace=name if name == "ollama" else "ai"))
    assert puller.list_models() == []


@pytest.mark.parametrize(
    ("config_type", "what"),
    [
        ("application/vnd.oci.image.config.v1+json", "a container image"),
        ("application/vnd.cncf.model.config.v1+json", "a CNCF ModelPack artifact"),
    ],
)
def test_other_oci_artifacts_are_named_in_the_refusal(
    puller: ModelLibrary, registry: RegistryServer, config_type: str, what: str
) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_TYPE,
        "config": {"mediaType": config_type, "digest": digest_of(b"{}"), "size": 2},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest_of(b"layer"),
                "size": 5,
            }
        ],
    }
    registry.manifests[("ai", "other", "v1")] = json.dumps(manifest).encode()
    with pytest.raises(PullFailed, match=f"is {what}, not a GGUF model"):
        puller.pull(registry.name("other", "v1", namespace="ai"))
