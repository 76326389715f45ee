"""Running a parsed Go template over data, as Go's ``text/template`` executes one: dot,
variables scoped to the end of their control structure, fields of structs and maps
(``missingkey=zero``, as Ollama runs templates), pipelines that pass each value on as
the last argument, ``and``/``or`` that stop at the deciding argument, and Go's printing.

Each node, loop iteration and call checks the render's budget (see
:mod:`power_core.chat.sandbox`), so a hostile template fails instead of hanging or
flooding the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from power_core.chat.go_template.functions import (
    FUNCTION_NAMES,
    FUNCTIONS,
    UNSUPPORTED_FUNCTIONS,
    FunctionError,
)
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
    Node,
    Operand,
    Pipeline,
    Text,
    Variable,
)
from power_core.chat.go_template.parser import parse
from power_core.chat.go_template.values import (
    NO_VALUE,
    GoMap,
    GoStruct,
    go_text,
    is_true,
    map_items,
    type_name,
)
from power_core.chat.render_budget import (
    MAX_RANGE,
    RENDER_TIME_LIMIT_S,
    RenderBudget,
    TemplateError,
)

_MISSING: Any = object()  # no value piped in from an earlier command


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class ExecError(TemplateError):
    """The template failed while running (Go's ``template: executing ...`` errors)."""


def execute(tree: ListNode, data: Any, budget: RenderBudget) -> str:
    """The text ``tree`` writes when run with ``data`` as dot and ``$``."""
    run = _Run(data, budget)
    run.walk(tree, data)
    return "".join(run.out)


class _Run:
    def __init__(self, data: Any, budget: RenderBudget) -> None:
        self.budget = budget
        self.vars: list[list[Any]] = [["$", data]]
        self.out: list[str] = []
        self.size = 0
        self.line = 0

    def fail(self, message: str) -> ExecError:
        where = f" at line {self.line}" if self.line else ""
        return ExecError(f"Go template failed{where}: {message}")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.budget.max_chars:
            raise TemplateError(
                f"chat template output exceeds the limit of {self.budget.max_chars} characters"
            )
        self.out.append(text)

    # ------------------------------------------------------------------ variables

    def lookup(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.fail(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.fail(f"undefined variable: {name}")

    # ------------------------------------------------------------------ statements

    def walk(self, node: Node, dot: Any) -> None:
        self.budget.tick()
        if isinstance(node, Text):
            self.write(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(child, dot)
        elif isinstance(node, Action):
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.variables:
                self.write("<no value>" if value is NO_VALUE else self.printable(value))
        elif isinstance(node, Branch):
            mark = len(self.vars)
            try:
                if node.kind == "range":
                    self.walk_range(node, dot)
                else:
                    value = self.pipeline(dot, node.pipe)
                    if is_true(value):
                        self.walk(node.body, value if node.kind == "with" else dot)
                    elif node.else_body is not None:
                        self.walk(node.else_body, dot)
            finally:
                del self.vars[mark:]
        elif isinstance(node, LoopControl):
            raise _Break() if node.kind == "break" else _Continue()

    def printable(self, value: Any) -> str:
        text: str = self.budget.check_size(go_text(value))
        return text

    def walk_range(self, node: Branch, dot: Any) -> None:
        value = self.pipeline(dot, node.pipe)
        items: list[tuple[Any, Any]]
        if value is NO_VALUE or value is None:
            items = []
        elif isinstance(value, dict):
            items = map_items(value)
        elif isinstance(value, list | bytes):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.variables) > 1:
                raise self.fail(f"can't use {value} to iterate over more than one variable")
            if value > MAX_RANGE:
                raise TemplateError(
                    f"chat template asked for a range of more than {MAX_RANGE} items"
                )
            items = [(i, i) for i in range(value)]
        else:
            raise self.fail(f"range can't iterate over {go_text(value)}")
        if not items:
            if node.else_body is not None:
                self.walk(node.else_body, dot)
            return
        mark = len(self.vars)
        names = node.pipe.variables
        for index, element in items:
            self.budget.tick()
            if names:
                # with two variables, the first is the index; with one, the element
                if node.pipe.is_assign:
                    self.assign(names[-1], element)
                    if len(names) > 1:
                        self.assign(names[0], index)
                else:
                    self.vars[mark - 1][1] = element
                    if len(names) > 1:
                        self.vars[mark - 2][1] = index
            try:
                self.walk(node.body, element)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del self.vars[mark:]

    # ------------------------------------------------------------------ pipelines

    def pipeline(self, dot: Any, pipe: Pipeline) -> Any:
        if pipe.line:
            self.line = pipe.line
        value = _MISSING
        for command in pipe.commands:
            value = self.command(dot, command, value)
            if value is None:  # Go unwraps a nil interface{} into no value at all
                value = NO_VALUE
        for name in pipe.variables:
            if pipe.is_assign:
                self.assign(name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, command: Command, final: Any) -> Any:
        first, args = command.args[0], command.args[1:]
        if isinstance(first, Identifier):
            return self.call(dot, first.name, args, final)
        if args or final is not _MISSING:
            raise self.fail(f"can't give argument to non-function {_show(first)}")
        if isinstance(first, Nil):
            raise self.fail("nil is not a command")
        return self.operand(dot, first)

    def operand(self, dot: Any, node: Operand) -> Any:
        if isinstance(node, Field):
            return self.fields(dot, node.names, dot)
        if isinstance(node, Variable):
            return self.fields(self.lookup(node.name), node.fields, dot)
        if isinstance(node, Chain):
            return self.fields(self.operand(dot, node.operand), node.fields, dot)
        if isinstance(node, Pipeline):
            return self.pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.call(dot, node.name, [], _MISSING)
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Dot):
            return dot
        return None  # Nil: as an argument, a nil interface

    def fields(self, receiver: Any, names: list[str], dot: Any) -> Any:
        for name in names:
            self.budget.tick()
            receiver = self.field(receiver, name)
        return receiver

    def field(self, receiver: Any, name: str) -> Any:
        if receiver is NO_VALUE:
            return NO_VALUE
        if receiver is None:
            raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, GoStruct):
            if name in receiver.fields:
                return receiver.fields[name]
            raise self.fail(f"can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, dict):
            if name in receiver:
                return receiver[name]
            zero = receiver.zero if isinstance(receiver, GoMap) else None
            return zero() if zero is not None else None
        raise self.fail(f"can't evaluate field {name} in type {type_name(receiver)}")

    def call(self, dot: Any, name: str, args: list[Operand], final: Any) -> Any:
        self.budget.tick()
        if name in ("and", "or"):
            return self.and_or(dot, name, args, final)
        function: Callable[..., Any] = FUNCTIONS[name]
        values = [self.operand(dot, arg) for arg in args]
        if final is not _MISSING:
            values.append(final)
        try:
            result = function(*values)
        except FunctionError as exc:
            raise self.fail(f"error calling {name}: {exc}") from None
        return self.budget.check_size(result)

    def and_or(self, dot: Any, name: str, args: list[Operand], final: Any) -> Any:
        if not args and final is _MISSING:
            raise self.fail(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = NO_VALUE
        for arg in args:
            value = self.operand(dot, arg)
            if is_true(value) == (name == "or"):
                return value
        return value if final is _MISSING else final


def _show(node: Operand) -> str:
    if isinstance(node, Field):
        return "." + ".".join(node.names)
    if isinstance(node, Variable):
        return ".".join([node.name, *node.fields])
    if isinstance(node, Literal):
        return go_text(node.value)
    return "." if isinstance(node, Dot) else "nil" if isinstance(node, Nil) else "(...)"


def render_source(source: str, data: dict[str, Any], *, max_chars: int = 1 << 20) -> str:
    """Compile ``source`` and run it over ``data`` (a ``map[string]any``, read with
    ``missingkey=zero``) within the render time limit and ``max_chars``."""
    tree = parse(source, FUNCTION_NAMES, UNSUPPORTED_FUNCTIONS)
    budget = RenderBudget(time.monotonic() + RENDER_TIME_LIMIT_S, max_chars)
    return execute(tree, GoMap(data), budget)
