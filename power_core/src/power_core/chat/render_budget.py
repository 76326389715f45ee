"""What bounds a chat template's render, whichever language it is written in: the limits,
the :class:`RenderBudget` a render spends, and :class:`TemplateError`, a client error.

Jinja templates (:mod:`power_core.chat.sandbox`) and Go templates
(:mod:`power_core.chat.go_template`) share them; this module imports neither engine, so code
that only checks a template (the CLI's ``create``, a store's reader) does not load Jinja2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NoReturn

from power_core.errors import InvalidRequest

#: seconds one render may take
RENDER_TIME_LIMIT_S = 2.0
#: characters a render may produce beyond twice the size of its input
MAX_OUTPUT_CHARS = 1 << 20
#: nested calls (macros, recursive loops) one render may make
MAX_CALL_DEPTH = 64
#: items one ``range()`` may have
MAX_RANGE = 100_000

_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


class TemplateError(InvalidRequest):
    """A chat template is malformed, failed while rendering, or exceeded its limits."""

    code = "invalid_template"


@dataclass
class RenderBudget:
    """The limits of one render (or compile) in progress."""

    deadline: float
    max_chars: int
    depth: int = 0
    #: the seconds the deadline allowed, for the message
    limit_s: float = RENDER_TIME_LIMIT_S

    def tick(self) -> None:
        """Raise :class:`TemplateError` once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise TemplateError(f"chat template took longer than {self.limit_s:g} s to render")

    def check_size(self, value: Any) -> Any:
        """Return ``value``, or raise when it is larger than the budget allows."""
        if isinstance(value, int) and value.bit_length() > self.max_chars * 8:
            self.refuse("an integer")
        if isinstance(value, _SIZED) and len(value) > self.max_chars:
            self.refuse(f"a {type(value).__name__}")
        return value

    def check_count(self, count: int) -> None:
        """Raise when an operation would build ``count`` items or characters."""
        if count > self.max_chars:
            self.refuse("a value")

    def refuse(self, what: str) -> NoReturn:
        """Raise the error for a value over the size limit."""
        raise TemplateError(
            f"chat template built {what} larger than the limit of {self.max_chars} characters"
        )
