"""Pushing stored models to a local registry that speaks the Docker registry v2 upload API,
and pulling them back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import InvalidRequest, ModelNotFound, PushFailed
from power_core.library import ModelLibrary
from power_core.names import ModelRef
from power_core.pull.push import REPORT_EVERY
from power_core.pull.registry import RegistrySource
from power_core.sources import PullProgress
from power_core.store.local import LocalStore
from registry_server import RegistryServer, digest_of

MODELFILE = 'SYSTEM """Be brief."""\nPARAMETER temperature 0\nMESSAGE user Hi\n'


def create(library: ModelLibrary, name: str, gguf: Path) -> str:
    return library.create_from_modelfile(name, f"FROM {gguf}\n{MODELFILE}", gguf.parent)


def test_a_pushed_model_pulls_back_the_same(
    puller: ModelLibrary,
    registry: RegistryServer,
    make_gguf: Callable[..., Path],
    tmp_path: Path,
    check_store: Callable[[Path], None],
) -> None:
    # several MiB of weights: the upload reports progress as it goes
    gguf = make_gguf("big.gguf", tensors={"token_embd.weight": (768, 1024)})
    name = registry.name("tiny", "v1", namespace="me")
    create(puller, name, gguf)
    stored = puller.store.read_manifest(ModelRef.parse(name))
    assert stored is not None
    events: list[PullProgress] = []

    assert puller.push(name, progress=events.append) == name
    statuses = [e.status for e in events]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    weights = digest_of(gguf.read_bytes())
    sent = [e for e in events if e.digest == weights]
    assert sent[0].status == f"pushing {weights[7:19]}" and sent[0].completed == 0
    assert sent[-1].completed == sent[-1].total == gguf.stat().st_size
    assert len(sent) >= gguf.stat().st_size // REPORT_EVERY
    # blobs first, the manifest last, byte for byte what the store holds
    assert registry.writes[-1] == ("PUT", "/v2/me/tiny/manifests/v1")
    assert registry.manifests[("me", "tiny", "v1")] == stored.manifest.to_bytes()

    other = ModelLibrary(LocalStore(tmp_path / "elsewhere"), [RegistrySource()])
    assert other.pull(name) == name
    pulled, original = other.resolve(name), puller.resolve(name)
    assert pulled.model_digest == original.model_digest == weights
    assert (pulled.system, pulled.parameters) == ("Be brief.", {"temperature": 0.0})
    assert [(m.role, m.content) for m in pulled.messages] == [("user", "Hi")]
    check_store(tmp_path / "elsewhere")


def test_a_second_push_sends_only_what_the_registry_lacks(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    first = registry.name("tiny", "v1", namespace="me")
    create(puller, first, tiny_gguf)
    puller.push(first)
    uploads = [w for w in registry.writes if w[0] == "POST"]
    assert len(uploads) == 5  # weights, system, params, messages and the config
    # another name, the same blobs plus a new system layer
    second = registry.name("tiny", "v2", namespace="me")
    puller.create(second, from_=first, system="Be verbose.")
    registry.writes.clear()
    events: list[PullProgress] = []
    puller.push(second, progress=events.append)
    assert [w for w in registry.writes if w[0] == "POST"] == [
        ("POST", "/v2/me/tiny/blobs/uploads/")
    ]
    skipped = [e for e in events if e.completed == e.total and e.total]
    assert len(skipped) >= 4  # already there: reported done, not sent


def test_a_registry_that_refuses_is_a_clear_failure(
    puller: ModelLibrary, registry: RegistryServer, tiny_gguf: Path
) -> None:
    name = registry.name("tiny", "v1", namespace="me")
    create(puller, name, tiny_gguf)
    registry.refuse_uploads = True
    with pytest.raises(PushFailed, match=r"HTTP 401 Unauthorized.*wants a signed-in key"):
        puller.push(name)
    assert registry.manifests == {}
    assert puller.resolve(name).system == "Be brief."  # the stored model is untouched


def test_an_unreachable_registry_and_bad_names(puller: ModelLibrary, tiny_gguf: Path) -> None:
    name = "127.0.0.1:9/me/tiny:v1"  # the discard port: nothing listens
    create(puller, name, tiny_gguf)
    with pytest.raises(PushFailed, match="cannot push blob sha256:") as caught:
        puller.push(name)
    assert caught.value.message.endswith(": cannot reach 127.0.0.1: connection refused")
    with pytest.raises(ModelNotFound):
        puller.push("127.0.0.1:9/me/absent:v1")
    with pytest.raises(InvalidRequest, match="empty"):
        puller.push("  ")
