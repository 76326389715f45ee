"""A tiny multimodal projector ("mmproj") GGUF with random weights, written in the tests with
the ``gguf`` package, so that image input can be tested end to end without downloading a
vision model.

It is what llama.cpp's ``clip.cpp`` loads as LLaVA's ``mlp`` projector, the simplest one: a
CLIP ViT (patch embedding, class embedding, position embeddings, pre-layernorm, transformer
blocks) whose patch features go through ``mm.0`` -> GELU -> ``mm.2`` into the text model's
embedding space. Like every mmproj file, ``general.architecture`` is ``clip`` and
``general.type`` is ``mmproj``. An image of ``IMAGE_SIZE`` pixels square (others are resized)
becomes ``N_IMAGE_TOKENS`` embeddings of ``text_embedding_length`` floats, which must equal the
text model's ``n_embd`` (576 for SmolLM2-135M) or ``mtmd_init_from_file`` fails. The LLaVA
graph runs all blocks but the last (it takes the penultimate layer's features), hence two.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import gguf
import numpy as np

IMAGE_SIZE = 32
PATCH_SIZE = 16
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
_N_EMBD = 32  # ViT width
_N_HEAD = 2
_N_FF = 64  # must differ from _N_EMBD, or clip.cpp takes ffn_up/ffn_down as swapped
_N_BLOCK = 2
_N_PROJ = 64  # hidden width of the two-layer MLP projector
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class _TinyVit:
    """A GGUF writer for a tiny CLIP-style vision tower with random weights (numpy shapes
    are the reverse of llama.cpp's: a linear layer's weight is (n_out, n_in))."""

    def __init__(self, path: Path, projector_type: str, seed: int, keys: dict[str, int]) -> None:
        self.rng = np.random.default_rng(seed)
        self.writer = gguf.GGUFWriter(str(path), "clip")
        self.writer.add_type(gguf.GGUFType.MMPROJ)
        self.writer.add_name("tiny test projector")
        self.writer.add_bool("clip.has_vision_encoder", True)
        self.writer.add_string("clip.projector_type", projector_type)
        self.writer.add_bool("clip.use_gelu", True)
        common = {
            "patch_size": PATCH_SIZE,
            "embedding_length": _N_EMBD,
            "feed_forward_length": _N_FF,
            "block_count": _N_BLOCK,
            "attention.head_count": _N_HEAD,
        }
        for key, value in {**common, **keys}.items():
            self.writer.add_uint32(f"clip.vision.{key}", value)
        self.writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
        self.writer.add_array("clip.vision.image_mean", _CLIP_MEAN)
        self.writer.add_array("clip.vision.image_std", _CLIP_STD)

    def add(self, name: str, *shape: int, scale: float = 0.02) -> None:
        self.writer.add_tensor(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def add_norm(self, name: str, width: int = _N_EMBD) -> None:
        self.writer.add_tensor(f"{name}.weight", np.ones(width, dtype=np.float32))
        self.writer.add_tensor(f"{name}.bias", np.zeros(width, dtype=np.float32))

    def add_blocks(self) -> None:
        for i in range(_N_BLOCK):
            block = f"v.blk.{i}"
            self.add_norm(f"{block}.ln1")
            self.add_norm(f"{block}.ln2")
            for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
                self.add(f"{block}.{part}.weight", _N_EMBD, _N_EMBD)
                self.add(f"{block}.{part}.bias", _N_EMBD)
            self.add(f"{block}.ffn_up.weight", _N_FF, _N_EMBD)
            self.add(f"{block}.ffn_up.bias", _N_FF)
            self.add(f"{block}.ffn_down.weight", _N_EMBD, _N_FF)
            self.add(f"{block}.ffn_down.bias", _N_EMBD)

    def close(self) -> None:
        self.writer.write_header_to_file()
        self.writer.write_kv_data_to_file()
        self.writer.write_tensors_to_file()
        self.writer.close()


def write_tiny_projector(
    path: Path, text_embedding_length: int = 576, seed: int = 0, image_size: int = IMAGE_SIZE
) -> Path:
    """Write the projector to ``path`` (about 0.3 MB of F32 weights, the same for the same
    ``seed``) and return ``path``. Images are resized to ``image_size`` pixels square, and
    each ``PATCH_SIZE`` square of it becomes a token."""
    keys = {"image_size": image_size, "projection_dim": text_embedding_length}
    vit = _TinyVit(path, "mlp", seed, keys)
    vit.add("v.patch_embd.weight", _N_EMBD, 3, PATCH_SIZE, PATCH_SIZE)
    vit.add("v.patch_embd.bias", _N_EMBD)
    vit.add("v.class_embd", _N_EMBD)
    vit.add("v.position_embd.weight", (image_size // PATCH_SIZE) ** 2 + 1, _N_EMBD)
    vit.add_norm("v.pre_ln")
    vit.add_blocks()
    # larger than the rest so that images make visibly different embeddings
    vit.add("mm.0.weight", _N_PROJ, _N_EMBD, scale=0.2)
    vit.add("mm.0.bias", _N_PROJ)
    vit.add("mm.2.weight", text_embedding_length, _N_PROJ, scale=0.1)
    vit.add("mm.2.bias", text_embedding_length)
    vit.close()
    return path


def write_tiny_slicing_projector(path: Path, text_embedding_length: int = 576) -> Path:
    """An Idefics3 (SmolVLM) projector of the same tiny size, which cuts an image larger
    than 32 pixels into slices: one image becomes several chunks, framed by SmolVLM's own
    tokens (``<global-img>``, ``<row_1_col_1>``, ...), which SmolLM2's vocabulary lacks."""
    keys = {
        "image_size": IMAGE_SIZE,
        "projection_dim": text_embedding_length,
        "projector.scale_factor": 2,
        "preproc_image_size": 2 * IMAGE_SIZE,
    }
    vit = _TinyVit(path, "idefics3", 0, keys)
    vit.add("v.patch_embd.weight", _N_EMBD, 3, PATCH_SIZE, PATCH_SIZE)
    vit.add("v.patch_embd.bias", _N_EMBD)
    vit.add("v.position_embd.weight", N_IMAGE_TOKENS, _N_EMBD)
    vit.add_blocks()
    vit.add_norm("v.post_ln")
    vit.add("mm.model.fc.weight", text_embedding_length, _N_EMBD * 4, scale=0.2)
    vit.close()
    return path


def tiny_png(seed: int, size: int = IMAGE_SIZE) -> bytes:
    """A ``size`` x ``size`` RGB PNG of random pixels (the same for the same ``seed``)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def create_seeing_model(
    server_url: str, model_path: Path, folder: Path, name: str, image_size: int = IMAGE_SIZE
) -> str:
    """Create ``name`` on a running server: ``model_path``'s weights with this projector,
    uploaded as blobs and put together by ``/api/create`` ``files``, as Ollama's clients do."""
    import hashlib

    import requests

    projector = write_tiny_projector(folder / "mmproj.gguf", image_size=image_size)
    files = {}
    for filename, path in (("model.gguf", model_path), ("mmproj.gguf", projector)):
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        with path.open("rb") as body:
            requests.post(
                f"{server_url}/api/blobs/{digest}", data=body, timeout=120
            ).raise_for_status()
        files[filename] = digest
    created = requests.post(
        f"{server_url}/api/create",
        json={"model": name, "files": files, "stream": False},
        timeout=120,
    )
    created.raise_for_status()
    return name


def ollama_chat_answer(
    server_url: str,
    model: str,
    text: str,
    image: bytes | list[bytes],
    tokens: int,
    **options: float,
) -> str:
    """What ``/api/chat`` answers, greedy, to one user message of ``text`` and ``image``: the
    answer every surface must give to the same question (with its ``options``)."""
    import base64

    import requests

    images = image if isinstance(image, list) else [image]
    encoded = [base64.b64encode(each).decode() for each in images]
    message = {"role": "user", "content": text, "images": encoded}
    answer = requests.post(
        f"{server_url}/api/chat",
        json={
            "model": model,
            "stream": False,
            "messages": [message],
            "options": {"temperature": 0, "top_k": 1, "num_predict": tokens, **options},
        },
        timeout=300,
    )
    answer.raise_for_status()
    content: str = answer.json()["message"]["content"]
    return content
