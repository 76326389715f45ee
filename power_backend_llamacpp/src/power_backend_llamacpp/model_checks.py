"""Values in a GGUF header that make llama.cpp abort the process instead of failing a load.

llama.cpp checks much of a model file with ``GGML_ASSERT``, which calls ``abort()``: the
server, which runs llama.cpp in its own process, would die with every stream it serves. A
file made by a converter never holds these values; a damaged or hostile one may. Each one
found so far is refused here, before llama.cpp reads the file, with what is wrong:

* a block count over ``LLAMA_MAX_LAYERS`` (``llama-model.cpp``: ``n_layer_all <=
  LLAMA_MAX_LAYERS``), or of none; more next-token-prediction layers than blocks; experts
  of which none, or more than there are, are used (``n_expert_used <= n_expert``);
* a normalisation epsilon that is negative or not a number (``ggml-cpu/ops.cpp``: ``eps >=
  0.0f``, at the first decode);
* two tokens with the same bytes (``llama-vocab.cpp``: ``id_to_token.size() ==
  token_to_id.size()``; empty tokens are renamed ``[EMPTY_<id>]`` first, so they never
  clash);
* a projector whose patches have no pixels, or, for projectors that warm up on an image of
  their ``image_size`` (LLaVA's and the like; dynamic-resolution ones such as dots.ocr
  write 0 and warm up otherwise), one whose images have none (``ggml.c``: the
  convolution's output size, at the first encode).

The token list is read whole, as bytes (about 60 ms for 49,152 tokens), so a file's verdict
is kept for as long as the process runs, by path, size and modification time.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, TypeGuard

from power_core.gguf import read_gguf_info

#: llama.cpp's ``LLAMA_MAX_LAYERS``
MAX_LAYERS = 512
_TOKENS = "tokenizer.ggml.tokens"
#: projector types whose warm-up encodes an image of ``clip.vision.image_size`` pixels
#: square (clip.cpp; a file without a type is LLaVA's ``mlp``)
_FIXED_SIZE_PROJECTORS = frozenset(
    {"mlp", "mlp_norm", "ldp", "ldpv2", "gemma3", "idefics3", "internvl", "cogvlm"}
)
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
    try:
        stat = os.stat(path)
    except OSError:  # gone meanwhile (a delete): the load says so in its own words
        return None
    key = (f"{check.__name__}:{path}", stat.st_size, stat.st_mtime_ns)
    if key not in _verdicts:
        _verdicts[key] = check(path)
    return _verdicts[key]


def _weights_problem(path: Path) -> str | None:
    metadata = read_gguf_info(path, raw_arrays=(_TOKENS,)).metadata
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None  # llama.cpp refuses a file without one (a failed load, not an abort)
    blocks = metadata.get(f"{arch}.block_count")
    if blocks is not None and not (_is_count(blocks) and 0 < blocks <= MAX_LAYERS):
        return f"{arch}.block_count is {blocks!r}; llama.cpp loads 1 to {MAX_LAYERS} blocks"
    nextn = metadata.get(f"{arch}.nextn_predict_layers")
    if _is_count(nextn) and _is_count(blocks) and nextn > blocks:
        return f"{arch}.nextn_predict_layers ({nextn}) is more than its {blocks} blocks"
    experts, used = metadata.get(f"{arch}.expert_count"), metadata.get(f"{arch}.expert_used_count")
    if _is_count(experts) and experts > 0 and _is_count(used) and not 0 < used <= experts:
        return f"{arch}.expert_used_count is {used}; it must be 1 to its {experts} experts"
    for suffix in _EPSILON_KEYS:
        problem = _epsilon_problem(metadata, f"{arch}.{suffix}")
        if problem:
            return problem
    tokens = metadata.get(_TOKENS)
    if isinstance(tokens, list):
        # as llama.cpp reads them: an empty token becomes "[EMPTY_<id>]"
        named = [token or f"[EMPTY_{number}]".encode() for number, token in enumerate(tokens)]
        if len(set(named)) != len(named):
            seen: set[bytes] = set()
            for token in named:
                if token in seen:
                    shown = token.decode("utf-8", errors="replace")
                    return f"its vocabulary holds the token {shown!r} more than once"
                seen.add(token)
    return None


def _projector_problem(path: Path) -> str | None:
    metadata = read_gguf_info(path).metadata
    image, patch = metadata.get("clip.vision.image_size"), metadata.get("clip.vision.patch_size")
    if patch is not None and not (_is_count(patch) and patch > 0):
        return f"clip.vision.patch_size is {patch!r}; it must be a positive number of pixels"
    if image is not None and not (_is_count(image) and image >= 0):
        return f"clip.vision.image_size is {image!r}; it must be a number of pixels"
    kind = metadata.get("clip.projector_type", "mlp")
    fixed_size = kind in _FIXED_SIZE_PROJECTORS
    if fixed_size and image is not None and patch is not None and image < patch:
        return (
            f"clip.vision.image_size is {image}, less than one patch ({patch}), for a "
            f"'{kind}' projector, which reads images of that size"
        )
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


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
