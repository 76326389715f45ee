"""Building the parse tree of a Go template from its tokens, with the checks Go's parser
makes before anything runs: every variable declared before use, every function known,
``break``/``continue`` only inside ``range``, ``else``/``end`` where they belong.

What this interpreter does not run (``define``, ``template``, ``block``, functions it does
not have) is refused here, so a template either compiles to something that renders as Go
would, or fails before any prompt is built."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection

from power_core.chat.go_template.lexer import Token, tokenize
from power_core.chat.go_template.nodes import (
    Action,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Identifier,
    ListNode,
    Literal,
    LoopControl,
    Nil,
    Operand,
    Pipeline,
    Text,
    Variable,
)
from power_core.chat.render_budget import TemplateError

#: how deeply control structures and parentheses may nest
MAX_NESTING = 100

_OPERAND_START = frozenset(
    {"bool", "char", "dot", "field", "identifier", "number", "nil", "string", "variable", "lparen"}
)


class UnsupportedTemplate(TemplateError):
    """Valid Go that this interpreter does not run (``define``, ``template``, ``call``...)."""


def parse(source: str, functions: Collection[str], unsupported: Collection[str] = ()) -> ListNode:
    """The tree of ``source``; the identifiers in ``functions`` may be called, those in
    ``unsupported`` are Go's but not run here."""
    return _Parser(tokenize(source), functions, unsupported).template()


class _Variables:
    """The variables in scope, in the order declared (a block's go when it ends), with
    membership found in constant time: a template declaring thousands is not quadratic."""

    def __init__(self) -> None:
        self._names = ["$"]
        self._counts = Counter(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._counts[name] > 0

    def __len__(self) -> int:
        return len(self._names)

    def extend(self, names: list[str]) -> None:
        self._names.extend(names)
        self._counts.update(names)

    def truncate(self, mark: int) -> None:
        """Forget the variables declared after the first ``mark``."""
        self._counts.subtract(self._names[mark:])
        del self._names[mark:]


class _Parser:
    def __init__(
        self, tokens: list[Token], functions: Collection[str], unsupported: Collection[str]
    ) -> None:
        self.tokens = tokens
        self.at = 0
        self.functions = functions
        self.unsupported = unsupported
        self.variables = _Variables()
        self.range_depth = 0
        self.depth = 0

    # ------------------------------------------------------------------ tokens

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.at += 1
        return token

    def fail(self, message: str, token: Token | None = None) -> TemplateError:
        line = (token or self.peek()).line
        return TemplateError(f"Go template syntax error at line {line}: {message}")

    def expect(self, kind: str, context: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise self.fail(f"unexpected {_describe(token)} in {context}", token)
        return token

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise TemplateError(f"Go template nests deeper than {MAX_NESTING} levels")

    # ------------------------------------------------------------------ lists and actions

    def template(self) -> ListNode:
        body, end = self.item_list()
        if end != "eof":
            raise self.fail(f"unexpected {{{{{end}}}}}")
        return body

    def item_list(self) -> tuple[ListNode, str]:
        """Nodes up to ``{{end}}``, ``{{else}}`` or the end of the template; which one."""
        body = ListNode()
        while True:
            token = self.next()
            if token.kind == "eof":
                return body, "eof"
            if token.kind == "text":
                body.nodes.append(Text(token.value))
                continue
            keyword = self.peek()
            if keyword.kind == "keyword" and keyword.value in ("end", "else"):
                self.next()
                if keyword.value == "end":
                    self.expect("right_delim", "end")
                return body, keyword.value
            body.nodes.append(self.action())

    def action(self) -> Action | Branch | LoopControl:
        token = self.peek()
        if token.kind == "keyword":
            self.next()
            word = token.value
            if word in ("if", "with", "range"):
                return self.control(word)
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.fail(f"{{{{{word}}}}} outside {{{{range}}}}", token)
                self.expect("right_delim", word)
                return LoopControl(word)
            raise UnsupportedTemplate(
                f"Go template uses {{{{{word}}}}} (line {token.line}), which A3S Power does not run"
            )
        return Action(self.pipeline("command", "right_delim"))

    def control(self, kind: str) -> Branch:
        self.nested()
        mark = len(self.variables)
        pipe = self.pipeline(kind, "right_delim")
        if kind == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_body: ListNode | None = None
        if end == "eof":
            raise self.fail(f"unexpected EOF in {kind}")
        if end == "else":
            follow = self.peek()
            if kind in ("if", "with") and follow.kind == "keyword" and follow.value == kind:
                # {{else if x}} is {{else}}{{if x}}...{{end}}{{end}} sharing the last {{end}}
                self.next()
                else_body = ListNode([self.control(kind)])
            else:
                self.expect("right_delim", "else")
                else_body, end = self.item_list()
                if end != "end":
                    raise self.fail(f"expected end; found {end}")
        self.variables.truncate(mark)
        self.depth -= 1
        return Branch(kind, pipe, body, else_body)

    # ------------------------------------------------------------------ pipelines

    def pipeline(self, context: str, end: str) -> Pipeline:
        pipe = Pipeline([], line=self.peek().line)
        self.declarations(pipe, context)
        while True:
            token = self.peek()
            if token.kind == end:
                self.next()
                break
            if token.kind not in _OPERAND_START:
                raise self.fail(f"unexpected {_describe(token)} in {context}", token)
            pipe.commands.append(self.command())
        if not pipe.commands:
            raise self.fail(f"missing value for {context}")
        for stage, command in enumerate(pipe.commands[1:], start=2):
            if isinstance(command.args[0], Literal | Dot | Nil):
                raise self.fail(f"non executable command in pipeline stage {stage}")
        return pipe

    def declarations(self, pipe: Pipeline, context: str) -> None:
        binding = ("declare", "assign", "comma")
        while self.peek().kind == "variable" and self.peek(1).kind in binding:
            name = self.next().value
            how = self.next()
            pipe.variables.append(name)
            if how.kind == "comma":
                if context != "range" or len(pipe.variables) > 1:
                    raise self.fail(f"too many declarations in {context}", how)
                if self.peek().kind != "variable":
                    raise self.fail("range can only initialize variables", how)
                continue
            pipe.is_assign = how.kind == "assign"
            if pipe.is_assign and name not in self.variables:
                raise self.fail(f"undefined variable {name!r}", how)
            self.variables.extend(pipe.variables)
            return
        if pipe.variables:  # "$i," never followed by its := or =
            raise self.fail(f"missing := after variables in {context}")

    def command(self) -> Command:
        command = Command([])
        while True:
            token = self.peek()
            if token.kind in _OPERAND_START:
                if command.args and not token.spaced:
                    raise self.fail(f"unexpected {_describe(token)} in operand", token)
                command.args.append(self.operand())
                continue
            if token.kind == "pipe":
                self.next()
                if self.peek().kind not in _OPERAND_START:
                    raise self.fail("missing command after |")
            elif token.kind not in ("right_delim", "rparen"):
                raise self.fail(f"unexpected {_describe(token)} in operand", token)
            return command

    def operand(self) -> Operand:
        term = self.term()
        fields: list[str] = []
        while self.peek().kind == "field" and not self.peek().spaced:
            fields.append(self.next().value)
        if not fields:
            return term
        if isinstance(term, Field):
            return Field(term.names + fields)
        if isinstance(term, Variable):
            return Variable(term.name, term.fields + fields)
        if isinstance(term, Literal | Nil | Dot):
            raise self.fail(f"unexpected . after term {_show(term)}")
        if isinstance(term, Identifier):
            raise UnsupportedTemplate(
                f"Go template reads a field of the function {term.name!r}, "
                "which A3S Power does not run"
            )
        return Chain(term, fields)

    def term(self) -> Operand:
        token = self.next()
        kind, value = token.kind, token.value
        if kind == "identifier":
            if value in self.unsupported:
                raise UnsupportedTemplate(
                    f"Go template calls the function {value!r} (line {token.line}), "
                    "which A3S Power does not run"
                )
            if value not in self.functions:
                raise self.fail(f"function {value!r} not defined", token)
            return Identifier(value)
        if kind == "dot":
            return Dot()
        if kind == "nil":
            return Nil()
        if kind == "variable":
            if value not in self.variables:
                raise self.fail(f"undefined variable {value!r}", token)
            return Variable(value)
        if kind == "field":
            return Field([value])
        if kind == "bool":
            return Literal(value == "true")
        if kind == "string":
            return Literal(value)
        if kind == "char":
            return Literal(ord(value))
        if kind == "number":
            return Literal(_number(value, token.line))
        if kind == "lparen":
            self.nested()
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        raise self.fail(f"unexpected {_describe(token)} in operand", token)


def _number(text: str, line: int) -> int | float:
    """A Go number constant: an int, or a float64 when written with a point or exponent."""
    body = text.lstrip("+-")
    negative = text.startswith("-")
    try:
        if body[:2].lower() in ("0x", "0b", "0o"):
            value: int | float = int(body.replace("_", ""), 0)
        elif any(c in body for c in ".eE"):
            value = float(body)
        elif len(body) > 1 and body.startswith("0"):
            value = int(body.replace("_", ""), 8)
        else:
            value = int(body.replace("_", ""))
    except ValueError:
        raise TemplateError(
            f"Go template syntax error at line {line}: bad number syntax: {text!r}"
        ) from None
    value = -value if negative else value
    if isinstance(value, float) and math.isinf(value):  # Go: out of float64's range
        raise TemplateError(
            f"Go template syntax error at line {line}: illegal number syntax: {text}"
        )
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        raise TemplateError(f"Go template syntax error at line {line}: {text} overflows int")
    return value


def _describe(token: Token) -> str:
    names = {
        "right_delim": '"}}"',
        "rparen": '")"',
        "eof": "EOF",
        "declare": '":="',
        "assign": '"="',
        "pipe": '"|"',
        "comma": '","',
    }
    return names.get(token.kind, f"<{token.value}>")


def _show(term: Operand) -> str:
    if isinstance(term, Literal):
        return repr(term.value)
    return "nil" if isinstance(term, Nil) else "."
