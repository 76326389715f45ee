"""Small pieces every API surface's views share: compact JSON responses, and the one place
where a :class:`~power_core.errors.PowerError` raised before a response started becomes
that surface's error response."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

from flask import Response

from power_core.errors import PowerError

View = Callable[..., Response]

#: compact, UTF-8 as is, no ``NaN``/``Infinity`` (not JSON: JavaScript's and Go's parsers
#: refuse them); made once (``json.dumps`` with options builds an encoder per call)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
#: what OpenAI reports as the log-probability of a token that cannot be chosen
IMPOSSIBLE_LOGPROB = -9999.0


def compact_json(payload: Any) -> str:
    """``payload`` as compact JSON that every strict parser reads. A number that is not
    finite (a broken model's NaN embedding or log-probability) is written as ``null``,
    and minus infinity (a token that cannot be chosen) as -9999.0, as OpenAI writes it."""
    try:
        return _ENCODER.encode(payload)
    except ValueError:  # a float that JSON cannot hold: rare, so only then is it walked
        return _ENCODER.encode(_finite(payload))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return IMPOSSIBLE_LOGPROB if value == -math.inf else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact UTF-8 JSON response, keys in the order they were built (as the APIs
    this server follows send them)."""
    return Response(compact_json(body), status=status, mimetype="application/json", headers=headers)


def answering_errors_with(render: Callable[[PowerError], Response]) -> Callable[[View], View]:
    """A view decorator: a :class:`PowerError` the view raises is answered by ``render``."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except PowerError as exc:
                return render(exc)

        return run

    return decorate
