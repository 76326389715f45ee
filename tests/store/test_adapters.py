"""LoRA adapters in the store: Modelfile ``ADAPTER`` and JSON ``adapters`` become adapter
layers, kept by models made from them, shown by ``show``; adapters llama.cpp would refuse at
every load are refused at create, before anything is stored."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lora_files import write_lora
from power_core.errors import BlobNotFound, InvalidRequest, UnsupportedFeature
from power_core.library import ModelLibrary
from power_core.sources import PullProgress
from store.conftest import assert_store_valid, sha256_file

#: the tiny model's one multiplied weight (``write_gguf``)
TARGET = ("output.weight",)


def blob_of(library: ModelLibrary, path: Path) -> Path:
    return library.store.blob_path("sha256:" + sha256_file(path))


def blob_names(library: ModelLibrary) -> set[str]:
    folder: Path = library.store.blobs_dir  # type: ignore[attr-defined]
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def test_an_adapter_is_stored_as_a_layer_shown_and_created_again_from_show(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    adapter = write_lora(tmp_path / "style.gguf", tiny_gguf, targets=TARGET)
    events: list[PullProgress] = []
    library.create_from_modelfile(
        "styled", f"FROM {tiny_gguf}\nADAPTER ./style.gguf", tmp_path, progress=events.append
    )
    model = library.resolve("styled")
    assert model.adapters == [blob_of(library, adapter)]
    layers = library.reader.stored("styled").manifest.layers
    assert [layer.kind for layer in layers] == ["model", "adapter"]
    assert f"creating new layer sha256:{sha256_file(adapter)}" in [e.status for e in events]
    modelfile = library.describe("styled").modelfile
    assert f"\nADAPTER {blob_of(library, adapter)}\n" in modelfile
    library.create_from_modelfile("again", modelfile, tmp_path)
    assert library.resolve("again").adapters == model.adapters
    assert library.resolve("again").model_digest == model.model_digest
    assert_store_valid(library.store.root)  # type: ignore[attr-defined]


def test_a_model_made_from_one_keeps_its_adapters_and_adds_more(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    first = write_lora(tmp_path / "a.gguf", tiny_gguf, targets=TARGET)
    second = write_lora(tmp_path / "b.gguf", tiny_gguf, targets=TARGET, seed=1)
    library.create_from_modelfile("one", f"FROM {tiny_gguf}\nADAPTER a.gguf", tmp_path)
    library.create_from_modelfile("two", "FROM one\nADAPTER b.gguf\nSYSTEM hi", tmp_path)
    library.create_from_modelfile("same", "FROM one\nADAPTER a.gguf", tmp_path)
    assert library.resolve("two").adapters == [blob_of(library, first), blob_of(library, second)]
    assert library.resolve("two").system == "hi"
    # the same adapter twice is one layer
    assert library.resolve("same").adapters == [blob_of(library, first)]
    library.delete("one")
    library.delete("same")
    assert blob_of(library, first).is_file()  # "two" still has it
    library.delete("two")
    assert not any(path.stat().st_size > 100 for path in library.store.blobs_dir.iterdir())  # type: ignore[attr-defined]


def test_json_create_takes_adapters_by_digest_and_among_files(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    library.import_gguf(tiny_gguf, "base")
    weights = library.resolve("base").model_digest
    lora = write_lora(tmp_path / "a.gguf", tiny_gguf, targets=TARGET)
    adapter = library.store.put_blob_file(lora)
    library.create("by-digest", from_="base", adapters={"a.gguf": adapter.digest})
    assert library.resolve("by-digest").adapters == [library.store.blob_path(adapter.digest)]
    # Ollama's clients may upload an adapter among the model's files
    library.create("in-files", files={"model.gguf": weights, "lora.gguf": adapter.digest})
    assert library.resolve("in-files").adapters == [library.store.blob_path(adapter.digest)]
    assert library.resolve("in-files").model_digest == weights
    with pytest.raises(InvalidRequest, match="'files' holds adapters or projectors but no model"):
        library.create("x", files={"lora.gguf": adapter.digest})
    with pytest.raises(BlobNotFound, match=r"for 'b\.gguf' not found; upload it first"):
        library.create("x", from_="base", adapters={"b.gguf": "sha256:" + "1" * 64})
    text = library.put_blob_stream([b"{}"], "sha256:" + hashlib.sha256(b"{}").hexdigest())
    with pytest.raises(UnsupportedFeature, match="only GGUF adapters are supported"):
        library.create("x", from_="base", adapters={"c.json": text.digest})
    assert not library.exists("x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "qwen2"}, "is for qwen2 models; this model is llama"),
        ({"metadata": {"general.type": "model"}}, "is not an adapter"),
        ({"metadata": {"adapter.type": "control_vector"}}, "only LoRA adapters are supported"),
        (
            {"shapes": {"blk.7.attn_q.weight": (8, 8)}, "targets": ("attn_q.weight",)},
            "changes 'blk.7.attn_q.weight', which this model does not have",
        ),
        (
            {"shapes": {"output.weight": (8, 5)}},
            r"'output.weight' shaped \[8, 4\] x \[4, 5\], which does not fit the model's \[8, 4\]",
        ),
        ({"halves": ("lora_a",)}, "has no 'output.weight.lora_b' to pair"),
        ({"targets": ("nothing",)}, "holds no LoRA tensors"),
    ],
)
def test_an_adapter_llama_cpp_would_refuse_is_refused_before_anything_is_stored(
    library: ModelLibrary,
    tiny_gguf: Path,
    tmp_path: Path,
    options: dict[str, Any],
    message: str,
) -> None:
    library.import_gguf(tiny_gguf, "base")
    before = blob_names(library)
    write_lora(tmp_path / "bad.gguf", tiny_gguf, **{"targets": TARGET, **options})
    with pytest.raises(InvalidRequest, match=r"adapter '\./bad\.gguf' .*" + message):
        library.create_from_modelfile("m", "FROM base\nADAPTER ./bad.gguf", tmp_path)
    assert not library.exists("m")
    assert blob_names(library) == before


def test_files_that_are_no_adapter_are_refused(
    library: ModelLibrary,
    tiny_gguf: Path,
    tmp_path: Path,
    make_gguf: Callable[..., Path],
) -> None:
    adapter = write_lora(tmp_path / "a.gguf", tiny_gguf, targets=TARGET)
    (tmp_path / "truncated.gguf").write_bytes(adapter.read_bytes()[:300])
    with pytest.raises(InvalidRequest, match=r"adapter 'truncated\.gguf': .*truncated"):
        library.create_from_modelfile("m", f"FROM {tiny_gguf}\nADAPTER truncated.gguf", tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(UnsupportedFeature, match="line 2: ADAPTER folder is a folder"):
        library.create_from_modelfile("m", f"FROM {tiny_gguf}\nADAPTER folder", tmp_path)
    with pytest.raises(InvalidRequest, match=r"a\.gguf is a LoRA adapter, not a model"):
        library.create_from_modelfile("m", "FROM a.gguf", tmp_path)
    assert library.list_models() == []
    assert blob_names(library) == set()
