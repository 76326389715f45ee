"""Values in a GGUF header that make llama.cpp abort the process instead of failing a load.

llama.cpp checks much of a model file with ``GGML_ASSERT``, which calls ``abort()``: the
server, which runs llama.cpp in its own process, would die with every stream it serves. A
file made by a converter never holds these values; a damaged or hostile one may. Each one
found so far is refused here, before llama.cpp reads the file, with what is wrong:

* a block count over ``LLAMA_MAX_LAYERS`` (``llama-model.cpp``: ``n_layer_all <=
  LLAMA_MAX_LAYERS``), or of none;
* a normalisation epsilon that is negative or not a number (``ggml-cpu/ops.cpp``: ``eps >=
  0.0f``, at the first decode);
* two tokens with the same text (``llama-vocab.cpp``: ``id_to_token.size() ==
  token_to_id.size()``);
* a projector whose images or patches have no pixels (``ggml.c``: the convolution's output
  size, at its first encode).

The token list is read whole (about 100 ms for 49,152 tokens), so a file's verdict is kept
for as long as the process runs, by path, size and modification time.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from power_core.gguf import read_gguf_info

#: llama.cpp's ``LLAMA_MAX_LAYERS``
MAX_LAYERS = 512
_EPSILON_KEYS = ("attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon")
#: verdicts on files already read: (path, size, mtime_ns) -> the problem, or None
_verdicts: dict[tuple[str, int, int], str | None] = {}


def weights_problem(path: Path) -> str | None:
    """Why llama.cpp would abort on these weights, or ``None`` when nothing known is wrong."""
    return _remembered(path, _weights_problem)


def projector_problem(path: Path) -> str | None:
    """Why llama.cpp would abort on this multimodal projector, or ``None``."""
    return _remembered(path, _projector_problem)


def _remembered(path: Path, check: Any) -> str | None:
    stat = os.stat(path)
    key = (f"{check.__name__}:{path}", stat.st_size, stat.st_mtime_ns)
    if key not in _verdicts:
        _verdicts[key] = check(path)
    return _verdicts[key]


def _weights_problem(path: Path) -> str | None:
    metadata = read_gguf_info(path, include_large_arrays=True).metadata
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None  # llama.cpp refuses a file without one (a failed load, not an abort)
    blocks = metadata.get(f"{arch}.block_count")
    if blocks is not None and not (_is_count(blocks) and 0 < blocks <= MAX_LAYERS):
        return f"{arch}.block_count is {blocks!r}; llama.cpp loads 1 to {MAX_LAYERS} blocks"
    for suffix in _EPSILON_KEYS:
        problem = _epsilon_problem(metadata, f"{arch}.{suffix}")
        if problem:
            return problem
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and len(set(tokens)) != len(tokens):
        seen: set[Any] = set()
        for token in tokens:
            if token in seen:
                return f"its vocabulary holds the token {token!r} more than once"
            seen.add(token)
    return None


def _projector_problem(path: Path) -> str | None:
    metadata = read_gguf_info(path).metadata
    sizes = {key: metadata.get(f"clip.vision.{key}") for key in ("image_size", "patch_size")}
    for key, value in sizes.items():
        if value is not None and not (_is_count(value) and value > 0):
            return f"clip.vision.{key} is {value!r}; it must be a positive number of pixels"
    image, patch = sizes["image_size"], sizes["patch_size"]
    if image is not None and patch is not None and image < patch:
        return f"clip.vision.image_size ({image}) is smaller than one patch ({patch})"
    return _epsilon_problem(metadata, "clip.vision.attention.layer_norm_epsilon")


def _epsilon_problem(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} is {value!r}, not a number"
    if not math.isfinite(value) or value < 0:
        return f"{key} is {value!r}; it must be a finite number, at least 0"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
