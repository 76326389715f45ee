"""The functions a Go template can call: Go's predefined ones (``and`` and ``or``, which
need their arguments unevaluated, are in the evaluator) and those Ollama adds (``json``,
``currentDate``, ``yesterdayDate``, ``toTypeScriptType``). Each takes the evaluated
arguments and returns a value or raises :class:`FunctionError` with Go's message."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from power_core.chat.go_template.printf import go_sprintf
from power_core.chat.go_template.values import (
    NO_VALUE,
    GoMap,
    GoStruct,
    UnsupportedJSON,
    go_json,
    go_text,
    is_true,
    type_name,
)


class FunctionError(Exception):
    """A function refused its arguments (Go's ``error calling NAME: ...``)."""


#: Go's predefined functions this interpreter does not run (they need Go function values
#: or JavaScript escaping no chat template uses)
UNSUPPORTED_FUNCTIONS = frozenset({"call", "js"})


def _arity(name: str, args: tuple[Any, ...], want: int, *, at_least: bool = False) -> None:
    if len(args) < want or (not at_least and len(args) != want):
        qualifier = "at least " if at_least else ""
        raise FunctionError(
            f"wrong number of args for {name}: want {qualifier}{want} got {len(args)}"
        )


def _not(*args: Any) -> bool:
    _arity("not", args, 1)
    return not is_true(args[0])


def _len(*args: Any) -> int:
    _arity("len", args, 1)
    item = args[0]
    if item is None or item is NO_VALUE:
        raise FunctionError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))  # Go counts bytes
    if isinstance(item, bytes | list | dict):
        return len(item)
    raise FunctionError(f"len of type {type_name(item)}")


def _int_index(value: Any, length: int, cap: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FunctionError(f"cannot index slice/array with type {type_name(value)}")
    if not 0 <= value < (length if cap is None else cap + 1):
        raise FunctionError(f"index out of range: {value}")
    return value


def _index(*args: Any) -> Any:
    _arity("index", args, 1, at_least=True)
    item = args[0]
    for key in args[1:]:
        if item is None or item is NO_VALUE:
            raise FunctionError("index of untyped nil")
        if isinstance(item, str):
            item = item.encode("utf-8", "surrogatepass")[_int_index(key, len(item.encode()))]
        elif isinstance(item, bytes | list):
            item = item[_int_index(key, len(item))]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise FunctionError(f"value has type {type_name(key)}; should be string")
            if key in item:
                item = item[key]
            else:
                zero = item.zero if isinstance(item, GoMap) else None
                item = zero() if zero is not None else None
        else:
            raise FunctionError(f"can't index item of type {type_name(item)}")
    return item


def _slice(*args: Any) -> Any:
    _arity("slice", args, 1, at_least=True)
    item, indexes = args[0], args[1:]
    if item is None or item is NO_VALUE:
        raise FunctionError("slice of untyped nil")
    if len(indexes) > 3 or (len(indexes) == 3 and isinstance(item, str)):
        raise FunctionError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        data = item.encode("utf-8", "surrogatepass")
        bounds = [_int_index(i, len(data), len(data)) for i in indexes]
        return data[slice(*_checked_bounds(bounds, len(data)))].decode("utf-8", "replace")
    if not isinstance(item, list | bytes):
        raise FunctionError(f"can't slice item of type {type_name(item)}")
    bounds = [_int_index(i, len(item), len(item)) for i in indexes]
    start, stop = _checked_bounds(bounds[:2], len(item))
    return item[start:stop]


def _checked_bounds(bounds: list[int], length: int) -> tuple[int, int]:
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else length
    if len(bounds) > 2 and bounds[2] < stop:
        raise FunctionError(f"invalid slice index: {stop} > {bounds[2]}")
    if start > stop:
        raise FunctionError(f"invalid slice index: {start} > {stop}")
    return start, stop


def _kind(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "invalid"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(value, kind):
            return name
    return "other"


def _equal(left: Any, right: Any) -> bool:
    k1, k2 = _kind(left), _kind(right)
    if k1 != k2:
        if k1 != "invalid" and k2 != "invalid":
            raise FunctionError("incompatible types for comparison")
        return False
    if k1 == "invalid":
        return True
    if k1 == "other":
        if isinstance(left, list | dict) or isinstance(right, list | dict):
            raise FunctionError(
                f"non-comparable types {go_text(left)}: {type_name(left)}, "
                f"{type_name(right)}: {go_text(right)}"
            )
        return left is right
    return bool(left == right)


def _eq(*args: Any) -> bool:
    if len(args) < 2:
        raise FunctionError("missing argument for comparison")
    return any(_equal(args[0], other) for other in args[1:])


def _ne(*args: Any) -> bool:
    _arity("ne", args, 2)
    return not _equal(*args)


def _less(name: str, args: tuple[Any, ...]) -> bool:
    _arity(name, args, 2)
    left, right = args
    k1, k2 = _kind(left), _kind(right)
    if k1 in ("invalid", "other", "bool") or k2 in ("invalid", "other", "bool"):
        raise FunctionError("invalid type for comparison")
    if k1 != k2:
        raise FunctionError("incompatible types for comparison")
    return bool(left < right)


def _lt(*args: Any) -> bool:
    return _less("lt", args)


def _le(*args: Any) -> bool:
    return _less("le", args) or _equal(*args)


def _gt(*args: Any) -> bool:
    return not _le(*args)


def _ge(*args: Any) -> bool:
    return not _less("ge", args)


def _print_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # a missing value passed to a function becomes a nil interface
    return tuple(None if a is NO_VALUE else a for a in args)


def go_sprint(*args: Any) -> str:
    """``fmt.Sprint``: a space between two operands when neither is a string."""
    out: list[str] = []
    args = _print_args(args)
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_text(arg))
    return "".join(out)


def _println(*args: Any) -> str:
    return " ".join(go_text(a) for a in _print_args(args)) + "\n"


def _printf(*args: Any) -> str:
    _arity("printf", args, 1, at_least=True)
    if not isinstance(args[0], str):
        raise FunctionError(f"wrong type for value; expected string; got {type_name(args[0])}")
    return go_sprintf(args[0], _print_args(args[1:]))


def _escaper_text(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def _html(*args: Any) -> str:
    text = _escaper_text(args)
    for char, entity in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(char, entity)
    return text.replace('"', "&#34;").replace("\0", "\ufffd")


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_escaper_text(args), safe="-_.~")


def _json(*args: Any) -> str:
    _arity("json", args, 1)
    try:
        return go_json(args[0])
    except UnsupportedJSON:
        return ""  # Ollama's json ignores Marshal's error


def _dates(name: str, days_back: int) -> Callable[..., str]:
    def date_text(*args: Any) -> str:
        for arg in args:
            if not isinstance(arg, str):
                raise FunctionError(f"wrong type for value; expected string; got {type_name(arg)}")
        # Ollama accepts a format but always writes YYYY-MM-DD
        return (date.today() - timedelta(days=days_back)).isoformat()

    date_text.__name__ = name
    return date_text


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def typescript_type(value: Any) -> str:
    """Ollama's ``toTypeScriptType``: a tool property's JSON Schema type in TypeScript."""
    if not (isinstance(value, GoStruct) and value.type_name == "api.ToolProperty"):
        return "any"
    any_of = value.fields["AnyOf"]
    if any_of:
        return " | ".join(typescript_type(option) for option in any_of)
    types = list(value.fields["Type"])
    if not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") for t in types)


def _to_typescript_type(*args: Any) -> str:
    _arity("toTypeScriptType", args, 1)
    return typescript_type(args[0])


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "not": _not,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "print": go_sprint,
    "printf": _printf,
    "println": _println,
    "html": _html,
    "urlquery": _urlquery,
    "json": _json,
    "currentDate": _dates("currentDate", 0),
    "yesterdayDate": _dates("yesterdayDate", 1),
    "toTypeScriptType": _to_typescript_type,
}

#: every function a template may name: these, and the short-circuiting ``and`` and ``or``
FUNCTION_NAMES = frozenset(FUNCTIONS) | {"and", "or"}
