"""Grammars for the string formats Pydantic's types declare and the converter leaves open:
``email`` (``EmailStr``), ``uri`` (``AnyUrl``, ``HttpUrl``), ``hostname`` and ``ipv4``
(``IPv4Address``). llama-cpp-python's converter knows ``date``, ``time``, ``date-time`` and
``uuid`` only, so a model could answer an ``HttpUrl`` field with "see the website" and the
client's validation failed.

The grammars are the common shapes, not every string an RFC allows: an address is dotted
atoms, ``@`` and a domain with a top-level name of letters; a URI is a scheme, ``://``, a
host (a name, an IPv4 address or a bracketed IPv6 one), an optional port and an optional
path, query and fragment of URI characters.
"""

from __future__ import annotations

from typing import Any

from llama_cpp.llama_grammar import BuiltinRule

#: the rules' names, made unlike a property's rule name (a property's rule takes its name)
_PREFIX = "json-format-"
_LABEL = _PREFIX + "label"
_HOST = _PREFIX + "hostname"
_IPV4 = _PREFIX + "ipv4"
_OCTET = _PREFIX + "octet"

_RULES = {
    _LABEL: BuiltinRule("[A-Za-z0-9] ([A-Za-z0-9-]* [A-Za-z0-9])?", []),
    _HOST: BuiltinRule(f'{_LABEL} ("." {_LABEL})*', [_LABEL]),
    _OCTET: BuiltinRule('"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9]? [0-9]', []),
    _IPV4: BuiltinRule(f'{_OCTET} "." {_OCTET} "." {_OCTET} "." {_OCTET}', [_OCTET]),
    _PREFIX + "email": BuiltinRule(
        "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+ (\".\" [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)* "
        f'"@" ({_LABEL} ".")+ [A-Za-z] [A-Za-z]+',
        [_LABEL],
    ),
    _PREFIX + "uri": BuiltinRule(
        '[a-z] [a-z0-9+-]{0,15} "://" '
        f'({_HOST} | {_IPV4} | "[" [0-9A-Fa-f:.]+ "]") (":" [0-9]{{1,5}})? '
        "([/?#] [A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?",
        [_HOST, _IPV4],
    ),
}

#: the formats these grammars write, by JSON Schema's name
FORMATS = {
    "email": _PREFIX + "email",
    "uri": _PREFIX + "uri",
    "hostname": _HOST,
    "ipv4": _IPV4,
}


#: keywords that decide a string before its format does
_DECIDED_BEFORE = frozenset({"$ref", "oneOf", "anyOf", "const", "enum", "pattern"})


def format_rule(schema: dict[str, Any]) -> str | None:
    """The name of the rule that writes ``schema``'s value as a JSON string of its format,
    when one of these grammars writes it; its ``minLength`` and ``maxLength`` then go
    unenforced, as the format decides the shape (Pydantic's ``HttpUrl`` allows 1 to 2,083
    characters, a window too wide for a grammar to count)."""
    kind, name = schema.get("type"), schema.get("format")
    if kind not in (None, "string") or not isinstance(name, str) or name not in FORMATS:
        return None
    return None if _DECIDED_BEFORE & schema.keys() else FORMATS[name] + "-string"


def format_rules() -> dict[str, BuiltinRule]:
    """Every rule, by name, each ``<format>-string`` quoting its format's value as a JSON
    string, for the converter's primitives."""
    quoted = {
        f"{rule}-string": BuiltinRule(f'"\\"" {rule} "\\"" space', [rule])
        for rule in FORMATS.values()
    }
    return {**_RULES, **quoted}
