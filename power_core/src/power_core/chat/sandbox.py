"""A Jinja2 sandbox that bounds what an unreviewed chat template may cost.

Chat templates arrive inside model files and in requests, so they are untrusted code. Jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` already refuses attribute escapes
(``''.__class__.__mro__``) and mutation; this module adds the limits it lacks, so that a hostile
template costs one failed request instead of the process:

* time: a deadline checked on every call, every loop iteration, every intercepted operator and
  filter, and between generated chunks (nested loops cannot hang the server);
* size: the output is counted while it streams, and operations that could build a huge value in
  one step (``'x' * 10**9``, ``'x'|center(10**9)``, ``'%0999999999d' % 1``) are refused before
  they allocate;
* depth: macro and recursive-loop nesting is capped below Python's recursion limit.

Every failure surfaces as :class:`TemplateError`, a client error. The error, the limits
and :class:`RenderBudget` live in :mod:`power_core.chat.render_budget`, which Go templates
share without Jinja2.
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
import time
import types
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, cast

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from power_core.chat.render_budget import (
    MAX_CALL_DEPTH,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    RENDER_TIME_LIMIT_S,
    RenderBudget,
    TemplateError,
)

# Filter names a template author cannot write (they are not identifiers), used to wrap nodes.
_LOOP_GUARD = "power.loop_guard"
_SIZE_GUARD = "power.size_guard"
# Filters whose integer arguments size the value they build.
_SIZING_FILTERS = frozenset({"center", "indent", "wordwrap", "slice", "batch", "truncate"})
_SIZING_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("power_template_budget", default=None)


def current_budget() -> RenderBudget:
    """The budget of the render running in this context (a fresh default one outside any)."""
    budget = _BUDGET.get()
    if budget is None:
        budget = RenderBudget(
            time.monotonic() + RENDER_TIME_LIMIT_S, MAX_OUTPUT_CHARS, limit_s=RENDER_TIME_LIMIT_S
        )
    return budget


@contextmanager
def render_budget(max_chars: int) -> Iterator[RenderBudget]:
    """Run the body under a fresh deadline and size limit."""
    budget = RenderBudget(
        time.monotonic() + RENDER_TIME_LIMIT_S, max_chars, limit_s=RENDER_TIME_LIMIT_S
    )
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


# ----------------------------------------------------------------------------- template globals


def _bounded_range(*args: int) -> range:
    budget = current_budget()
    budget.tick()
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateError(f"chat template asked for a range of more than {MAX_RANGE} items")
    return rng


def _raise_exception(message: Any) -> NoReturn:
    raise TemplateError(f"chat template error: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Unlike Jinja2's own ``tojson`` this does not HTML-escape, as Hugging Face templates expect.
    if isinstance(indent, int) and indent > 64:
        raise TemplateError("chat template asked for a JSON indent over 64")
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@jinja2.pass_context
def _guard_loop(_context: Any, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = current_budget()
    for item in iterable:
        budget.tick()
        yield item


def _guard_size(value: Any) -> Any:
    return current_budget().check_size(value)


# ----------------------------------------------------------------------------- size checks


def _check_ints(budget: RenderBudget, values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > budget.max_chars:
            budget.refuse("a value sized by an argument")


def _check_printf(budget: RenderBudget, fmt: str, operand: Any) -> None:
    for match in _PRINTF_SPEC.finditer(fmt):
        for part in match.groups():
            if part is None:
                continue
            if part == "*":
                _check_ints(budget, operand if isinstance(operand, tuple) else (operand,))
            elif len(part) > 9 or int(part) > budget.max_chars:
                budget.refuse("a formatted string")


def _check_format_spec(budget: RenderBudget, fmt: str, args: Any, kwargs: Any) -> None:
    for _text, _field, spec, _conv in string.Formatter().parse(fmt):
        if not spec:
            continue
        if "{" in spec:
            _check_ints(budget, [*args, *kwargs.values()])
        for digits in re.findall(r"\d+", spec):
            if len(digits) > 9 or int(digits) > budget.max_chars:
                budget.refuse("a formatted string")


def _check_replace(budget: RenderBudget, text: Any, old: Any, new: Any, count: Any = None) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    budget.check_count(len(text) + hits * max(0, len(new) - len(old)))


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.tick()
        if name in _SIZING_FILTERS:
            _check_ints(budget, [*args, *kwargs.values()])
        elif name == "format" and args and isinstance(args[0], str):
            _check_printf(budget, args[0], tuple(args[1:]) or kwargs)
        elif name == "replace":
            # ``replace`` receives the evaluation context first
            _check_replace(budget, *args[1:], **kwargs)
        return budget.check_size(func(*args, **kwargs))

    return guarded


class _GuardNodes(NodeTransformer):
    """Wraps every loop's iterable and every ``~`` concatenation in a checking filter."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_GUARD, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _SIZE_GUARD, [], [], None, None, lineno=node.lineno)


class HardenedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox Hugging Face uses for chat templates, with time, size and depth limits."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
            extensions=["jinja2.ext.loopcontrols"],
        )
        # lipsum(n=10**9) would be an unbounded allocation, and no chat template needs it.
        self.globals.pop("lipsum", None)
        self.globals.update(
            range=_bounded_range, raise_exception=_raise_exception, strftime_now=_strftime_now
        )
        self.filters["tojson"] = _tojson
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        self.filters[_LOOP_GUARD] = _guard_loop
        self.filters[_SIZE_GUARD] = _guard_size

    def call(
        __self,
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Call an object from template code, within the render's budget."""
        budget = current_budget()
        budget.tick()
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            if __obj.__name__ in _SIZING_STR_METHODS:
                _check_ints(budget, [*args, *kwargs.values()])
            elif __obj.__name__ == "replace":
                _check_replace(budget, __obj.__self__, *args, **kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_CALL_DEPTH:
                raise TemplateError(
                    f"chat template nests calls deeper than {MAX_CALL_DEPTH} levels"
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return budget.check_size(result)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Refuse an unsafe attribute at once (Jinja2 returns a silent undefined value)."""
        raise TemplateError(
            f"chat template did something unsafe: access to attribute {attribute!r} "
            f"of a {type(obj).__name__!r} object"
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Apply ``+``, ``*``, ``**`` or ``%``, refusing results over the size limit."""
        budget = current_budget()
        budget.tick()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    budget.check_count(len(seq) * times)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                budget.check_count(int(right * math.log2(abs(left)) / 8))
        elif operator == "%" and isinstance(left, str):
            _check_printf(budget, left, right)
        return budget.check_size(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Sandbox ``str.format`` as Jinja2 does, refusing huge field widths first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"
        sandboxed = wrapped

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = current_budget()
            mapping = args[0] if is_map and args and isinstance(args[0], dict) else kwargs
            _check_format_spec(budget, fmt, () if is_map else args, mapping)
            return budget.check_size(sandboxed(*args, **kwargs))

        return checked


_ENV = HardenedEnvironment()


@dataclass(frozen=True)
class CompiledTemplate:
    """A chat template compiled once and shared by every render of the same source."""

    template: jinja2.Template
    #: whether the template refers to ``tools`` (so it can describe tools to the model)
    uses_tools: bool


@functools.lru_cache(maxsize=128)
def compile_template(source: str) -> CompiledTemplate:
    """Compile a template source; :class:`TemplateError` if it is not valid Jinja2."""
    with render_budget(MAX_OUTPUT_CHARS):
        try:
            tree = _ENV.parse(source)
            uses_tools = "tools" in meta.find_undeclared_variables(tree)
            tree = _GuardNodes().visit(tree)
            template = _ENV.from_string(tree)
        except TemplateError:
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"chat template syntax error at line {exc.lineno}: {exc.message}"
            ) from exc
        except RecursionError as exc:
            raise TemplateError("chat template is nested too deeply to compile") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template cannot be compiled: {_short(exc)}") from exc
    return CompiledTemplate(template, uses_tools)


def render_template(compiled: CompiledTemplate, context: dict[str, Any], max_chars: int) -> str:
    """Render within the time limit and ``max_chars``; every failure is a :class:`TemplateError`."""
    with render_budget(max_chars) as budget:
        chunks = cast(Generator[str, None, None], compiled.template.generate(context))
        parts: list[str] = []
        total = 0
        try:
            for chunk in chunks:
                total += len(chunk)
                if total > max_chars:
                    raise TemplateError(
                        f"chat template output exceeds the limit of {max_chars} characters"
                    )
                budget.tick()
                parts.append(chunk)
        except TemplateError:
            raise
        except RecursionError as exc:
            raise TemplateError("chat template recursion is too deep") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"chat template did something unsafe: {_short(exc)}") from exc
        except Exception as exc:
            # The template is client-supplied code: whatever it trips over (a TypeError from
            # ``'a' + 1``, an undefined filter, MemoryError) is a fault of the request.
            raise TemplateError(
                f"chat template failed: {type(exc).__name__}: {_short(exc)}"
            ) from exc
        finally:
            chunks.close()
    return "".join(parts)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"
