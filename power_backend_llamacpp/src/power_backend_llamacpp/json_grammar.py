"""JSON schemas to GBNF grammars: llama-cpp-python's converter, corrected where it is wrong.

llama-cpp-python's ``SchemaConverter`` is an early port of llama.cpp's converter, whose
maintained C++ llama-cpp-python does not export. It stays the converter; this subclass
overrides only what turned valid schemas that Pydantic and LangChain emit every day into
invalid JSON or a 400:

- a string could hold raw control characters (a newline inside a string is not JSON);
- ``const`` and ``enum`` values and property names were not escaped for the grammar, so a
  backslash or quote in one broke the grammar, and ``"x\\ny"`` wrote a raw newline;
- a ``$ref`` beside or below another ``$ref`` was never resolved, so a recursive model
  was a 400 that read ``'#/$defs/P'``;
- ``{}`` (any value) became an object, ``"items": {}`` was a 400 that read
  ``'prefixItems'``, and a schema of only a title or a description was "Unrecognized";
- ``"type": [...]`` kept only the types, dropping every other keyword (an object's
  properties, a string's pattern);
- an integer's ``minimum`` and ``maximum``: see
  :mod:`power_backend_llamacpp.json_integer_range`; a number's, which no converter
  enforces: :mod:`power_backend_llamacpp.json_number_range`;
- ``pattern``: see :mod:`power_backend_llamacpp.json_pattern`;
- the formats ``email``, ``uri``, ``hostname`` and ``ipv4``, which it left open: see
  :mod:`power_backend_llamacpp.json_formats`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from llama_cpp.llama_grammar import (
    INVALID_RULE_CHARS_RE,
    PRIMITIVE_RULES,
    RESERVED_NAMES,
    STRING_FORMAT_RULES,
    BuiltinRule,
    SchemaConverter,
)

from power_backend_llamacpp.json_formats import format_rule, format_rules
from power_backend_llamacpp.json_integer_range import (
    BOUND_KEYWORDS,
    integer_bounds,
    integer_range_rule,
)
from power_backend_llamacpp.json_number_range import number_range_rule
from power_backend_llamacpp.json_pattern import pattern_for_converter
from power_backend_llamacpp.schema_keywords import COUNT_KEYWORDS
from power_backend_llamacpp.schema_limits import schema_objects
from power_core.errors import InvalidRequest

#: a JSON string's character: the converter's, less the control characters JSON forbids
#: raw (and DEL, as llama.cpp's own converter leaves it out)
_STRING_CHAR = BuiltinRule(
    r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] '
    r"[0-9a-fA-F])",
    [],
)
_PRIMITIVES = {**PRIMITIVE_RULES, **STRING_FORMAT_RULES, **format_rules(), "char": _STRING_CHAR}
#: what a grammar literal cannot hold as itself
_LITERAL_SPECIALS = re.compile(r'["\\\x00-\x1F\x7F]')
_LITERAL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: keywords that describe a value without constraining it: a schema of only these is {}
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$schema",
        "$id",
        "$defs",
        "definitions",
    }
)
#: keywords the converter acts on before it looks at a list of types
_BEFORE_TYPE_LISTS = frozenset({"$ref", "oneOf", "anyOf"})
#: and before a number's type (its values, not its bounds, then decide)
_BEFORE_INTEGERS = _BEFORE_TYPE_LISTS | {"const", "enum"}
#: a non-empty stand-in for {} where the converter mistakes {} for no schema
_ANY_VALUE = {"$comment": "any JSON value"}


def json_schema_grammar(schema: Any, rule: str = "") -> str:
    """The GBNF grammar of the JSON values that satisfy ``schema``, as its rule ``root``
    (or as ``rule``, for a grammar that includes it; its other rules start with that name).

    Raises :class:`InvalidRequest` for what the grammar cannot express, and whatever the
    converter raises for what it does not support."""
    converter = JsonSchemaConverter()
    converter.visit(converter.resolve_refs(schema, ""), rule)
    return str(converter.format_grammar())


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    return JsonSchemaConverter().format_literal(text)


class JsonSchemaConverter(SchemaConverter):
    """llama-cpp-python's converter with the defects listed in the module's text fixed."""

    def __init__(self) -> None:
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        #: the rule each resolved reference is written as
        self._ref_rules: dict[str, str] = {}

    def format_literal(self, literal: str) -> str:
        return self._format_literal(literal)

    def _format_literal(self, literal: str) -> str:
        escaped = _LITERAL_SPECIALS.sub(
            lambda m: _LITERAL_ESCAPES.get(m[0], f"\\x{ord(m[0]):02X}"), literal
        )
        return f'"{escaped}"'

    def resolve_refs(self, schema: Any, url: str) -> Any:
        """Record the target of every ``$ref`` in ``schema``, wherever it is (the converter
        skipped what sat beside or below a ``$ref``). Only references into ``schema``
        itself are supported: nothing is fetched."""
        for node in schema_objects(schema):
            ref = node.get("$ref")
            # a string: "$ref" can also be a property's name, in a properties map
            if isinstance(ref, str) and ref not in self._refs:
                self._refs[ref] = _ref_target(schema, ref)
        return schema

    def _resolve_ref(self, ref: str) -> str:
        """The rule ``ref``'s target is written as. Its name is taken before the target is
        visited, so a reference to it from within (a recursive model) names that rule."""
        name = self._ref_rules.get(ref)
        if name is None:
            base = INVALID_RULE_CHARS_RE.sub("-", ref.rsplit("/", 1)[-1]).strip("-") or "ref"
            if base in RESERVED_NAMES:
                base += "-"
            # a placeholder no other rule has, so the name is this reference's alone
            name = self._add_rule(base, f"({ref})")
            self._ref_rules[ref] = name
            self._rules[name] = self.visit(self._refs[ref], name)
        return name

    def visit(self, schema: Any, name: str) -> str:
        if schema is True or (isinstance(schema, dict) and schema.keys() <= _ANNOTATIONS):
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            value = self._add_primitive("value", _PRIMITIVES["value"])
            return str(self._add_rule(rule_name, value))
        if not isinstance(schema, dict):
            raise InvalidRequest(
                f"a JSON schema must be an object or true, not {schema!r}", param="json_schema"
            )
        if schema.get("items") in ({}, True):
            schema = {**schema, "items": _ANY_VALUE}
        # counts the converter multiplies by, which JSON may write as 3.0
        if any(isinstance(schema.get(key), float) for key in COUNT_KEYWORDS):
            counts = {key: int(schema[key]) for key in COUNT_KEYWORDS if key in schema}
            schema = {**schema, **counts}
        kinds = schema.get("type")
        formatted = format_rule(schema)
        if formatted is not None:
            rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
            value = self._add_primitive(formatted, _PRIMITIVES[formatted])
            return str(self._add_rule(rule_name, value))
        bounded = kinds in ("integer", "number") and BOUND_KEYWORDS & schema.keys()
        if _BEFORE_TYPE_LISTS & schema.keys() or not (
            isinstance(kinds, list) or (bounded and not _BEFORE_INTEGERS & schema.keys())
        ):
            return str(super().visit(schema, name))
        rule_name = name + "-" if name in RESERVED_NAMES else name or "root"
        if isinstance(kinds, list):
            # each type keeps the schema's other keywords (the converter dropped them)
            alternatives = [{**schema, "type": kind} for kind in kinds]
            return str(self._add_rule(rule_name, self._generate_union_rule(name, alternatives)))
        if kinds == "number":
            return str(self._add_rule(rule_name, f"({number_range_rule(schema)}) space"))
        low, high = integer_bounds(schema)
        return str(self._add_rule(rule_name, f"({integer_range_rule(low, high)}) space"))

    def _add_primitive(self, name: str, rule: BuiltinRule) -> str:
        if rule is PRIMITIVE_RULES["char"]:
            rule = _STRING_CHAR
        key = str(self._add_rule(name, rule.content))
        for dep in rule.deps:
            if dep not in self._rules:
                self._add_primitive(dep, _PRIMITIVES[dep])
        return key

    def _visit_pattern(self, pattern: Any, name: str) -> str:
        if not isinstance(pattern, str):
            raise InvalidRequest(
                f"a pattern must be a string, not {pattern!r}", param="json_schema"
            )
        return str(super()._visit_pattern(pattern_for_converter(pattern), name))


def _ref_target(schema: Any, ref: Any) -> Any:
    """What the local reference ``ref`` (``#`` or ``#/a/b``, a JSON pointer) points at."""
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise InvalidRequest(
            f"only references within the schema ('#/...') are supported, not $ref {ref!r}",
            param="json_schema",
        )
    target = schema
    for part in ref[2:].split("/") if ref != "#" else []:
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        elif isinstance(target, dict) and key in target:
            target = target[key]
        else:
            raise InvalidRequest(
                f"the schema's $ref {ref!r} points at nothing in it", param="json_schema"
            )
    return target
