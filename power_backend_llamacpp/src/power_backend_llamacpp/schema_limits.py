"""How many repetitions a JSON schema may ask of the grammar that enforces it.

The schema converter writes repetitions out: ``minLength: n`` (or ``minItems``, or a
pattern's ``{n}``) becomes ``n`` copies of a rule, and the window up to ``maxLength: m``
becomes ``m - n`` optional copies, each nested in the one before. llama.cpp parses that
nesting recursively: it refused a window of 1,200 ("could not be compiled") and a window
of 30,000 overflowed its stack and killed the process; 1,000 compiled. Copies cost memory
before llama.cpp sees them: ``minLength`` 100,000,000 took 9.7 s and 4.3 GB on the engine
thread, and 1,000,000,000 exhausted the machine's memory. Both are refused here, as the
client's mistake, before the converter runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from power_core.errors import InvalidRequest

#: the widest window between a repetition's least and greatest count
MAX_REPEAT_WINDOW = 1_000
#: all the copies a schema's repetitions may ask for, added up
MAX_REPEATS = 100_000
#: stands for a count too large to matter (and too long to read as an int)
_HUGE = MAX_REPEATS * 10

_BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"))
#: ``{n}``, ``{n,}`` and ``{n,m}`` in a pattern, unless the brace is escaped
_QUANTIFIER = re.compile(r"(?<!\\)\{(\d+)(,(\d*))?\}")


def check_repetitions(schema: Any) -> None:
    """Raise :class:`InvalidRequest` if ``schema`` asks for more repetitions than its
    grammar can hold (see the module's text)."""
    total = 0
    for where, least, most in _repetitions(schema):
        if most is not None and most - least > MAX_REPEAT_WINDOW:
            raise InvalidRequest(
                f"the JSON schema allows {least} to {most} repetitions ({where}); the output "
                f"grammar supports at most {MAX_REPEAT_WINDOW} between the least and the most",
                param="json_schema",
            )
        total += max(least, most or 0)
        if total > MAX_REPEATS:
            raise InvalidRequest(
                f"the JSON schema asks for more than {MAX_REPEATS} repetitions in all "
                f"({where} among them); the output grammar cannot hold them",
                param="json_schema",
            )


def _repetitions(schema: Any) -> Iterator[tuple[str, int, int | None]]:
    """``(where, least, most)`` for every bounded repetition in ``schema``."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for low_key, high_key in _BOUNDS:
            least, most = _count(node.get(low_key)), _count(node.get(high_key))
            if least is not None or most is not None:
                yield f"{low_key}/{high_key}", least or 0, most
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            for match in _QUANTIFIER.finditer(pattern):
                least = _digits(match.group(1))
                if match.group(2) is None:
                    yield f"pattern {match.group(0)}", least, least
                else:
                    top = match.group(3)
                    yield f"pattern {match.group(0)}", least, _digits(top) if top else None
        pending.extend(node.values())


def _count(value: Any) -> int | None:
    """A schema's count as an int; ``None`` for what is not a count (the converter
    judges those)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return _HUGE
        if value.is_integer():
            return int(value)
    return None


def _digits(text: str) -> int:
    return int(text) if len(text) <= 9 else _HUGE
