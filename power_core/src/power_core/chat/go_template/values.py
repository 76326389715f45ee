"""Go values as a template sees them, and how Go prints them.

Python stands in for Go: ``str``, ``int`` (Go's ``int``), ``float`` (``float64``), ``bool``,
``None`` (a nil interface), ``list`` (a slice), ``dict`` (a map, ranged and printed in key
order), ``bytes`` (a ``[]byte``). :class:`GoStruct`, :class:`GoList` and :class:`GoMap`
carry what plain Python values cannot: field names, JSON tags, nil-ness and ``String()``
methods, so Ollama's types print the way they do in Ollama. :data:`NO_VALUE` is Go's
invalid value (a missing key read through a variable prints ``<no value>``).

:func:`go_text` is ``fmt``'s ``%v``; :func:`go_json` is ``encoding/json``'s ``Marshal``
(keys of maps sorted, ``<``, ``>`` and ``&`` escaped as Go escapes them).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


#: Go's invalid ``reflect.Value``: what a field of nothing is
NO_VALUE: Any = _NoValue()

#: a Go ``String()`` method: the value's text when printed
StringMethod = Callable[[Any], str]


@dataclass(eq=False)
class GoStruct:
    """A Go struct: ``fields`` in declaration order. ``json_fields`` gives each field's JSON
    key and whether it is ``omitempty`` (``None``: every field under its Go name)."""

    type_name: str
    fields: dict[str, Any]
    json_fields: tuple[tuple[str, str, bool], ...] | None = None
    string_method: StringMethod | None = None
    #: a ``MarshalJSON`` method: the value to encode instead of the fields
    json_method: Callable[[Any], Any] | None = None


class GoList(list[Any]):
    """A Go slice with what a ``list`` lacks: whether it is nil (JSON ``null``), and the
    ``String()``/``MarshalJSON`` methods of its named type."""

    def __init__(
        self,
        items: Iterable[Any] = (),
        *,
        nil: bool = False,
        string_method: StringMethod | None = None,
        json_method: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(items)
        self.nil = nil and not self
        self.string_method = string_method
        self.json_method = json_method


class GoMap(dict[str, Any]):
    """A Go map with string keys: a missing key reads as ``zero`` (Ollama runs templates
    with ``missingkey=zero``); ``ordered`` keeps insertion order (Ollama's ordered maps)
    where a Go map sorts its keys."""

    def __init__(
        self,
        items: dict[str, Any] | None = None,
        *,
        nil: bool = False,
        ordered: bool = False,
        zero: Callable[[], Any] | None = None,
        string_method: StringMethod | None = None,
    ) -> None:
        super().__init__(items or {})
        self.nil = nil and not self
        self.ordered = ordered
        self.zero = zero
        self.string_method = string_method


@dataclass
class TemplateData:
    """The ``map[string]any`` a template runs with (what ``$`` is)."""

    values: GoMap = field(default_factory=GoMap)


def is_true(value: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | bytes | list | dict):
        return len(value) > 0
    return True


def map_items(value: dict[str, Any]) -> list[tuple[str, Any]]:
    """A map's entries in the order Go ranges over them: sorted by key (Ollama's ordered
    maps: as inserted)."""
    if isinstance(value, GoMap) and value.ordered:
        return list(value.items())
    return sorted(value.items(), key=lambda item: _sort_key(item[0]))


def _sort_key(key: Any) -> Any:
    return key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key


# ----------------------------------------------------------------------------- printing


def go_text(value: Any) -> str:
    """``fmt.Sprint(value)``: how Go prints one value (``%v``)."""
    if value is NO_VALUE:
        return "<invalid reflect.Value>"
    if value is None:
        return "<nil>"
    method = getattr(value, "string_method", None)
    if method is not None:
        return method(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(go_text(v) for v in value.fields.values()) + "}"
    if isinstance(value, list):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_text(k)}:{go_text(v)}" for k, v in map_items(value)) + "]"
    return str(value)


def type_name(value: Any) -> str:
    """Go's name for the type of ``value``, as error messages and ``%T`` show it."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    if isinstance(value, GoStruct):
        return value.type_name
    for kind, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "float64"),
        (str, "string"),
        (bytes, "[]uint8"),
        (list, "[]interface {}"),
        (dict, "map[string]interface {}"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of a finite, positive float and where its point goes:
    ``value == 0.DIGITS * 10**point``."""
    _sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    return digits, len(digits) + exponent


def _exponent_form(digits: str, point: int, sign: str) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _point_form(digits: str, point: int, sign: str) -> str:
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_float(value: float) -> str:
    """A float64 as ``%v`` prints it (``strconv``'s shortest ``%g``: ``1e+06``, ``0.5``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(abs(value))
    if not -4 <= point - 1 < 6:  # %g's threshold when the precision is the shortest
        return _exponent_form(digits, point, sign)
    return _point_form(digits, point, sign)


# ----------------------------------------------------------------------------- JSON


class UnsupportedJSON(ValueError):
    """A value ``encoding/json`` refuses (NaN, infinities)."""


def go_json(value: Any) -> str:
    """``json.Marshal(value)`` as Go writes it."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    method = getattr(value, "json_method", None)
    if method is not None:
        _encode(method(value), out)
    elif value is None or value is NO_VALUE or getattr(value, "nil", False):
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_json_float(value))
    elif isinstance(value, str):
        out.append(json_string(value))
    elif isinstance(value, bytes):
        out.append('"' + base64.b64encode(value).decode("ascii") + '"')
    elif isinstance(value, GoStruct):
        _encode_struct(value, out)
    elif isinstance(value, dict):
        _encode_object(map_items(value), out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise UnsupportedJSON(f"json: unsupported type {type_name(value)}")


def _encode_struct(value: GoStruct, out: list[str]) -> None:
    spec = value.json_fields or tuple((name, name, False) for name in value.fields)
    entries = [
        (key, value.fields[name])
        for name, key, omitempty in spec
        if not (omitempty and _is_empty(value.fields[name]))
    ]
    _encode_object(entries, out)


def _encode_object(entries: list[tuple[str, Any]], out: list[str]) -> None:
    out.append("{")
    for i, (key, item) in enumerate(entries):
        if i:
            out.append(",")
        out.append(json_string(key))
        out.append(":")
        _encode(item, out)
    out.append("}")


def _is_empty(value: Any) -> bool:
    """What ``omitempty`` leaves out: false, 0, "", nil, and empty slices and maps."""
    if value is None or value is NO_VALUE:
        return True
    if isinstance(value, bool | int | float):
        return not value
    if isinstance(value, str | bytes | list | dict):
        return len(value) == 0
    return False


def _json_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise UnsupportedJSON(f"json: unsupported value: {go_float(value)}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _digits(abs(value))
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = _exponent_form(digits, point, sign)
        # Go writes e-7 where %e has e-07
        return text[:-2] + text[-1] if text[-3:-1] == "-0" else text
    return _point_form(digits, point, sign)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_ESCAPES.update({"\b": "\\b", "\f": "\\f"})


def json_string(text: str) -> str:
    """A JSON string as Go writes it: ``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""
    out = ['"']
    for char in text:
        if char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
        elif char < " " or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            out.append("\ufffd")  # Go replaces invalid UTF-8 so
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
