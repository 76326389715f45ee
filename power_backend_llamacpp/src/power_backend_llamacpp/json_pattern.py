"""JSON Schema patterns rewritten for llama-cpp-python's schema converter.

The converter turns a regular expression into grammar rules almost token for token and
copies what it does not know into the grammar as it is: ``\\d`` or ``\\.`` became grammar
escapes that llama.cpp refuses, so every such schema was a 400. It also writes what a
pattern matches straight into the JSON text, where a ``"``, a backslash or a control
character (``.`` and ``[^a]`` match all three) ends the string or is not JSON. So a pattern
is rewritten first, into the part of the converter's dialect that it handles correctly:

- every escape, class and ``.`` becomes a grammar character class of what it matches
  (ECMA-262's meaning, which JSON Schema specifies: ``\\d`` and ``\\w`` are ASCII), and
  ``.`` and negated classes leave out what a JSON string cannot hold raw;
- a character that a JSON string must escape becomes its JSON escape, as a literal;
- a pattern not anchored at both ends is anchored: JSON Schema patterns match anywhere in
  the string, and a string that is wholly the pattern's match is one that satisfies it;
- what a grammar cannot express (lookarounds, ``\\b``, backreferences, Unicode property
  escapes) is refused by name.

Quantifiers pass through as written, so :mod:`~power_backend_llamacpp.schema_limits`
reads the same counts the converter builds.
"""

from __future__ import annotations

import string
from typing import NoReturn

from power_core.errors import InvalidRequest

_Ranges = list[tuple[int, int]]

_MAX_CHAR = 0x10FFFF
#: what a JSON string cannot hold unescaped (RFC 8259, and DEL as llama.cpp leaves it out)
_UNSAFE: _Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]
_CLASS_ESCAPES: dict[str, _Ranges] = {
    "d": [(0x30, 0x39)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "s": [
        (0x09, 0x0D),
        (0x20, 0x20),
        (0xA0, 0xA0),
        (0x1680, 0x1680),
        (0x2000, 0x200A),
        (0x2028, 0x2029),
        (0x202F, 0x202F),
        (0x205F, 0x205F),
        (0x3000, 0x3000),
        (0xFEFF, 0xFEFF),
    ],
}
#: what ``.`` does not match
_LINE_ENDS: _Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_CHAR_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D, "0": 0x00}
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
#: characters the converter copies into a grammar literal unchanged; any other ASCII
#: character is written as a one-character class
_PLAIN = frozenset(string.ascii_letters + string.digits + " !#%&',-/:;<=>@_~`^$")
_HEX = frozenset(string.hexdigits)


def pattern_for_converter(pattern: str) -> str:
    """``pattern`` rewritten as the anchored expression (``^...$``) from which the
    converter builds the grammar of a JSON string whose value matches ``pattern``."""
    body, alternatives = _Rewriter(pattern).rewrite()
    # the converter writes the string's quotes around the body unbracketed, and a
    # top-level "|" would take them into its first and last alternative only
    return f"^({body})$" if alternatives else f"^{body}$"


class _Rewriter:
    """One pass over a pattern, writing the converter's dialect as it reads."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0

    def refuse(self, what: str) -> NoReturn:
        raise InvalidRequest(
            f"the pattern {self.pattern!r} uses {what}, which the output grammar cannot express",
            param="json_schema",
        )

    def malformed(self, what: str) -> NoReturn:
        raise InvalidRequest(
            f"the pattern {self.pattern!r} is not a regular expression: {what} at {self.at}",
            param="json_schema",
        )

    def rewrite(self) -> tuple[str, bool]:
        """The rewritten body and whether it has alternatives at its top level."""
        p, out = self.pattern, []
        depth, alternatives = 0, False
        branch_start, can_repeat = True, False
        while self.at < len(p):
            c = p[self.at]
            if c == "^":
                # matching the whole string satisfies an anchor at the start of a branch
                if not branch_start:
                    self.refuse("'^' inside the pattern")
                self.at += 1
            elif c == "$":
                self.at += 1
                if self.at < len(p) and p[self.at] not in "|)":
                    self.refuse("'$' inside the pattern")
                can_repeat = False
            elif c == "|":
                out.append(c)
                alternatives = alternatives or depth == 0
                branch_start, can_repeat = True, False
                self.at += 1
            elif c == "(":
                out.append(self._group())
                depth += 1
                branch_start, can_repeat = True, False
            elif c == ")":
                if depth == 0:
                    self.malformed("an unopened ')'")
                out.append(c)
                depth -= 1
                branch_start, can_repeat = False, True
                self.at += 1
            elif c in "*+?" or (c == "{" and can_repeat and self._quantifier()):
                if not can_repeat:
                    self.malformed("nothing to repeat")
                end = p.index("}", self.at) + 1 if c == "{" else self.at + 1
                out.append(p[self.at : end])
                self.at = end
                if p.startswith("?", self.at):  # lazy: the same strings match
                    self.at += 1
                can_repeat = False
            else:
                out.append(self._atom())
                branch_start, can_repeat = False, True
        if depth:
            self.malformed("an unclosed '('")
        return "".join(out), alternatives

    def _group(self) -> str:
        p, at = self.pattern, self.at
        if not p.startswith("(?", at):
            self.at += 1
        elif p.startswith(("(?=", "(?!"), at):
            self.refuse("a lookahead")
        elif p.startswith(("(?<=", "(?<!"), at):
            self.refuse("a lookbehind")
        elif p.startswith("(?:", at):
            self.at += 3
        elif p.startswith(("(?<", "(?P<"), at) and ">" in p[at:]:  # a named group
            self.at = p.index(">", at) + 1
        else:
            self.refuse("a group option '(?'")
        return "("

    def _quantifier(self) -> bool:
        """Whether a ``{...}`` quantifier starts here, read as loosely as the converter
        reads one (otherwise the brace is a literal, as in ECMA-262)."""
        close = self.pattern.find("}", self.at)
        if close < 0:
            return False
        parts = [part.strip() for part in self.pattern[self.at + 1 : close].split(",")]
        if len(parts) > 2 or (not parts[0] and len(parts) == 1):
            return False
        try:
            [int(part) for part in parts if part]
        except ValueError:
            return False
        return True

    def _atom(self) -> str:
        p = self.pattern
        c = p[self.at]
        if c == ".":
            self.at += 1
            return _class(_LINE_ENDS, negated=True)
        if c == "[":
            return self._bracket()
        if c != "\\":
            self.at += 1
            return _literal(ord(c))
        kind = p[self.at + 1 : self.at + 2]
        if not kind:
            self.malformed("a lone '\\'")
        if kind.lower() in _CLASS_ESCAPES:
            self.at += 2
            return _class(_CLASS_ESCAPES[kind.lower()], negated=kind.isupper())
        if kind in ("b", "B"):
            self.refuse("a word boundary (\\b or \\B)")
        if kind in "123456789" or p.startswith("\\k<", self.at):
            self.refuse("a backreference")
        if kind in ("p", "P") and p.startswith("{", self.at + 2):
            self.refuse("a Unicode property escape (\\p{...})")
        return _literal(self._escaped())

    def _escaped(self) -> int:
        """The character of the escape at ``self.at`` (past it after)."""
        p = self.pattern
        if self.at + 1 >= len(p):
            self.malformed("a lone '\\'")
        kind = p[self.at + 1]
        self.at += 2
        if kind in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[kind]
        if kind == "c" and p[self.at : self.at + 1].isalpha() and p[self.at].isascii():
            self.at += 1
            return ord(p[self.at - 1]) % 32
        if kind == "u" and p.startswith("{", self.at) and "}" in p[self.at :]:
            digits = p[self.at + 1 : p.index("}", self.at)]
            if digits and set(digits) <= _HEX and int(digits, 16) <= _MAX_CHAR:
                self.at += len(digits) + 2
                return int(digits, 16)
        width = {"x": 2, "u": 4}.get(kind, 0)
        digits = p[self.at : self.at + width]
        if width and len(digits) == width and set(digits) <= _HEX:
            self.at += width
            return int(digits, 16)
        return ord(kind)  # an identity escape: \. \- \/ ...

    def _bracket(self) -> str:
        p = self.pattern
        self.at += 1
        negated = p.startswith("^", self.at)
        self.at += negated
        ranges: _Ranges = []
        while self.at < len(p) and p[self.at] != "]":
            kind = p[self.at + 1 : self.at + 2] if p[self.at] == "\\" else ""
            if kind.lower() in _CLASS_ESCAPES:
                self.at += 2
                members = _CLASS_ESCAPES[kind.lower()]
                ranges += _complement(members) if kind.isupper() else members
                continue
            low = self._class_char()
            high = low
            if p.startswith("-", self.at) and p[self.at + 1 : self.at + 2] not in ("", "]"):
                self.at += 1
                high = self._class_char()
                if high < low:
                    self.malformed("a range out of order")
            ranges.append((low, high))
        if self.at >= len(p):
            self.malformed("an unclosed '['")
        self.at += 1
        return _class(ranges, negated=negated)

    def _class_char(self) -> int:
        p = self.pattern
        if p[self.at] != "\\":
            self.at += 1
            return ord(p[self.at - 1])
        if p.startswith("\\b", self.at):  # a backspace, inside a class
            self.at += 2
            return 0x08
        if p[self.at + 1 : self.at + 2].lower() in _CLASS_ESCAPES:
            self.refuse("a class escape as the end of a range")
        return self._escaped()


def _class(ranges: _Ranges, *, negated: bool) -> str:
    """What matches one character of ``ranges`` (or of all others when ``negated``),
    written into JSON text: raw where JSON allows, else as its JSON escape."""
    if negated:
        # stricter than the pattern: a JSON escape for each of these would be as valid
        excluded = _merge(ranges + _UNSAFE)
        if excluded == [(0, _MAX_CHAR)]:
            raise InvalidRequest("a pattern's class matches no character", param="json_schema")
        return "[^" + _class_text(excluded) + "]"
    safe = _merge(ranges)
    escaped = [cp for low, high in _intersect(safe, _UNSAFE) for cp in range(low, high + 1)]
    safe = _intersect(safe, _complement(_UNSAFE))
    parts = (["[" + _class_text(safe) + "]"] if safe else []) + [_json_escape(cp) for cp in escaped]
    if not parts:
        raise InvalidRequest("a pattern's class matches no character", param="json_schema")
    return parts[0] if len(parts) == 1 and safe else "(" + "|".join(parts) + ")"


def _literal(cp: int) -> str:
    char = chr(cp)
    if char in _PLAIN or cp > 0x9F:
        return char
    if _intersect([(cp, cp)], _UNSAFE):
        return "(" + _json_escape(cp) + ")"
    return "[" + _class_char(cp) + "]"


def _json_escape(cp: int) -> str:
    """The JSON escape of ``cp``, in the converter's dialect (where ``\\\\`` and ``\\"`` are
    copied into the grammar literal as they are, so mean one backslash and one quote)."""
    text = _JSON_ESCAPES.get(chr(cp), f"\\u{cp:04x}")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _class_text(ranges: _Ranges) -> str:
    return "".join(
        _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}"
        for low, high in ranges
    )


def _class_char(cp: int) -> str:
    """``cp`` as llama.cpp's grammar parser reads it inside ``[...]``."""
    if chr(cp) in string.ascii_letters + string.digits:
        return chr(cp)
    return f"\\x{cp:02X}" if cp < 0x100 else f"\\u{cp:04X}" if cp < 0x10000 else f"\\U{cp:08X}"


def _merge(ranges: _Ranges) -> _Ranges:
    merged: _Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: _Ranges) -> _Ranges:
    result, start = [], 0
    for low, high in _merge(ranges):
        if low > start:
            result.append((start, low - 1))
        start = high + 1
    return result + ([(start, _MAX_CHAR)] if start <= _MAX_CHAR else [])


def _intersect(a: _Ranges, b: _Ranges) -> _Ranges:
    return [
        (max(low, other_low), min(high, other_high))
        for low, high in _merge(a)
        for other_low, other_high in _merge(b)
        if max(low, other_low) <= min(high, other_high)
    ]
