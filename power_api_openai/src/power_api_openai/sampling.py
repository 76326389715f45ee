"""Sampling fields of a request, and OpenAI's defaults for the ones it leaves out.

Precedence, highest first: the request's own fields, then the model's Modelfile
``PARAMETER`` values, then OpenAI's defaults (:data:`OPENAI_DEFAULTS`), then the core's.
A Modelfile parameter beats OpenAI's default because whoever built the model chose it for
that model on purpose; the request beats both because the caller asked for it.
"""

from __future__ import annotations

from typing import Any

from power_api_openai.validation import Fields
from power_core.models import ResolvedModel

#: what an OpenAI client gets when it sets nothing: plain softmax sampling at temperature 1,
#: no top-k, no min-p and no repetition penalty (the core's defaults are Ollama's)
OPENAI_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
}

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def sampling_fields(fields: Fields) -> dict[str, Any]:
    """The sampling fields the request set, checked and ranged.

    Besides OpenAI's fields, ``top_k``, ``min_p``, ``typical_p``, ``repeat_penalty`` and
    ``repeat_last_n`` are read too: local servers accept them and clients send them
    through the SDK's ``extra_body``.
    """
    values: dict[str, Any] = {
        "temperature": fields.number("temperature", 0, 2),
        "top_p": fields.number("top_p", 0, 1),
        "presence_penalty": fields.number("presence_penalty", -2, 2),
        "frequency_penalty": fields.number("frequency_penalty", -2, 2),
        "seed": fields.integer("seed", INT64_MIN, INT64_MAX),
        "top_k": fields.integer("top_k", 0),
        "min_p": fields.number("min_p", 0, 1),
        "typical_p": fields.number("typical_p", 0, 1),
        "repeat_penalty": fields.number("repeat_penalty", 0),
        "repeat_last_n": fields.integer("repeat_last_n", -1),
    }
    bias = fields.logit_bias()
    if bias:
        values["logit_bias"] = bias
    return {key: value for key, value in values.items() if value is not None}


def with_openai_defaults(sampling: dict[str, Any], model: ResolvedModel) -> dict[str, Any]:
    """``sampling`` plus OpenAI's default for every field neither it nor the Modelfile sets."""
    merged = dict(sampling)
    for key, value in OPENAI_DEFAULTS.items():
        if key not in merged and key not in model.parameters:
            merged[key] = value
    return merged
