"""OpenAI's Batch API: ``POST /v1/batches`` (from an uploaded file of requests, ``purpose:
batch``), ``GET /v1/batches`` (newest first, paged), ``GET /v1/batches/{id}`` and ``POST
/v1/batches/{id}/cancel``. The batches run in the server (:mod:`power_api_openai.batch_runs`).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from power_api_openai.batch_input import ENDPOINTS, MAX_INPUT_BYTES
from power_api_openai.batch_runs import BatchRuns, new_batch
from power_api_openai.batch_store import new_batch_id
from power_api_openai.item_pages import item_page
from power_api_openai.responses_request import parse_metadata
from power_api_openai.validation import Fields
from power_core.errors import InvalidRequest, NotFound


def create(runs: BatchRuns, body: dict[str, Any]) -> dict[str, Any]:
    """Start a batch of the requests in ``input_file_id`` to ``endpoint``."""
    fields = Fields(body)
    input_file_id = fields.string("input_file_id", required=True, non_empty=True) or ""
    endpoint = fields.string("endpoint", required=True) or ""
    if endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"'endpoint' must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}.",
            param="endpoint",
        )
    if fields.string("completion_window", required=True) != "24h":
        raise InvalidRequest("'completion_window' must be '24h'.", param="completion_window")
    metadata = parse_metadata(fields) if fields.has("metadata") else None
    try:
        stored = runs.files.get(input_file_id)
    except NotFound:
        raise InvalidRequest(
            f"no file with id {input_file_id!r}: upload the requests to /v1/files first.",
            param="input_file_id",
        ) from None
    if stored.bytes > MAX_INPUT_BYTES:
        raise InvalidRequest(
            f"the file {input_file_id} has {stored.bytes} bytes; a batch reads at most "
            f"{MAX_INPUT_BYTES}.",
            param="input_file_id",
        )
    if stored.purpose != "batch":
        raise InvalidRequest(
            f"the file {input_file_id} was uploaded for '{stored.purpose}'; a batch reads a "
            "file uploaded with purpose 'batch'.",
            param="input_file_id",
        )
    batch = new_batch(new_batch_id(), input_file_id, endpoint, metadata or None)
    runs.store.save(batch)
    runs.start(current_app._get_current_object(), batch["id"])  # type: ignore[attr-defined]
    return batch


def listing(runs: BatchRuns, query: dict[str, str]) -> dict[str, Any]:
    """The batches, newest first: ``after`` (a batch id) and ``limit`` (1 to 100, 20)."""
    oldest_first = runs.store.all()[::-1]
    return item_page(oldest_first, query, "the batches")
