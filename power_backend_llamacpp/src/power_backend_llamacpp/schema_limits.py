"""How many repetitions a JSON schema may ask of the grammar that enforces it.

The schema converter writes repetitions out: ``minLength: n`` (or ``minItems``, or a
pattern's ``{n}``) becomes ``n`` copies of a rule, and the window up to ``maxLength: m``
becomes ``m - n`` optional copies, each nested in the one before. llama.cpp parses that
nesting recursively: it refused a window of 1,200 ("could not be compiled") and a window
of 30,000 overflowed its stack and killed the process; 1,000 compiled. Copies cost memory
before llama.cpp sees them: ``minLength`` 100,000,000 took 9.7 s and 4.3 GB on the engine
thread, and 1,000,000,000 exhausted the machine's memory (1,000,000 took 0.1 s). So:

- :func:`check_repetitions` refuses, before the converter runs, a schema whose counts
  would be too many copies or too deep a window, reading patterns' ``{n,m}`` as loosely
  as the converter does (spaces, ``+``, ``_``, an empty least);
- :func:`check_grammar_nesting` refuses the converted grammar if its parentheses nest
  deeper than llama.cpp can parse anyway, whatever in the schema made them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from power_backend_llamacpp.json_formats import format_rule
from power_core.errors import InvalidRequest

#: the widest window between a repetition's least and greatest count
MAX_REPEAT_WINDOW = 1_000
#: all the copies a schema's repetitions may ask for, added up
MAX_REPEATS = 1_000_000
#: the deepest nesting of parentheses a grammar may have (a window of 1,000 is 1,000 deep,
#: plus the groups around it)
MAX_GRAMMAR_NESTING = MAX_REPEAT_WINDOW + 64
#: the largest output grammar made from a schema (a few hundred tools' worth)
MAX_GRAMMAR_CHARS = 1 << 20
#: stands for a count too large to matter (and too long to read as an int)
_HUGE = MAX_REPEATS * 10

_BOUNDS = (("minLength", "maxLength"), ("minItems", "maxItems"))
#: a quoted literal or a character class, skipped whole (escapes included), or a
#: parenthesis: the regex engine walks the grammar, Python sees only the tokens
_GRAMMAR_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[()]')
#: keys whose values are data, not schemas: what they hold asks the grammar for nothing
_DATA_KEYS = frozenset({"default", "examples", "example", "const", "enum"})


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


def check_grammar_nesting(grammar: str) -> None:
    """Raise :class:`InvalidRequest` if the parentheses of ``grammar`` (GBNF) nest deeper
    than :data:`MAX_GRAMMAR_NESTING`, outside quoted literals and character classes."""
    depth = deepest = 0
    for token in _GRAMMAR_TOKENS.finditer(grammar):
        if token[0] == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif token[0] == ")":
            depth -= 1
    if deepest > MAX_GRAMMAR_NESTING:
        raise InvalidRequest(
            f"the JSON schema's output grammar nests {deepest} levels deep; llama.cpp "
            f"parses at most about {MAX_GRAMMAR_NESTING} (a repetition window of at most "
            f"{MAX_REPEAT_WINDOW})",
            param="json_schema",
        )


def check_grammar_text(grammar: str) -> None:
    """Raise :class:`InvalidRequest` for a grammar larger than :data:`MAX_GRAMMAR_CHARS`
    (compiled on the engine's thread, it would hold up every other request) or one that
    is not text llama.cpp can read (half of a UTF-16 surrogate pair from the schema)."""
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise InvalidRequest(
            f"the JSON schema's output grammar has {len(grammar)} characters; at most "
            f"{MAX_GRAMMAR_CHARS} are taken",
            param="json_schema",
        )
    try:
        grammar.encode()
    except UnicodeEncodeError:
        raise InvalidRequest(
            "the JSON schema holds an unpaired surrogate (half a character)", param="json_schema"
        ) from None


def schema_objects(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object in ``schema`` that is a schema (itself included), not data such as a
    ``const`` or a ``default``."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            yield node
            pending.extend(value for key, value in node.items() if key not in _DATA_KEYS)


def _repetitions(schema: Any) -> Iterator[tuple[str, int, int | None]]:
    """``(where, least, most)`` for every bounded repetition in ``schema``."""
    for node in schema_objects(schema):
        for low_key, high_key in _BOUNDS:
            if low_key == "minLength" and format_rule(node) is not None:
                continue  # its format's grammar writes it, not copies of a character
            least, most = _count(node.get(low_key)), _count(node.get(high_key))
            if least is not None or most is not None:
                yield f"{low_key}/{high_key}", least or 0, most
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            yield from _pattern_repetitions(pattern)


def _pattern_repetitions(pattern: str) -> Iterator[tuple[str, int, int | None]]:
    """The ``{n}``, ``{n,}``, ``{,m}`` and ``{n,m}`` of a regular expression, outside
    escapes and character classes, each part read as the converter reads it (``int()``
    of the stripped text)."""
    index, end = 0, len(pattern)
    while index < end:
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            index += 1
            while index < end and pattern[index] != "]":
                index += 2 if pattern[index] == "\\" else 1
        elif char == "{":
            close = pattern.find("}", index)
            if close < 0:
                return
            parts = pattern[index + 1 : close].split(",")
            if len(parts) <= 2:
                least = _number(parts[0]) if parts[0].strip() else 0
                most = least if len(parts) == 1 else _number(parts[1])
                if least is not None:
                    yield f"pattern {pattern[index : close + 1]}", least, most
            index = close
        index += 1


def _number(text: str) -> int | None:
    """``int(text.strip())`` as the converter computes it; ``None`` where that fails (the
    converter fails there too, or reads no bound)."""
    text = text.strip()
    if len(text) > 40:
        return _HUGE
    try:
        return int(text)
    except ValueError:
        return None


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
