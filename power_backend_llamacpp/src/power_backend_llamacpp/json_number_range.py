"""Grammars for JSON numbers between bounds (``minimum``, ``maximum`` and the exclusive ones).

llama-cpp-python's converter, llama.cpp's own, and so Ollama leave a number's bounds to the
client's validation: ``Field(ge=0, le=1)`` on a float let a model write 1.5, and the reply
failed to parse. A bounded number is written here as a sign, an integer part and a
fraction, without an exponent. The integer parts strictly inside the bounds take any
fraction; a bound's own integer part takes the fractions on the allowed side of the bound's
fraction, matched digit by digit. Integer parts and fractions keep the converter's 16 digits
at most.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from power_backend_llamacpp.json_integer_range import BOUND_KEYWORDS, LARGEST, integer_range_rule
from power_core.errors import InvalidRequest
from power_core.json_kinds import json_kind

#: digits of a fraction, as the converter's ``decimal-part``
DIGITS = 16
_ANY_FRACTION = f'("." [0-9]{{1,{DIGITS}}})?'
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Bound:
    """One side of the numbers allowed."""

    value: Decimal
    inclusive: bool


def number_bounds(schema: Mapping[str, Any]) -> tuple[Bound | None, Bound | None]:
    """The tightest lower and upper bounds of ``schema`` (``None``: open on that side).

    Raises :class:`InvalidRequest` for a bound that is not a number, or for bounds no number
    satisfies."""
    low: Bound | None = None
    high: Bound | None = None
    exclusive_low = schema.get("exclusiveMinimum")
    exclusive_high = schema.get("exclusiveMaximum")
    if schema.get("minimum") is not None:  # null counts as absent, as for every keyword
        # JSON Schema draft 4 spells an exclusive bound as a flag beside the bound
        low = _tighter(low, _bound(schema, "minimum", exclusive_low is not True), above=True)
    if exclusive_low is not None and not isinstance(exclusive_low, bool):
        low = _tighter(low, _bound(schema, "exclusiveMinimum", False), above=True)
    if schema.get("maximum") is not None:
        high = _tighter(high, _bound(schema, "maximum", exclusive_high is not True), above=False)
    if exclusive_high is not None and not isinstance(exclusive_high, bool):
        high = _tighter(high, _bound(schema, "exclusiveMaximum", False), above=False)
    if low is not None and high is not None and not _admits_some(low, high):
        raise _no_number(schema, "number")
    return low, high


def _admits_some(low: Bound, high: Bound) -> bool:
    if low.value == high.value:
        return low.inclusive and high.inclusive
    return low.value < high.value


def number_range_rule(schema: Mapping[str, Any]) -> str:
    """A grammar expression for the numbers ``schema``'s bounds allow."""
    low, high = number_bounds(schema)
    alternatives = []
    if low is None or low.value < 0:
        # the negatives, as magnitudes: -x lies between -high (or just above 0) and -low
        nearest = Bound(-high.value, high.inclusive) if high and high.value < 0 else None
        below = _magnitudes(
            nearest or Bound(_ZERO, False), Bound(-low.value, low.inclusive) if low else None
        )
        if below:
            alternatives.append(f'"-" ({below})')
    if high is None or high.value > 0 or (high.value == 0 and high.inclusive):
        start = low if low is not None and low.value >= 0 else Bound(_ZERO, True)
        above = _magnitudes(start, high)
        if above:
            alternatives.append(above)
    if not alternatives:
        raise _no_number(schema, "number of at most 16 digits")
    return " | ".join(alternatives)


def _bound(schema: Mapping[str, Any], keyword: str, inclusive: bool) -> Bound | None:
    value = schema[keyword]
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequest(
            f"a number's {keyword} must be a number, not {json_kind(value)}",
            param="json_schema",
        )
    if math.isinf(value):  # Python's JSON reads Infinity: open on its side, or nothing
        infinite_side_is_open = (value < 0) == keyword.endswith("inimum")
        return None if infinite_side_is_open else Bound(Decimal(value), inclusive)
    # as written in the JSON: 0.1, not the binary fraction nearest it
    return Bound(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), inclusive)


def _tighter(current: Bound | None, new: Bound | None, *, above: bool) -> Bound | None:
    if current is None or new is None:
        return current or new
    if current.value == new.value:
        return Bound(new.value, current.inclusive and new.inclusive)
    return current if (current.value > new.value) == above else new


def _no_number(schema: Mapping[str, Any], what: str) -> InvalidRequest:
    bounds = {key: schema[key] for key in sorted(BOUND_KEYWORDS & schema.keys())}
    message = f"no {what} satisfies the bounds {json.dumps(bounds)}"
    return InvalidRequest(message, param="json_schema")


def _split(value: Decimal) -> tuple[int, str]:
    """A non-negative finite number's integer part and its fraction's digits, without
    trailing zeros (``2.50`` is ``(2, "5")``)."""
    whole, _, fraction = format(value, "f").partition(".")
    return int(whole), fraction.rstrip("0")


def _magnitudes(low: Bound, high: Bound | None) -> str | None:
    """Alternatives for the numbers without a sign between ``low`` and ``high`` (``None``:
    up to the 16 digits of an integer part); ``None`` when there are none."""
    if low.value > LARGEST or math.isinf(low.value):
        return None
    if high is not None and (math.isinf(high.value) or high.value >= LARGEST + 1):
        high = None
    low_whole, low_fraction = _split(low.value)
    if high is None:
        high_whole, high_fraction, high_inclusive = LARGEST, None, True
    else:
        high_whole, high_fraction = _split(high.value)
        high_inclusive = high.inclusive
    if low_whole == high_whole:
        fraction = _fraction(low_fraction, low.inclusive, high_fraction, high_inclusive)
        return _with_fraction(low_whole, fraction)
    parts = [_with_fraction(low_whole, _fraction(low_fraction, low.inclusive, None, True))]
    if low_whole + 1 <= high_whole - 1:
        parts.append(f"({integer_range_rule(low_whole + 1, high_whole - 1)}) {_ANY_FRACTION}")
    parts.append(_with_fraction(high_whole, _fraction(None, True, high_fraction, high_inclusive)))
    return " | ".join(part for part in parts if part) or None


def _with_fraction(whole: int, fraction: tuple[str | None, bool]) -> str | None:
    digits, may_end = fraction
    if digits is None:
        return f'"{whole}"' if may_end else None
    return f'"{whole}" ("." ({digits})){"?" if may_end else ""}'


def _fraction(
    low: str | None, low_inclusive: bool, high: str | None, high_inclusive: bool, room: int = DIGITS
) -> tuple[str | None, bool]:
    """The fractions between ``0.low`` and ``0.high`` (``None``: that side is open), as a
    grammar for their digits (``None`` when no digits fit) and whether no digits at all (a
    fraction of 0) fit. ``room`` digits are left to write."""
    if low == "" and low_inclusive:
        low = None  # at least 0: every fraction is
    may_end = low is None and (high is None or high_inclusive or high != "")
    if room == 0:
        return None, may_end
    low_digit = None if low is None else int(low[0] if low else "0")
    high_digit = None if high is None else int(high[0] if high else "0")
    alternatives = []
    free = [
        digit
        for digit in range(10)
        if (low_digit is None or digit > low_digit) and (high_digit is None or digit < high_digit)
    ]
    if free:
        rest = f" [0-9]{{0,{room - 1}}}" if room > 1 else ""
        alternatives.append(f"[{free[0]}-{free[-1]}]{rest}")
    for digit in sorted({d for d in (low_digit, high_digit) if d is not None}):
        if (low_digit is not None and digit < low_digit) or (
            high_digit is not None and digit > high_digit
        ):
            continue
        next_low = low[1:] if low is not None and digit == low_digit else None
        next_high = high[1:] if high is not None and digit == high_digit else None
        digits, ends = _fraction(next_low, low_inclusive, next_high, high_inclusive, room - 1)
        if digits is not None:
            alternatives.append(f'"{digit}" ({digits}){"?" if ends else ""}')
        elif ends:
            alternatives.append(f'"{digit}"')
    return (" | ".join(alternatives) or None), may_end
