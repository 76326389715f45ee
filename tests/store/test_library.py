"""The model library on a real local store: import, create, show, copy, delete, Ollama folders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.chat.template_syntax import go_template_note
from power_core.errors import (
    BlobNotFound,
    InvalidModelFile,
    InvalidModelName,
    InvalidRequest,
    ModelNotFound,
    StoreUnavailable,
    UnsupportedFeature,
)
from power_core.library import ModelLibrary
from power_core.pull.url import UrlSource
from power_core.sources import PullProgress
from power_core.store.builder import MAX_TEXT_LAYER
from power_core.store.local import LocalStore
from power_core.types import ChatMessage

TOOLS_TEMPLATE = "{% if tools %}{{ tools | tojson }}{% endif %}{{ messages }}"


def test_import_then_list_resolve_and_describe(library: ModelLibrary, tiny_gguf: Path) -> None:
    events: list[PullProgress] = []
    assert library.import_gguf(tiny_gguf, "Tiny:1B", progress=events.append) == "tiny:1b"
    statuses = [e.status for e in events]
    assert statuses[0] == "transferring model data"
    assert statuses[-2:] == ["writing manifest", "success"]
    assert any(s.startswith("creating new layer sha256:") for s in statuses)

    [summary] = library.list_models()
    assert summary.name == "tiny:1b"
    assert summary.size > tiny_gguf.stat().st_size  # weights plus config
    manifest = library.store.manifests_dir / "registry.ollama.ai/library/tiny/1b"  # type: ignore[attr-defined]
    assert summary.digest == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert summary.details.family == "llama"
    assert summary.details.quantization_level == "Q4_1"
    assert summary.details.parameter_size == "160"

    model = library.resolve("TINY:1b")
    assert model.name == "tiny:1b" and model.format == "gguf"
    assert model.model_path.read_bytes() == tiny_gguf.read_bytes()
    assert model.model_digest == "sha256:" + hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert model.template is not None and "<|im_start|>" in model.template
    assert model.capabilities == ["completion"]
    assert "tokenizer.ggml.tokens" not in model.metadata
    assert model.metadata["llama.context_length"] == 2048

    described = library.describe("tiny:1b")
    assert described.model_info["tokenizer.ggml.tokens"] is None
    assert described.model_info["general.parameter_count"] == 160
    assert described.modelfile.splitlines()[4] == f"FROM {model.model_path}"
    verbose = library.describe("tiny:1b", verbose=True)
    assert len(verbose.model_info["tokenizer.ggml.tokens"]) == 300


def test_unknown_and_invalid_names(library: ModelLibrary) -> None:
    with pytest.raises(ModelNotFound, match="model 'ghost' not found"):
        library.resolve("ghost")
    with pytest.raises(InvalidModelName):
        library.resolve("../etc/passwd")
    assert not library.exists("ghost") and not library.exists("..")


@pytest.mark.parametrize(
    ("options", "capabilities"),
    [
        ({}, ["completion"]),
        ({"template": TOOLS_TEMPLATE}, ["completion", "tools"]),
        ({"fim": True}, ["completion", "insert"]),
        ({"arch": "bert", "template": None}, ["embedding"]),
        # no template: prompts use the built-in ChatML, which shows tools
        ({"template": None}, ["completion", "tools"]),
        ({"arch": "qwen3", "pooling": True}, ["embedding"]),
        ({"template": "{% if enable_thinking %}<think>{% endif %}"}, ["completion", "thinking"]),
    ],
)
def test_capabilities(
    library: ModelLibrary,
    make_gguf: Callable[..., Path],
    options: dict[str, object],
    capabilities: list[str],
) -> None:
    library.import_gguf(make_gguf(**options), "m")
    assert library.resolve("m").capabilities == capabilities


def test_create_from_modelfile_with_a_relative_path(library: ModelLibrary, tiny_gguf: Path) -> None:
    modelfile = """FROM ./ggufs/tiny.gguf
PARAMETER temperature 0.2
PARAMETER stop <|im_end|>
SYSTEM Be brief.
LICENSE MIT
MESSAGE user hi
MESSAGE assistant hello
"""
    base_dir = tiny_gguf.parent.parent
    assert library.create_from_modelfile("mine", modelfile, base_dir) == "mine:latest"
    model = library.resolve("mine")
    assert model.system == "Be brief."
    assert model.parameters == {"temperature": 0.2, "stop": ["<|im_end|>"]}
    assert model.license == "MIT"
    assert [(m.role, m.content) for m in model.messages] == [
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    text = library.describe("mine").modelfile
    assert "PARAMETER temperature 0.2" in text and "MESSAGE assistant hello" in text


def test_create_from_an_existing_model_merges_parameters(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    library.create_from_modelfile(
        "base",
        f"FROM {tiny_gguf}\nPARAMETER temperature 0.2\nPARAMETER top_k 10\nSYSTEM one",
        tmp_path,
    )
    events: list[PullProgress] = []
    library.create_from_modelfile(
        "child", "FROM base\nPARAMETER top_k 20\nLICENSE L", tmp_path, progress=events.append
    )
    child, base = library.resolve("child"), library.resolve("base")
    assert child.parameters == {"temperature": 0.2, "top_k": 20}
    assert child.system == "one" and child.license == "L"
    assert child.model_digest == base.model_digest
    assert any(e.status.startswith("using existing layer") for e in events)
    # the weights are stored once
    assert len([p for p in library.store.blobs_dir.iterdir() if p.stat().st_size > 1000]) == 1  # type: ignore[attr-defined]


def test_a_model_created_again_resolves_to_its_new_layers(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    library.create_from_modelfile("m", f"FROM {tiny_gguf}\nSYSTEM one", tmp_path)
    first = library.resolve("m")
    assert library.resolve("m") is first  # remembered: every request resolves its model
    library.create_from_modelfile("m", f"FROM {tiny_gguf}\nSYSTEM two", tmp_path)
    assert library.resolve("m").system == "two"


def test_modelfile_errors(library: ModelLibrary, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"line 1: FROM file not found: \./missing\.gguf"):
        library.create_from_modelfile("x", "FROM ./missing.gguf", tmp_path)
    with pytest.raises(ModelNotFound, match="'nobody'"):
        library.create_from_modelfile("x", "FROM nobody", tmp_path)
    with pytest.raises(InvalidRequest, match=r"line 2: ADAPTER file not found: \./a\.gguf"):
        library.create_from_modelfile("x", "FROM nobody\nADAPTER ./a.gguf", tmp_path)
    with pytest.raises(InvalidModelName):
        library.create_from_modelfile("bad name", "FROM x", tmp_path)
    assert library.list_models() == []


def test_a_bad_gguf_is_refused_before_anything_is_stored(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_gguf.read_bytes()[:200])
    with pytest.raises(InvalidModelFile, match="truncated"):
        library.create_from_modelfile("x", f"FROM {broken}", tmp_path)
    html = tmp_path / "page.gguf"
    html.write_text("<html>not a model</html>")
    with pytest.raises(InvalidModelFile, match="not a GGUF file"):
        library.import_gguf(html, "x")
    assert library.list_models() == []
    assert not library.store.blobs_dir.exists() or not any(library.store.blobs_dir.iterdir())  # type: ignore[attr-defined]


def test_json_create_from_uploaded_files(library: ModelLibrary, tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert not library.has_blob(digest)
    library.put_blob_stream([data[:100], data[100:]], digest, len(data))
    assert library.has_blob(digest)
    name = library.create(
        "uploaded",
        files={"tiny.gguf": digest},
        template="{{ .Prompt }}",
        system="sys",
        parameters={"num_ctx": "1024", "stop": "END"},
        license=["A", "B"],
        messages=[ChatMessage(role="user", content="q"), {"role": "assistant", "content": "a"}],
    )
    model = library.resolve(name)
    assert model.template == "{{ .Prompt }}"
    assert model.parameters == {"num_ctx": 1024, "stop": ["END"]}
    assert model.license == "A\nB"
    assert [m.role for m in model.messages] == ["user", "assistant"]
    library.create("derived", from_="uploaded", system="other")
    derived = library.resolve("derived")
    assert derived.system == "other" and derived.template == "{{ .Prompt }}"


def test_json_create_errors(
    library: ModelLibrary, tiny_gguf: Path, make_gguf: Callable[..., Path]
) -> None:
    with pytest.raises(InvalidRequest, match="exactly one of 'from' and 'files'"):
        library.create("x")
    with pytest.raises(BlobNotFound, match="upload it first"):
        library.create("x", files={"a.gguf": "sha256:" + "0" * 64})
    text = library.put_blob_stream([b"{}"], "sha256:" + hashlib.sha256(b"{}").hexdigest())
    with pytest.raises(UnsupportedFeature, match="not a GGUF file"):
        library.create("x", files={"config.json": text.digest})
    with pytest.raises(InvalidRequest, match="unknown parameter"):
        library.create("x", from_="y", parameters={"bogus": 1})
    with pytest.raises(InvalidRequest, match="role"):
        library.create("x", from_="y", messages=[{"role": "robot", "content": "x"}])
    library.import_gguf(tiny_gguf, "y")
    second = library.store.put_blob_file(make_gguf(vocab=200))
    blob = library.resolve("y").model_digest
    with pytest.raises(UnsupportedFeature, match="only one GGUF"):
        library.create("x", files={"a.gguf": blob, "b.gguf": second.digest})


def test_copy_and_delete(library: ModelLibrary, tiny_gguf: Path) -> None:
    library.import_gguf(tiny_gguf, "orig")
    assert library.copy("orig", "Team/Copy:v2") == "team/copy:v2"
    assert library.resolve("team/copy:v2").model_digest == library.resolve("orig").model_digest
    assert sorted(m.name for m in library.list_models()) == ["orig:latest", "team/copy:v2"]
    assert library.delete("orig") == []  # the copy still uses every blob
    removed = library.delete("team/copy:v2")
    assert len(removed) == 2  # weights and config
    assert library.list_models() == []
    with pytest.raises(ModelNotFound, match="'orig'"):
        library.delete("orig")
    with pytest.raises(ModelNotFound):
        library.copy("orig", "x")


def test_damaged_model_is_reported(library: ModelLibrary, tiny_gguf: Path) -> None:
    library.import_gguf(tiny_gguf, "m")
    library.resolve("m").model_path.unlink()
    with pytest.raises(BlobNotFound, match="model 'm:latest' is damaged"):
        library.resolve("m")


def write_ollama_model(root: Path, parts: tuple[str, str, str, str], gguf_bytes: bytes) -> None:
    """Lay a model out exactly as Ollama writes one (blobs named sha256-<hex>)."""

    def blob(data: bytes) -> dict[str, object]:
        hex_digest = hashlib.sha256(data).hexdigest()
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "blobs" / f"sha256-{hex_digest}").write_bytes(data)
        return {"digest": f"sha256:{hex_digest}", "size": len(data)}

    model = blob(gguf_bytes)
    config = json.dumps(
        {
            "model_format": "gguf",
            "model_family": "llama",
            "model_families": ["llama"],
            "model_type": "135M",
            "file_type": "Q8_0",
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [model["digest"]]},
        }
    ).encode()
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", **model},
        {
            "mediaType": "application/vnd.ollama.image.template",
            **blob(b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>{{ end }}"),
        },
        {"mediaType": "application/vnd.ollama.image.system", **blob(b"You are a bot.")},
        {
            "mediaType": "application/vnd.ollama.image.params",
            **blob(b'{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.5}'),
        },
        {"mediaType": "application/vnd.ollama.image.license", **blob(b"Apache 2.0")},
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **blob(config)},
        "layers": layers,
    }
    path = root.joinpath("manifests", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))


def test_a_folder_written_by_ollama(tmp_path: Path, tiny_gguf: Path) -> None:
    root = tmp_path / "ollama-models"
    data = tiny_gguf.read_bytes()
    write_ollama_model(root, ("registry.ollama.ai", "library", "smollm2", "135m"), data)
    write_ollama_model(root, ("hf.co", "Someone", "Tiny-GGUF", "Q8_0"), data)
    library = ModelLibrary(LocalStore(root))
    assert sorted(m.name for m in library.list_models()) == [
        "hf.co/someone/tiny-gguf:q8_0",
        "smollm2:135m",
    ]
    summary = next(m for m in library.list_models() if m.name == "smollm2:135m")
    assert summary.details.parameter_size == "135M"  # from Ollama's config blob
    assert summary.details.quantization_level == "Q8_0"
    model = library.resolve("smollm2:135m")
    assert model.template is not None and model.template.startswith("{{ if .System }}")
    assert model.system == "You are a bot."
    assert model.parameters == {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.5}
    assert model.license == "Apache 2.0"
    resolved = library.resolve("hf.co/someone/tiny-gguf:Q8_0")
    assert resolved.model_digest == model.model_digest
    # deleting one keeps the blobs the other still uses
    library.delete("smollm2:135m")
    assert library.resolve("hf.co/someone/tiny-gguf:q8_0").model_path.is_file()


@pytest.mark.model
def test_real_model_import(library: ModelLibrary, model_path: Path) -> None:
    assert library.import_gguf(model_path, "smollm2:135m") == "smollm2:135m"
    model = library.resolve("smollm2:135m")
    assert model.details.family == "llama"
    assert model.details.parameter_size == "134.52M"
    assert model.details.quantization_level == "Q4_1"
    assert model.metadata["llama.context_length"] == 8192
    assert model.template is not None and "<|im_start|>" in model.template
    assert model.capabilities == ["completion"]
    assert model.size > model_path.stat().st_size


def test_a_text_too_large_to_read_back_is_refused_before_anything_is_written(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    library.import_gguf(tiny_gguf, "base")
    library.create("kept", from_="base", system="the system that stays")
    blobs_before = sorted(p.name for p in library.store.blobs_dir.iterdir())  # type: ignore[attr-defined]
    too_large = "x" * (MAX_TEXT_LAYER + 1)
    for changes in (
        {"system": too_large},
        {"template": too_large},
        {"license": ["fine", too_large]},
        {"messages": [{"role": "user", "content": too_large}]},
        {"parameters": {"stop": [too_large]}},
    ):
        with pytest.raises(InvalidRequest, match=f"at most {MAX_TEXT_LAYER}"):
            library.create("kept", from_="base", **changes)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="the system has"):
        library.create_from_modelfile("fresh", f"FROM {tiny_gguf}\nSYSTEM {too_large}", tmp_path)
    assert library.resolve("kept").system == "the system that stays"
    assert sorted(p.name for p in library.store.blobs_dir.iterdir()) == blobs_before  # type: ignore[attr-defined]
    assert {m.name for m in library.list_models()} == {"base:latest", "kept:latest"}
    library.create("kept", from_="base", system="x" * MAX_TEXT_LAYER)  # the limit itself is fine
    assert library.resolve("kept").system == "x" * MAX_TEXT_LAYER


def test_a_manifest_nested_too_deep_for_the_parser_is_a_damaged_model(
    library: ModelLibrary, tiny_gguf: Path
) -> None:
    library.import_gguf(tiny_gguf, "good")
    library.import_gguf(tiny_gguf, "deep")
    manifest = next(library.store.manifests_dir.rglob("deep/latest"))  # type: ignore[attr-defined]
    manifest.write_bytes(b"[" * 100_000 + b"]" * 100_000)  # RecursionError in json.loads
    assert [m.name for m in library.list_models()] == ["good:latest"]
    with pytest.raises(InvalidModelFile, match="not valid JSON"):
        library.resolve("deep")
    library.delete("deep")
    assert not manifest.exists()
    assert library.resolve("good").name == "good:latest"


def test_a_store_the_machine_refuses_is_reported_as_such(tmp_path: Path, tiny_gguf: Path) -> None:
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the models should be")
    library = ModelLibrary(LocalStore(not_a_folder), [UrlSource()])
    for attempt in (
        lambda: library.import_gguf(tiny_gguf, "x"),
        lambda: library.copy("x", "y"),
        lambda: library.put_blob_stream([b"GGUF"], "sha256:" + hashlib.sha256(b"GGUF").hexdigest()),
    ):
        with pytest.raises(StoreUnavailable, match=f"model store cannot be used: .*{not_a_folder}"):
            attempt()
    assert not_a_folder.read_text() == "a file where the models should be"


def test_a_go_template_shapes_capabilities(library: ModelLibrary, tiny_gguf: Path) -> None:
    # Ollama's Modelfiles carry Go templates: they are run, so capabilities follow them
    library.import_gguf(tiny_gguf, "base")
    events: list[PullProgress] = []
    go = "{{ if .Tools }}{{ .Tools }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>{{ .Thinking }}"
    library.create("go", from_="base", template=go, progress=events.append)
    assert not [e for e in events if e.status.startswith("warning: ")]
    model = library.resolve("go")
    assert model.template == go
    assert model.capabilities == ["completion", "tools", "thinking"]


def test_a_go_template_that_cannot_run_is_kept_with_a_warning(
    library: ModelLibrary, tiny_gguf: Path
) -> None:
    # stored (and shown), but it shapes no prompt: the warning names what cannot run
    library.import_gguf(tiny_gguf, "base")
    events: list[PullProgress] = []
    go = '{{ define "tools" }}{{ .Tools }}{{ end }}<|user|>{{ .Prompt }}{{ .Thinking }}'
    library.create("go", from_="base", template=go, progress=events.append)
    warnings = [e.status for e in events if e.status.startswith("warning: ")]
    assert len(warnings) == 1 and "{{define}}" in warnings[0]
    assert warnings == [
        "warning: "
        + go_template_note("Go template uses {{define}} (line 1), which A3S Power does not run")
    ]
    model = library.resolve("go")
    assert model.template == go
    # capabilities follow the template prompts use (the GGUF's), not the one kept
    assert model.capabilities == library.resolve("base").capabilities == ["completion"]
    events.clear()
    library.create(
        "jinja", from_="base", template="{{ messages[0].content }}", progress=events.append
    )
    assert not [e for e in events if e.status.startswith("warning: ")]


def test_a_model_written_over_leaves_no_blob_only_it_used(
    library: ModelLibrary, make_gguf: Callable[..., Path]
) -> None:
    """Overwriting by import (create), by cp and by create FROM: the replaced model's own
    blobs go at once, as a delete's do; blobs another model uses stay."""
    store = library.store
    first, second = make_gguf(vocab=300), make_gguf(vocab=301)
    library.import_gguf(first, "a:1")
    old_weights = library.resolve("a:1").model_digest
    library.import_gguf(second, "a:1")  # a:1 is now the second file
    assert not store.has_blob(old_weights)
    library.import_gguf(first, "b:1")
    library.copy("b:1", "keep:1")  # keep:1 shares b:1's weights
    library.copy("a:1", "b:1")  # b:1 replaced, but its weights are keep:1's too
    kept = library.resolve("keep:1").model_digest
    assert store.has_blob(kept)
    library.create_from_modelfile("keep:1", "FROM a:1\nSYSTEM Now a's weights.\n", first.parent)
    assert not store.has_blob(kept)  # no model uses the first file now
    assert {m.name for m in library.list_models()} == {"a:1", "b:1", "keep:1"}
    assert library.resolve("keep:1").system == "Now a's weights."
