"""Model names suggested by a download's file name."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from power_core.gguf import FILE_TYPE_NAMES
from power_core.names import MAX_PART_LENGTH, is_model_name

_QUANTS = sorted({name.lower() for name in FILE_TYPE_NAMES.values()}, key=len, reverse=True)
_SUFFIX = re.compile(r"(.+?)[._-](" + "|".join(re.escape(q) for q in _QUANTS) + r")")
_INVALID = re.compile(r"[^a-z0-9_.\-]+")


def _clean(part: str) -> str:
    part = _INVALID.sub("-", part.lower())
    part = re.sub(r"\.{2,}", ".", part).strip(".-")
    return part[:MAX_PART_LENGTH].strip(".-")


def suggest_model_name(url: str) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``smollm2-135m-instruct:q4_1``.

    The file name without ``.gguf`` becomes the model; a trailing quantization level
    (``Q4_K_M``, ``F16``, ...) becomes the tag, as on Ollama's library. Falls back to
    ``model:latest`` when nothing usable is left.
    """
    path = unquote(urlsplit(url).path)
    stem = path.rsplit("/", 1)[-1]
    if stem.lower().endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    tag = "latest"
    match = _SUFFIX.fullmatch(stem.lower())
    if match is not None:
        stem, tag = match.group(1), match.group(2)
    model = _clean(stem)
    name = f"{model}:{tag}"
    return name if model and is_model_name(name) else "model:latest"


def file_label(url: str) -> str:
    """The file name in ``url``, as progress reports name a download (``pulling NAME``)."""
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name[:80] or "model"
