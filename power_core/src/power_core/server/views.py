"""Small pieces every API surface's views share: compact JSON responses, and the one place
where a :class:`~power_core.errors.PowerError` raised before a response started becomes
that surface's error response."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from flask import Response

from power_core.errors import PowerError

View = Callable[..., Response]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact UTF-8 JSON response, keys in the order they were built (as the APIs
    this server follows send them)."""
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


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
