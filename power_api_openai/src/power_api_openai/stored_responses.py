"""``GET``/``DELETE /v1/responses/{id}``, ``/input_items`` and ``/cancel``: the responses
the server keeps (:mod:`power_api_openai.response_store`)."""

from __future__ import annotations

from typing import Any

from power_api_openai.background_responses import BackgroundRun, BackgroundRuns
from power_api_openai.item_pages import item_page
from power_api_openai.response_store import ResponseStore
from power_core.errors import InvalidRequest, NotFound

#: seconds a cancel waits for the run to stop
CANCEL_WAIT_SECONDS = 10.0


class ResponseNotFound(NotFound):
    """No response of that id is kept (never made, made with ``store: false``, deleted,
    or forgotten to make room)."""


def _not_found(response_id: str) -> ResponseNotFound:
    return ResponseNotFound(
        f"Response with id '{response_id[:80]}' not found: this server keeps the responses "
        "made with store true until it needs the room (stored_responses_bytes).",
        param="response_id",
    )


def retrieve(store: ResponseStore, runs: BackgroundRuns, response_id: str) -> dict[str, Any]:
    """The response as it stands: a background one still running, or a kept one."""
    run = runs.get(response_id)
    if run is not None and not run.done:
        return run.snapshot()
    response = store.response(response_id)
    if response is None and run is not None:  # ended, but not kept (over the store's bound)
        return run.snapshot()
    if response is None:
        raise _not_found(response_id)
    return response


def followed(runs: BackgroundRuns, response_id: str) -> BackgroundRun:
    """The background run ``GET ...?stream=true`` follows."""
    run = runs.get(response_id)
    if run is None:
        raise InvalidRequest(
            f"Response '{response_id[:80]}' cannot be streamed: only a background response "
            "can, while it runs and for 10 minutes after.",
            param="stream",
        )
    return run


def starting_after(query: dict[str, Any]) -> int:
    """``starting_after``: the sequence number the stream resumes after (-1: from the
    start)."""
    value = query.get("starting_after")
    if value is None:
        return -1
    try:
        after = int(value)
    except ValueError:
        after = -2
    if after < -1:
        raise InvalidRequest("'starting_after' must be an integer", param="starting_after")
    return after


def delete(store: ResponseStore, runs: BackgroundRuns, response_id: str) -> dict[str, Any]:
    """Let a kept response go; a background one still running is cancelled first."""
    run = runs.get(response_id)
    if run is not None and not run.done:
        _cancelled(run)
    runs.forget(response_id)
    if not store.delete(response_id) and run is None:
        raise _not_found(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def cancel(store: ResponseStore, runs: BackgroundRuns, response_id: str) -> dict[str, Any]:
    """Stop a background response (one that ended already is answered as it ended)."""
    run = runs.get(response_id)
    if run is not None:
        return _cancelled(run)
    kept = retrieve(store, runs, response_id)
    if kept.get("background"):  # it ended before: answered as it ended
        return kept
    raise InvalidRequest(
        "Only responses created with background set to true can be cancelled.",
        param="response_id",
    )


def _cancelled(run: BackgroundRun) -> dict[str, Any]:
    run.cancel()
    run.wait(CANCEL_WAIT_SECONDS)
    return run.snapshot()


def input_items(store: ResponseStore, response_id: str, query: dict[str, Any]) -> dict[str, Any]:
    """One page of a response's own input items (:func:`item_page`)."""
    items = store.input_items(response_id)
    if items is None:
        raise _not_found(response_id)
    return item_page(items, query, "this response")
