"""Ollama's ``options`` object, split into what the core uses and what it cannot.

Every option Ollama documents is accepted and type-checked (a wrong type is a 400 naming
the option). Sampling options go to ``GenerationRequest.sampling``, load-time ones to
``GenerationRequest.load`` (a change reloads the model), ``num_predict`` becomes
``max_tokens``, ``stop`` stays ``stop`` and ``num_keep`` is what a context shift keeps.
Options this engine has no use for are ignored with a logged warning, as are unknown keys.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from power_core.errors import InvalidRequest

log = logging.getLogger("power_api_ollama")

_INT, _FLOAT, _BOOL, _STOP = "an integer", "a number", "true or false", "a string or strings"

#: options that shape sampling, with their JSON types
SAMPLING = {
    "temperature": _FLOAT,
    "top_k": _INT,
    "top_p": _FLOAT,
    "min_p": _FLOAT,
    "typical_p": _FLOAT,
    "repeat_penalty": _FLOAT,
    "repeat_last_n": _INT,
    "presence_penalty": _FLOAT,
    "frequency_penalty": _FLOAT,
    "seed": _INT,
}
#: options that shape the loaded model
LOAD = {
    "num_ctx": _INT,
    "num_batch": _INT,
    "num_thread": _INT,
    "use_mmap": _BOOL,
    "use_mlock": _BOOL,
    "num_gpu": _INT,
    "main_gpu": _INT,
}
#: documented Ollama options this engine cannot honour
IGNORED = {
    "tfs_z": _FLOAT,
    "mirostat": _INT,
    "mirostat_tau": _FLOAT,
    "mirostat_eta": _FLOAT,
    "penalize_newline": _BOOL,
    "numa": _BOOL,
    "low_vram": _BOOL,
    "f16_kv": _BOOL,
    "logits_all": _BOOL,
    "vocab_only": _BOOL,
    "embedding_only": _BOOL,
}
_OTHER = {"num_predict": _INT, "stop": _STOP, "num_keep": _INT}
KNOWN = {**SAMPLING, **LOAD, **IGNORED, **_OTHER}


@dataclass
class ParsedOptions:
    """``options`` sorted by where each value goes in the core."""

    sampling: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    #: ``num_predict: -2``: generate until the context is full (no context shift)
    fill_context: bool = False
    #: ``num_keep``: the first tokens a context shift keeps
    keep_tokens: int | None = None


def json_text(value: Any) -> str:
    """``value`` as the client wrote it in JSON (``true``, ``null``), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _checked(key: str, kind: str, value: Any) -> Any:
    def bad() -> InvalidRequest:
        return InvalidRequest(f"option '{key}' must be {kind}, got {json_text(value)}", param=key)

    if kind == _STOP:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise bad()
        return list(values)
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise bad()
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad()
    if kind == _INT:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise bad()
            value = int(value)  # as Ollama reads a JSON number into an int option: 3.5 is 3
        return value
    if not math.isfinite(value):
        raise bad()
    return float(value)


def parse_options(options: Any) -> ParsedOptions:
    """Validate ``options`` (an object or ``null``) and sort it for the core."""
    parsed = ParsedOptions()
    if options is None:
        return parsed
    if not isinstance(options, dict):
        raise InvalidRequest("'options' must be an object", param="options")
    ignored: list[str] = []
    unknown: list[str] = []
    for key, value in options.items():
        kind = KNOWN.get(key)
        if kind is None:
            unknown.append(key)
            continue
        if value is None:
            continue
        value = _checked(key, kind, value)
        if key in SAMPLING:
            parsed.sampling[key] = value
        elif key in LOAD:
            parsed.load[key] = value
        elif key == "num_predict":
            # Ollama: 0 and -1 generate until the end, -2 until the context is full; each
            # overrides a Modelfile's num_predict, as any request option does
            parsed.max_tokens = value if value > 0 else -1
            parsed.fill_context = value == -2
        elif key == "stop":
            parsed.stop = value
        elif key == "num_keep":
            parsed.keep_tokens = value
        else:
            ignored.append(key)
    if ignored:
        log.warning("ignoring options this engine does not support: %s", ", ".join(ignored))
    if unknown:
        log.warning("ignoring unknown options: %s", ", ".join(unknown))
    return parsed
