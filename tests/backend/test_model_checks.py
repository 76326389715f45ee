"""Header values llama.cpp aborts on are named (model_checks.py), and only those: files
that llama.cpp loads are not refused. Tiny GGUFs written here; the same checks against the
real model, over HTTP, in tests/api_ollama/test_hostile_files.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from power_backend_llamacpp.model_checks import projector_problem, weights_problem


def weights(path: Path, tokens: list[bytes], **values: int | float) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(int(values.pop("block_count", 2)))
    for key, value in values.items():
        if isinstance(value, float):
            writer.add_float32(f"llama.{key}", value)
        else:
            writer.add_uint32(f"llama.{key}", value)
    writer.add_token_list(tokens)
    writer.add_tensor("token_embd.weight", np.ones((len(tokens), 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def projector(path: Path, kind: str, **sizes: Any) -> Path:
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", kind)
    for key, value in sizes.items():
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_tensor("v.patch_embd.weight", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


PLAIN = [b"a", b"b", b"<s>"]


@pytest.mark.parametrize(
    ("tokens", "values", "problem"),
    [
        (PLAIN, {}, None),
        # two empty tokens are renamed by llama.cpp ([EMPTY_<id>]): no clash
        ([b"", b"", b"a"], {}, None),
        # bytes that are not UTF-8 differ though they decode alike (replacement characters)
        ([b"\xff", b"\xfe", "\ufffd".encode()], {}, None),
        ([b"a", b"b", b"a"], {}, "holds the token 'a' more than once"),
        (PLAIN, {"block_count": 513}, "block_count is 513; llama.cpp loads 1 to 512"),
        (PLAIN, {"block_count": 0}, "block_count is 0"),
        (PLAIN, {"attention.layer_norm_rms_epsilon": float("inf")}, "it must be a finite"),
        (PLAIN, {"attention.layer_norm_epsilon": -1e-5}, "at least 0"),
        (PLAIN, {"expert_count": 8, "expert_used_count": 9}, "expert_used_count is 9"),
        (PLAIN, {"expert_count": 8, "expert_used_count": 0}, "expert_used_count is 0"),
        (PLAIN, {"expert_count": 8, "expert_used_count": 2}, None),
        (PLAIN, {"nextn_predict_layers": 3}, "nextn_predict_layers (3) is more than its 2"),
    ],
    ids=[
        "plain",
        "empty-tokens",
        "undecodable-tokens",
        "token-twice",
        "too-many-blocks",
        "no-blocks",
        "infinite-epsilon",
        "negative-epsilon",
        "too-many-experts-used",
        "no-expert-used",
        "experts",
        "nextn",
    ],
)
def test_weights(
    tmp_path: Path, tokens: list[bytes], values: dict[str, Any], problem: str | None
) -> None:
    found = weights_problem(weights(tmp_path / "w.gguf", tokens, **values))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("kind", "sizes", "problem"),
    [
        ("mlp", {"image_size": 336, "patch_size": 14}, None),
        ("mlp", {"image_size": 0, "patch_size": 14}, "image_size is 0, less than one patch"),
        ("gemma3", {"image_size": 8, "patch_size": 14}, "for a 'gemma3' projector"),
        # dynamic resolution (dots.ocr writes 0): it warms up on an image of its own size
        ("dots_ocr", {"image_size": 0, "patch_size": 14}, None),
        ("qwen2vl_merger", {"image_size": 0, "patch_size": 0}, "patch_size is 0"),
    ],
)
def test_projectors(tmp_path: Path, kind: str, sizes: dict[str, int], problem: str | None) -> None:
    found = projector_problem(projector(tmp_path / f"{kind}.gguf", kind, **sizes))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_file_changed_in_place_is_read_again(tmp_path: Path) -> None:
    path = weights(tmp_path / "w.gguf", PLAIN)
    assert weights_problem(path) is None
    weights(path, [b"a", b"a", b"b", b"c"])  # another size: another verdict
    assert weights_problem(path) is not None
    assert weights_problem(tmp_path / "gone.gguf") is None  # the load says it is missing


def test_load_failures_say_whose_fault_without_the_files_place() -> None:
    from power_backend_llamacpp.backend import _load_failure
    from power_core.errors import InvalidModelFile, ModelLoadFailed

    where = Path("/srv/models/blobs/sha256-abc")
    refused = _load_failure(
        "m",
        where,
        [
            "gguf_init_from_file_impl: duplicate tensor name 'x' for tensors 0 and 1",
            f"llama_model_load: error loading model: llama_model_loader: failed to load "
            f"model from {where}",
            "llama_model_load_from_file_impl: failed to load model",
        ],
    )
    assert isinstance(refused, InvalidModelFile)
    assert (
        refused.message
        == "llama.cpp cannot load 'm': duplicate tensor name 'x' for tensors 0 and 1"
    )
    short = _load_failure(
        "m", where, ["llama_model_load: error loading model: unable to allocate CPU buffer"]
    )
    assert isinstance(short, ModelLoadFailed)  # the machine's memory, not the file
    opened = _load_failure(
        "m", where, [f"llama_model_load: error loading model: failed to open {where}: EIO"]
    )
    assert isinstance(opened, ModelLoadFailed) and str(where) not in opened.message
