"""The input file of a batch: one request per line, checked before any runs.

Each line is ``{"custom_id": ..., "method": "POST", "url": <the batch's endpoint>, "body":
{...}}`` as OpenAI's Batch API takes it. A file with a line that breaks those rules fails
the whole batch with every such line named (at most :data:`MAX_ERRORS`), as OpenAI's does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: the endpoints a batch may run, as OpenAI's Batch API names them
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
#: OpenAI's limits on one batch
MAX_REQUESTS = 50_000
MAX_INPUT_BYTES = 200 << 20
#: the most line errors a failed batch lists
MAX_ERRORS = 100


@dataclass(frozen=True)
class BatchRequest:
    """One line of the input: its ``custom_id`` and the body to send."""

    custom_id: str
    body: dict[str, Any]


def read_requests(data: bytes, endpoint: str) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
    """The requests of an input file, and its errors (OpenAI's ``errors.data`` entries)."""
    requests: list[BatchRequest] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        request, error = _read_line(raw, number, endpoint, seen)
        if error is not None:
            errors.append(error)
            if len(errors) >= MAX_ERRORS:
                break
        elif request is not None:
            requests.append(request)
            seen.add(request.custom_id)
    if not requests and not errors:
        errors.append(_error("empty_file", "The input file holds no requests.", None, None))
    if len(requests) > MAX_REQUESTS:
        message = f"The input file holds {len(requests)} requests; a batch runs {MAX_REQUESTS}."
        errors.append(_error("too_many_requests", message, None, None))
    return requests, errors


def _read_line(
    raw: bytes, number: int, endpoint: str, seen: set[str]
) -> tuple[BatchRequest | None, dict[str, Any] | None]:
    try:
        line = json.loads(raw)
    except (ValueError, RecursionError):
        return None, _error("invalid_json_line", "This line is not valid JSON.", None, number)
    if not isinstance(line, dict):
        return None, _error("invalid_json_line", "This line is not a JSON object.", None, number)
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = "'custom_id' must be a non-empty string."
        return None, _error("missing_required_parameter", message, "custom_id", number)
    if custom_id in seen:
        message = f"The custom_id {custom_id[:80]!r} is on an earlier line too."
        return None, _error("duplicate_custom_id", message, "custom_id", number)
    if line.get("method") != "POST":
        return None, _error("invalid_method", "'method' must be 'POST'.", "method", number)
    if line.get("url") != endpoint:
        message = f"'url' must be the batch's endpoint, {endpoint}."
        return None, _error("mismatched_url", message, "url", number)
    body = line.get("body")
    if not isinstance(body, dict):
        message = "'body' must be the request's JSON object."
        return None, _error("missing_required_parameter", message, "body", number)
    if body.get("stream"):
        message = "Requests in a batch are answered whole: 'stream' must not be true."
        return None, _error("invalid_request", message, "body.stream", number)
    return BatchRequest(custom_id, body), None


def _error(code: str, message: str, param: str | None, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}
