"""Multimodal projectors in the store: a second Modelfile ``FROM``, a ``FROM`` folder and
``/api/create`` ``files`` each store one as the model's ``projector`` layer, which gives it
the ``vision`` capability, is kept by models made from it, and is shown by ``show``; a file
that is no projector, or more than one, is refused before anything is stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from power_core.errors import InvalidRequest
from power_core.library import ModelLibrary
from store.conftest import assert_store_valid, sha256_file
from tiny_projector import write_tiny_projector


def projector_blob(library: ModelLibrary, path: Path) -> Path:
    return library.store.blob_path("sha256:" + sha256_file(path))


def test_a_second_from_is_the_projector_shown_and_created_again_from_show(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    projector = write_tiny_projector(tmp_path / "mmproj.gguf", text_embedding_length=64)
    library.create_from_modelfile(
        "seeing", f"FROM {tiny_gguf}\nFROM ./mmproj.gguf\nSYSTEM look", tmp_path
    )
    model = library.resolve("seeing")
    assert model.projector == projector_blob(library, projector)
    assert "vision" in model.capabilities
    assert "vision" not in library.resolve(library.import_gguf(tiny_gguf, "blind")).capabilities
    kinds = [layer.kind for layer in library.reader.stored("seeing").manifest.layers]
    assert kinds == ["model", "projector", "system"]
    described = library.describe("seeing")
    assert described.projector_info is not None
    assert described.projector_info["general.architecture"] == "clip"
    assert described.projector_info["clip.projector_type"] == "mlp"
    assert f"\nFROM {model.projector}\n" in described.modelfile
    library.create_from_modelfile("again", described.modelfile, tmp_path)
    assert library.resolve("again").projector == model.projector
    # a model made from it keeps it, and a new one replaces it
    library.create_from_modelfile("kept", "FROM seeing\nSYSTEM other", tmp_path)
    assert library.resolve("kept").projector == model.projector
    other = write_tiny_projector(tmp_path / "other.gguf", text_embedding_length=64, seed=1)
    library.create_from_modelfile("replaced", "FROM seeing\nFROM other.gguf", tmp_path)
    layers = library.reader.stored("replaced").manifest.layers
    assert [layer.digest for layer in layers if layer.kind == "projector"] == [
        "sha256:" + sha256_file(other)
    ]
    assert_store_valid(library.store.root)  # type: ignore[attr-defined]


def test_a_from_folder_takes_the_model_and_its_projector(
    library: ModelLibrary, make_gguf: Callable[..., Path], tmp_path: Path
) -> None:
    folder = tmp_path / "llava"
    folder.mkdir()
    weights = make_gguf("weights.gguf")
    (folder / "model.gguf").write_bytes(weights.read_bytes())
    projector = write_tiny_projector(folder / "mmproj-f32.gguf", text_embedding_length=64)
    library.create_from_modelfile("from-folder", "FROM ./llava", tmp_path)
    model = library.resolve("from-folder")
    assert model.projector == projector_blob(library, projector)
    assert model.model_digest == "sha256:" + sha256_file(weights)
    write_tiny_projector(folder / "second.gguf", text_embedding_length=64, seed=2)
    with pytest.raises(InvalidRequest, match="one GGUF model and at most one projector"):
        library.create_from_modelfile("two-projectors", "FROM ./llava", tmp_path)


def test_json_create_takes_the_projector_among_files(
    library: ModelLibrary, tiny_gguf: Path, tmp_path: Path
) -> None:
    weights = library.store.put_blob_file(tiny_gguf)
    projector = library.store.put_blob_file(
        write_tiny_projector(tmp_path / "p.gguf", text_embedding_length=64)
    )
    library.create(
        "in-files", files={"model.gguf": weights.digest, "mmproj.gguf": projector.digest}
    )
    assert library.resolve("in-files").projector == library.store.blob_path(projector.digest)
    with pytest.raises(InvalidRequest, match="holds adapters or projectors but no model"):
        library.create("x", files={"mmproj.gguf": projector.digest})
    second = library.store.put_blob_file(
        write_tiny_projector(tmp_path / "q.gguf", text_embedding_length=64, seed=3)
    )
    with pytest.raises(InvalidRequest, match="more than one projector"):
        library.create(
            "x",
            files={"m.gguf": weights.digest, "a.gguf": projector.digest, "b.gguf": second.digest},
        )
    assert not library.exists("x")


def test_a_second_from_that_is_no_projector_or_a_third_is_refused_storing_nothing(
    library: ModelLibrary, tiny_gguf: Path, make_gguf: Callable[..., Path], tmp_path: Path
) -> None:
    other_model = make_gguf("other.gguf", vocab=301)
    projector = write_tiny_projector(tmp_path / "p.gguf", text_embedding_length=64)
    with pytest.raises(InvalidRequest, match=r"line 2: FROM .*other\.gguf is not a multimodal"):
        library.create_from_modelfile("x", f"FROM {tiny_gguf}\nFROM {other_model}", tmp_path)
    with pytest.raises(InvalidRequest, match=r"line 2: FROM file not found: missing\.gguf"):
        library.create_from_modelfile("x", f"FROM {tiny_gguf}\nFROM missing.gguf", tmp_path)
    with pytest.raises(InvalidRequest, match="line 3: FROM given three times"):
        library.create_from_modelfile(
            "x", f"FROM {tiny_gguf}\nFROM {projector}\nFROM {projector}", tmp_path
        )
    with pytest.raises(InvalidRequest, match=r"p\.gguf is a multimodal projector, not a model"):
        library.create_from_modelfile("x", f"FROM {projector}", tmp_path)
    assert not library.exists("x")
    assert not (library.store.root / "blobs").exists() or not any(  # type: ignore[attr-defined]
        (library.store.root / "blobs").iterdir()  # type: ignore[attr-defined]
    )
