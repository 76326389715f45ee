"""Splitting a Go template into text and the tokens of its actions, as Go's
``text/template/parse`` lexer does: ``{{- `` and `` -}}`` trim the whitespace beside an
action, ``{{/* */}}`` is a comment, and inside an action come fields, variables, literals,
identifiers, pipes, parentheses and declarations."""

from __future__ import annotations

import re
from dataclasses import dataclass

from power_core.chat.render_budget import TemplateError

LEFT_DELIM = "{{"
RIGHT_DELIM = "}}"
#: the characters a trim marker removes, and that separate the tokens of an action
SPACE = " \t\r\n"
KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)

_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?)"
)
_WORD = re.compile(r"[A-Za-z_0-9]+", re.UNICODE)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True)
class Token:
    """One piece of the template: ``kind`` says what it is, ``value`` its text (or, for
    ``string`` and ``char``, what it means), ``line`` where it starts, and ``spaced``
    whether whitespace comes right before it inside an action (which ends a field chain)."""

    kind: str
    value: str
    line: int
    spaced: bool = False


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``; :class:`TemplateError` for what Go's lexer refuses."""
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []
        self.trim_next_text = False
        #: newlines before ``_counted_to``, where line() last counted up to
        self._lines_before = 0
        self._counted_to = 0

    def line(self, pos: int | None = None) -> int:
        """The line ``pos`` (else the current place) is on, counting only the newlines
        since the last place asked about: tokens come in order, so lexing stays linear."""
        pos = self.pos if pos is None else pos
        if pos < self._counted_to:  # an earlier place (an error's): counted afresh
            return self.src.count("\n", 0, pos) + 1
        self._lines_before += self.src.count("\n", self._counted_to, pos)
        self._counted_to = pos
        return self._lines_before + 1

    def fail(self, message: str) -> TemplateError:
        return TemplateError(f"Go template syntax error at line {self.line()}: {message}")

    def run(self) -> list[Token]:
        while self.pos < len(self.src):
            start = self.src.find(LEFT_DELIM, self.pos)
            end = len(self.src) if start < 0 else start
            text = self.src[self.pos : end]
            trim_left = start >= 0 and _has_left_trim(self.src, start + len(LEFT_DELIM))
            if self.trim_next_text:
                text = text.lstrip(SPACE)
            if trim_left:
                text = text.rstrip(SPACE)
            if text:
                self.tokens.append(Token("text", text, self.line()))
            self.trim_next_text = False
            if start < 0:
                break
            self.pos = start + len(LEFT_DELIM) + (2 if trim_left else 0)
            self.action()
        self.tokens.append(Token("eof", "", self.line()))
        return self.tokens

    def right_delim_here(self) -> int:
        """The length of the closing delimiter at ``pos`` (with its trim marker), else 0."""
        if self.src.startswith(RIGHT_DELIM, self.pos):
            return len(RIGHT_DELIM)
        if (
            self.pos + 2 < len(self.src)
            and self.src[self.pos] in SPACE
            and self.src.startswith("-" + RIGHT_DELIM, self.pos + 1)
        ):
            return 2 + len(RIGHT_DELIM)
        return 0

    def close_action(self, length: int) -> None:
        self.trim_next_text = length > len(RIGHT_DELIM)
        self.pos += length

    def action(self) -> None:
        line = self.line()
        if self.src.startswith("/*", self.pos):
            end = self.src.find("*/", self.pos + 2)
            if end < 0:
                raise self.fail("unclosed comment")
            self.pos = end + 2
            length = self.right_delim_here()
            if not length:
                raise self.fail("comment ends before closing delimiter")
            self.close_action(length)
            return
        self.tokens.append(Token("left_delim", LEFT_DELIM, line))
        depth = 0
        spaced = False
        while True:
            if self.pos >= len(self.src):
                raise self.fail("unclosed action")
            length = self.right_delim_here()
            if length and depth == 0:
                self.tokens.append(Token("right_delim", RIGHT_DELIM, self.line()))
                self.close_action(length)
                return
            char = self.src[self.pos]
            if char in SPACE:
                while self.pos < len(self.src) and self.src[self.pos] in SPACE:
                    if self.right_delim_here() and depth == 0:
                        break
                    self.pos += 1
                spaced = True
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth < 0:
                    raise self.fail("unexpected right paren")
            self.tokens.append(self.token(char, spaced))
            spaced = False

    def token(self, char: str, spaced: bool) -> Token:
        line, start, src = self.line(), self.pos, self.src
        simple = {"(": "lparen", ")": "rparen", "|": "pipe", ",": "comma", "=": "assign"}
        if char in simple:
            self.pos += 1
            return Token(simple[char], char, line, spaced)
        if char == ":":
            if not src.startswith(":=", start):
                raise self.fail("expected :=")
            self.pos += 2
            return Token("declare", ":=", line, spaced)
        if char == '"':
            return Token("string", self.quoted('"'), line, spaced)
        if char == "`":
            end = src.find("`", start + 1)
            if end < 0:
                raise self.fail("unterminated raw quoted string")
            self.pos = end + 1
            return Token("string", src[start + 1 : end].replace("\r", ""), line, spaced)
        if char == "'":
            value = self.quoted("'")
            if len(value) != 1:
                raise self.fail(f"malformed character constant: {src[start : self.pos]}")
            return Token("char", value, line, spaced)
        if char == "$":
            word = _WORD.match(src, start + 1)
            self.pos = word.end() if word else start + 1
            return self.terminated(Token("variable", src[start : self.pos], line, spaced))
        if char == ".":
            if start + 1 < len(src) and src[start + 1].isdigit():
                return self.number(line, spaced)
            word = _WORD.match(src, start + 1)
            if word is None:
                self.pos += 1
                return self.terminated(Token("dot", ".", line, spaced))
            self.pos = word.end()
            return self.terminated(Token("field", word.group(), line, spaced))
        if char.isdigit() or char in "+-":
            return self.number(line, spaced)
        if char.isalpha() or char == "_":
            word = _WORD.match(src, start)
            assert word is not None
            self.pos = word.end()
            value = word.group()
            kind = (
                "keyword"
                if value in KEYWORDS
                else "bool"
                if value in ("true", "false")
                else "nil"
                if value == "nil"
                else "identifier"
            )
            return self.terminated(Token(kind, value, line, spaced))
        raise self.fail(f"unrecognized character in action: {char!r}")

    def terminated(self, token: Token) -> Token:
        """Go ends a word only at a space, a delimiter or punctuation: ``.Ab-c`` is an error."""
        if self.pos < len(self.src) and not (
            self.src[self.pos] in SPACE + ".,|:)(=" or self.right_delim_here()
        ):
            raise self.fail(f"bad character {self.src[self.pos]!r}")
        return token

    def number(self, line: int, spaced: bool) -> Token:
        match = _NUMBER.match(self.src, self.pos)
        if match is None or not any(c.isdigit() for c in match.group()):
            raise self.fail(f"bad number syntax: {self.src[self.pos : self.pos + 10]!r}")
        self.pos = match.end()
        if self.pos < len(self.src) and (self.src[self.pos].isalnum() or self.src[self.pos] == "."):
            raise self.fail(f"bad number syntax: {self.src[match.start() : self.pos + 1]!r}")
        return Token("number", match.group(), line, spaced)

    def quoted(self, quote: str) -> str:
        """The value of a Go interpreted string (or character) literal at ``pos``."""
        src, i = self.src, self.pos + 1
        out: list[str] = []
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail("unterminated quoted string")
            char = src[i]
            if char == quote:
                self.pos = i + 1
                return "".join(out)
            if char != "\\":
                out.append(char)
                i += 1
                continue
            i += 1
            esc = src[i : i + 1]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 1
            elif esc in ("\\", quote):
                out.append(esc)
                i += 1
            elif esc in ("x", "u", "U"):
                width = {"x": 2, "u": 4, "U": 8}[esc]
                digits = src[i + 1 : i + 1 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.fail("invalid escape in quoted string")
                code = int(digits, 16)
                if esc == "x" and code > 0x7F:
                    # a byte of UTF-8, which a Python string cannot hold alone
                    raise TemplateError("Go template: \\x escapes above \\x7f are not supported")
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise self.fail("invalid escape in quoted string")
                out.append(chr(code))
                i += 1 + width
            elif esc in "01234567" and esc:
                digits = src[i : i + 3]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise self.fail("invalid escape in quoted string")
                if int(digits, 8) > 0x7F:
                    raise TemplateError("Go template: octal escapes above \\177 are not supported")
                out.append(chr(int(digits, 8)))
                i += 3
            else:
                raise self.fail("invalid escape in quoted string")


def _has_left_trim(src: str, at: int) -> bool:
    return src.startswith("-", at) and at + 1 < len(src) and src[at + 1] in SPACE
