"""``POST /v1/embeddings``: unit vectors as float lists or base64 little-endian float32."""

from __future__ import annotations

import base64
import struct
from typing import Any

from power_api_openai.validation import Fields, invalid_type
from power_core.errors import InvalidRequest
from power_core.server.disconnect import current_client_gone
from power_core.services import PowerServices
from power_core.types import EmbeddingRequest

#: OpenAI's limit on inputs per request
MAX_INPUTS = 2048


def parse_inputs(value: Any) -> list[str | list[int]]:
    """``input``: a string, strings, a token array or token arrays; none of them empty."""
    expected = "a string, an array of strings, an array of token ids or an array of token arrays"
    if value is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        items: list[str | list[int]] = [value]
    elif not isinstance(value, list):
        raise invalid_type("input", expected, value)
    elif not value:
        raise InvalidRequest("'input' must not be an empty array.", param="input")
    elif all(isinstance(item, str) for item in value):
        items = list(value)
    elif all(_is_token(item) for item in value):
        items = [list(value)]
    elif all(isinstance(item, list) and all(_is_token(t) for t in item) for item in value):
        items = [list(item) for item in value]
    else:
        raise invalid_type("input", expected, value)
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(
            f"'input' may hold at most {MAX_INPUTS} items, got {len(items)}.", param="input"
        )
    if any(len(item) == 0 for item in items):
        raise InvalidRequest(
            "'input' must not contain empty strings or token arrays.", param="input"
        )
    return items


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encode_base64(vector: list[float]) -> str:
    """The vector as base64 of little-endian float32 values (what the SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def create_embeddings(services: PowerServices, body: dict[str, Any]) -> dict[str, Any]:
    """Embed every input; ``dimensions`` truncates and renormalises (400 above the model's)."""
    fields = Fields(body)
    model = fields.model()
    inputs = parse_inputs(fields.raw("input"))
    encoding = fields.choice("encoding_format", ("float", "base64"), "float")
    dimensions = fields.integer("dimensions", 1)
    fields.string("user")
    resolved = services.library.resolve(model).name
    # OpenAI refuses an input longer than the model's context rather than cutting it
    request = EmbeddingRequest(
        model=resolved,
        inputs=inputs,
        truncate=False,
        dimensions=dimensions,
        cancelled=current_client_gone(),
    )
    result = services.embed(request)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": encode_base64(vector) if encoding == "base64" else vector,
            }
            for index, vector in enumerate(result.vectors)
        ],
        "model": resolved,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
