"""Grammars for JSON integers between bounds (``minimum``, ``maximum`` and the exclusive ones).

llama-cpp-python's schema converter ignores an integer's bounds, so ``Field(ge=1, le=5)``
let a model answer 7 and the client's validation fail. llama.cpp's own converter and
Ollama's structured outputs enforce them. A range of decimal numbers is written as
alternatives, one for each count of digits, each split by leading digits into spans the
grammar can say with character classes (1-9, then 10-99, then 100-137 as "1" [0-2] [0-9]
and "13" [0-7]). Integers keep the converter's 16 digits at most.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind

#: the largest integer the converter's ``integral-part`` allows: 16 digits
LARGEST = 10**16 - 1
BOUND_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})


def integer_bounds(schema: Mapping[str, Any]) -> tuple[int, int]:
    """The smallest and largest integer ``schema`` allows, within the 16-digit limit.

    Raises :class:`InvalidRequest` for a bound that is not a number, or for bounds no
    integer satisfies."""
    low, high = -LARGEST, LARGEST
    exclusive_low = schema.get("exclusiveMinimum")
    exclusive_high = schema.get("exclusiveMaximum")
    if schema.get("minimum") is not None:  # null counts as absent, as for every keyword
        # JSON Schema draft 4 spells an exclusive bound as a flag beside the bound
        excluded = exclusive_low is True
        low = max(low, _lowest_above(_bound(schema, "minimum"), excluded))
    if exclusive_low is not None and not isinstance(exclusive_low, bool):
        low = max(low, _lowest_above(_bound(schema, "exclusiveMinimum"), True))
    if schema.get("maximum") is not None:
        excluded = exclusive_high is True
        high = min(high, -_lowest_above(-_bound(schema, "maximum"), excluded))
    if exclusive_high is not None and not isinstance(exclusive_high, bool):
        high = min(high, -_lowest_above(-_bound(schema, "exclusiveMaximum"), True))
    if low > high:
        bounds = {key: schema[key] for key in sorted(BOUND_KEYWORDS & schema.keys())}
        beyond = low > LARGEST or high < -LARGEST  # past what the grammar writes
        which = "integer of at most 16 digits" if beyond else "integer"
        raise InvalidRequest(
            f"no {which} satisfies the bounds {json.dumps(bounds)}", param="json_schema"
        )
    return low, high


def integer_range_rule(low: int, high: int) -> str:
    """A grammar expression for the integers ``low`` to ``high``, written without
    leading zeros (and without ``-0``), as JSON writes them."""
    alternatives = []
    if low < 0:
        negatives = _magnitudes(max(1, -high), -low)
        alternatives.append(f'"-" ({negatives})')
    if high >= 0:
        alternatives.append(_magnitudes(max(0, low), high))
    return " | ".join(alternatives)


def _bound(schema: Mapping[str, Any], keyword: str) -> float:
    value = schema[keyword]
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequest(
            f"an integer's {keyword} must be a number, not {json_kind(value)}",
            param="json_schema",
        )
    return value


def _lowest_above(bound: float, excluded: bool) -> int:
    """The lowest integer at or (when ``excluded``) strictly above ``bound``, clamped to
    the digits the grammar allows."""
    if bound == math.inf or bound > LARGEST:
        return LARGEST + 1  # beyond any allowed integer: the bounds then admit none
    if bound == -math.inf or bound < -LARGEST:
        return -LARGEST
    lowest = math.floor(bound) + 1 if excluded else math.ceil(bound)
    return int(lowest)


def _magnitudes(low: int, high: int) -> str:
    """Alternatives for the non-negative integers ``low`` to ``high`` (``low <= high``)."""
    spans = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = low if digits == len(str(low)) else 10 ** (digits - 1)
        last = high if digits == len(str(high)) else 10**digits - 1
        spans.extend(_same_length(str(first), str(last)))
    return " | ".join(spans)


def _same_length(low: str, high: str) -> list[str]:
    """Alternatives for the numbers ``low`` to ``high``, both with the same count of
    digits, as sequences of literal digits and digit classes."""
    if low == high:
        return [f'"{low}"']
    if len(low) == 1:
        return [f"[{low}-{high}]"]
    rest = len(low) - 1
    if low[0] == high[0]:
        return [_after(low[0], low[1:], high[1:])]
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [f"[{low[0]}-{high[0]}]" + _any_digits(rest)]
    spans = [_after(low[0], low[1:], "9" * rest)]
    if int(low[0]) + 1 <= int(high[0]) - 1:
        spans.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}]" + _any_digits(rest))
    spans.append(_after(high[0], "0" * rest, high[1:]))
    return spans


def _after(digit: str, low: str, high: str) -> str:
    """``digit`` followed by the digits ``low`` to ``high``."""
    return f'"{digit}" (' + " | ".join(_same_length(low, high)) + ")"


def _any_digits(count: int) -> str:
    return " [0-9]" * count
