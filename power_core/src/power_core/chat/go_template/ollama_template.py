"""Rendering a conversation through an Ollama template the way Ollama's
``template.Template.Execute`` does.

A template that names ``.Messages`` sees the whole conversation at once. One that does
not is a legacy ``.System``/``.Prompt``/``.Response`` template: it runs once per exchange
(a system message or a new user message after an answer starts the next one), and the
last run stops right after ``.Response``, so an answer the client began is continued.
A template that names neither ``.Messages`` nor ``.Response`` gets ``{{ .Response }}``
added at its end, as Ollama adds it. With a ``suffix`` (fill-in-the-middle) the template
sees ``.Prompt`` and ``.Suffix``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from typing import Any

from power_core.chat.go_template.evaluator import execute
from power_core.chat.go_template.functions import FUNCTION_NAMES, UNSUPPORTED_FUNCTIONS
from power_core.chat.go_template.nodes import (
    Action,
    Branch,
    Command,
    Field,
    ListNode,
    Node,
    Operand,
    Pipeline,
    Variable,
)
from power_core.chat.go_template.ollama_data import (
    ThinkValues,
    collate,
    message_value,
    tools_value,
)
from power_core.chat.go_template.parser import parse
from power_core.chat.go_template.values import GoList, GoMap
from power_core.chat.render_budget import RENDER_TIME_LIMIT_S, RenderBudget, TemplateError
from power_core.types import ChatMessage, ToolSpec

#: the longest template compiled: Ollama's run to a few kilobytes, and compiling takes the
#: server's thread (a request may bring its own template: 64 KiB compile in about 0.1 s)
MAX_SOURCE_CHARS = 64 << 10


class OllamaTemplate:
    """A compiled Ollama template. :class:`TemplateError` (its subclass
    :class:`~power_core.chat.go_template.parser.UnsupportedTemplate` for valid Go this
    interpreter does not run) when ``source`` cannot be compiled."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateError(
                f"the Go template is {len(source)} characters long; "
                f"at most {MAX_SOURCE_CHARS} are compiled"
            )
        self.source = source
        self.tree = parse(source, FUNCTION_NAMES, UNSUPPORTED_FUNCTIONS)
        self.names = identifiers(self.tree)
        if "messages" not in self.names and "response" not in self.names:
            response = Action(Pipeline([Command([Field(["Response"])])]))
            self.tree.nodes.append(response)
            self.names.add("response")
        self.uses_messages = "messages" in self.names
        #: the tree cut after its first ``.Response``: the legacy path's last run
        self.last_turn = self.tree if self.uses_messages else cut_after_response(self.tree)

    def render(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec] | None,
        *,
        think: ThinkValues,
        max_chars: int,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """The prompt of ``messages`` (and ``tools``), at most ``max_chars`` long."""
        system, turns = collate(messages)
        thinking = think.values()
        budget = _Budget(max_chars)
        if self.uses_messages:
            data = {
                "System": system,
                "Messages": GoList([message_value(t) for t in turns]),
                "Tools": tools_value(tools),
                "Response": "",
                **thinking,
            }
            return budget.run(self.tree, GoMap({**data, **(extra or {})}))
        parts: list[str] = []
        system, prompt, response = "", "", ""
        for turn in turns:
            role = turn.role
            starts_next = (role == "system" and (prompt or response)) or (
                role == "user" and response
            )
            if starts_next:
                values = {"System": system, "Prompt": prompt, "Response": response}
                parts.append(budget.run(self.tree, GoMap({**values, **thinking, **(extra or {})})))
                system, prompt, response = "", "", ""
            if role == "system":
                system = turn.content
            elif role == "user":
                prompt = turn.content
            elif role == "assistant":
                response = turn.content
        values = {"System": system, "Prompt": prompt, "Response": response}
        parts.append(budget.run(self.last_turn, GoMap({**values, **thinking, **(extra or {})})))
        return "".join(parts)

    def render_insert(self, prompt: str, suffix: str, *, think: ThinkValues, max_chars: int) -> str:
        """The fill-in-the-middle prompt: ``.Prompt`` before the gap, ``.Suffix`` after it."""
        values = {"Prompt": prompt, "Suffix": suffix, "Response": "", **think.values()}
        return _Budget(max_chars).run(self.tree, GoMap(values))


class _Budget:
    """One deadline and one output limit shared by the runs of one render."""

    def __init__(self, max_chars: int) -> None:
        self.deadline = time.monotonic() + RENDER_TIME_LIMIT_S
        self.left = max_chars

    def run(self, tree: ListNode, data: GoMap) -> str:
        try:
            text = execute(tree, data, RenderBudget(self.deadline, self.left))
        except RecursionError as exc:
            raise TemplateError("chat template recursion is too deep") from exc
        self.left -= len(text)
        return text


def identifiers(tree: ListNode) -> set[str]:
    """Every field and variable name the template mentions, lowercased (Ollama's ``Vars``:
    a template that names ``messages`` gets the whole conversation)."""
    names: set[str] = set()

    def pipe(node: Pipeline) -> None:
        for command in node.commands:
            for arg in command.args:
                operand(arg)

    def operand(node: Operand) -> None:
        if isinstance(node, Field):
            names.update(n.lower() for n in node.names)
        elif isinstance(node, Variable):
            names.update(n.lower() for n in [node.name, *node.fields])
        elif isinstance(node, Pipeline):
            pipe(node)

    def walk(node: Node | None) -> None:
        if isinstance(node, ListNode):
            for child in node.nodes:
                walk(child)
        elif isinstance(node, Action):
            pipe(node.pipe)
        elif isinstance(node, Branch):
            pipe(node.pipe)
            walk(node.body)
            walk(node.else_body)

    walk(tree)
    return names


def cut_after_response(tree: ListNode) -> ListNode:
    """A copy of ``tree`` with everything after its first ``.Response`` field removed,
    walking it as Ollama's ``deleteNode`` does (a branch's condition is not looked into; a
    command left without arguments takes its whole action with it). The copy shares what
    the cut leaves unchanged: only lists, branches, actions and pipelines are new."""
    cut = False

    def after(node: object) -> bool:
        nonlocal cut
        if isinstance(node, Field) and "Response" in node.names:
            cut = True
            return False
        return cut

    def pipeline(node: Pipeline) -> Pipeline | None:
        if after(node):
            return None
        commands = []
        for command in node.commands:
            args = [kept for arg in command.args if (kept := operand(arg)) is not None]
            if not args:
                return None
            commands.append(Command(args))
        return replace(node, commands=commands)

    def operand(node: Operand) -> Operand | None:
        if isinstance(node, Pipeline):
            return pipeline(node)
        return None if after(node) else node

    def walk(node: Node) -> Node | None:
        if after(node):
            return None
        if isinstance(node, ListNode):
            return ListNode([child for child in map(walk, node.nodes) if child is not None])
        if isinstance(node, Branch):
            body = walk(node.body)
            rest = walk(node.else_body) if node.else_body is not None else None
            return replace(
                node,
                body=body if isinstance(body, ListNode) else ListNode(),
                else_body=rest if isinstance(rest, ListNode) else None,
            )
        if isinstance(node, Action):
            pipe = pipeline(node.pipe)
            return None if pipe is None else replace(node, pipe=pipe)
        return node

    kept = walk(tree)
    return kept if isinstance(kept, ListNode) else ListNode()


def compile_ollama_template(source: str) -> OllamaTemplate:
    """:class:`OllamaTemplate` of ``source``, compiled once per source; a source that
    cannot compile fails once too (a stored one is asked for on every request)."""
    compiled = _compiled_or_refused(source)
    if isinstance(compiled, OllamaTemplate):
        return compiled
    kind, message = compiled
    raise kind(message)


@functools.lru_cache(maxsize=128)
def _compiled_or_refused(source: str) -> OllamaTemplate | tuple[type[TemplateError], str]:
    try:
        return OllamaTemplate(source)
    except TemplateError as exc:
        return type(exc), exc.message
