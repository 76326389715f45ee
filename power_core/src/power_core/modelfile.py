"""Ollama's Modelfile: parse it into a :class:`Modelfile`, and write one back for ``show``.

Grammar (commands are case-insensitive, one per line, ``#`` starts a comment line)::

    FROM <model name or GGUF path>          required, once (a second names a projector GGUF)
    PARAMETER <name> <value>                typed; ``stop`` may repeat and collects a list
    TEMPLATE <text>  |  SYSTEM <text>       the last one wins
    LICENSE <text>                          may repeat
    MESSAGE <system|user|assistant> <text>  may repeat
    ADAPTER <GGUF LoRA adapter path>        may repeat; applied on top of FROM's weights

A ``<text>`` is the rest of the line, a ``"quoted"`` string, or a ``\"\"\"`` block that may
span lines. Every error names its line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from power_core.errors import InvalidRequest

_INT = {
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "mirostat",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
}
_FLOAT = {
    "tfs_z",
    "typical_p",
    "top_p",
    "min_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "mirostat_tau",
    "mirostat_eta",
}
_BOOL = {
    "penalize_newline",
    "numa",
    "low_vram",
    "f16_kv",
    "vocab_only",
    "use_mmap",
    "use_mlock",
    "logits_all",
}
_LIST = {"stop"}
#: every PARAMETER name a Modelfile may use (Ollama's options)
PARAMETER_NAMES = frozenset(_INT | _FLOAT | _BOOL | _LIST)
MESSAGE_ROLES = ("system", "user", "assistant")
_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}
_COMMANDS = {"FROM", "ADAPTER", "PARAMETER", "TEMPLATE", "SYSTEM", "LICENSE", "MESSAGE"}
_WORD = re.compile(r"\s*(\S+)\s*(.*)", re.DOTALL)


@dataclass
class Modelfile:
    """A parsed Modelfile."""

    from_: str
    from_line: int = 1
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    licenses: list[str] = field(default_factory=list)
    #: (role, content) pairs
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: ``ADAPTER`` paths (or ``@sha256:...`` blobs), each with its line
    adapters: list[tuple[str, int]] = field(default_factory=list)
    #: a second ``FROM``: a multimodal projector's GGUF path, with its line
    projector: tuple[str, int] | None = None


def coerce_parameter(name: str, value: Any, where: str = "") -> Any:
    """Check a parameter's name and type its value (text from a Modelfile, or JSON).

    Integers, floats and booleans are parsed as Ollama parses them; ``stop`` becomes a
    list of strings. Raises InvalidRequest naming ``where`` (e.g. ``line 3``).
    """
    prefix = f"{where}: " if where else ""
    key = name.lower() if isinstance(name, str) else name
    if key not in PARAMETER_NAMES:
        raise InvalidRequest(f"{prefix}unknown parameter '{name}'", param="parameters")

    def bad(kind: str) -> InvalidRequest:
        return InvalidRequest(
            f"{prefix}parameter '{key}' must be {kind}, got {value!r}", param="parameters"
        )

    if key in _LIST:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise bad("a string or a list of strings")
        return list(values)
    if key in _BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else ""
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad("true or false")
    if key in _INT:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad("an integer")
    if isinstance(value, bool):
        raise bad("a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise bad("a number") from None
    if not math.isfinite(number):
        raise bad("a finite number")
    return number


def _unquote(value: str, line: int) -> str:
    if value.startswith('"""'):
        if len(value) < 6 or not value.endswith('"""'):
            raise InvalidRequest(f'line {line}: unterminated """ block')
        return value[3:-3]
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines with ``\"\"\"`` blocks joined; yields (first line number, text)."""
    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        start, current = index + 1, lines[index]
        index += 1
        stripped = current.strip()
        if not stripped or stripped.startswith("#"):
            continue
        opening = current.find('"""')
        if opening != -1 and current.find('"""', opening + 3) == -1:
            parts = [current]
            while True:
                if index >= len(lines):
                    raise InvalidRequest(f'line {start}: unterminated """ block')
                parts.append(lines[index])
                index += 1
                if '"""' in parts[-1]:
                    break
            current = "\n".join(parts)
            closing = current.rfind('"""')
            if current[closing + 3 :].strip():
                raise InvalidRequest(f'line {index}: unexpected text after closing """')
        yield start, current.strip()


def _split_word(text: str) -> tuple[str, str]:
    """The first whitespace-separated word and the stripped rest."""
    match = _WORD.match(text)
    if match is None:
        return "", ""
    return match.group(1), match.group(2).strip()


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text; raises InvalidRequest naming the line."""
    if not isinstance(text, str):
        raise InvalidRequest("the Modelfile must be text")
    if "\0" in text:  # no path, name or text of a model holds one
        raise InvalidRequest("the Modelfile contains a NUL character")
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write first
    from_: tuple[str, int] | None = None
    result = Modelfile(from_="")
    for line, content in _logical_lines(text):
        command, rest = _split_word(content)
        command = command.upper()
        if command not in _COMMANDS:
            raise InvalidRequest(f"line {line}: unknown command '{command}'")
        if not rest:
            raise InvalidRequest(f"line {line}: {command} needs a value")
        if command == "FROM":
            if from_ is None:
                from_ = (_unquote(rest, line).strip(), line)
            elif result.projector is None:  # the model's projector, as Ollama's LLaVA
                result.projector = (_unquote(rest, line).strip(), line)
            else:
                raise InvalidRequest(
                    f"line {line}: FROM given three times; a model takes its weights and at "
                    "most one projector"
                )
        elif command == "PARAMETER":
            name, raw = _split_word(rest)
            if not raw:
                raise InvalidRequest(f"line {line}: PARAMETER {name} needs a value")
            value = coerce_parameter(name, _unquote(raw, line), f"line {line}")
            key = name.lower()
            if key in _LIST:
                result.parameters.setdefault(key, []).extend(value)
            else:
                result.parameters[key] = value
        elif command == "MESSAGE":
            role, body = _split_word(rest)
            if role.lower() not in MESSAGE_ROLES:
                raise InvalidRequest(
                    f"line {line}: MESSAGE role must be system, user or assistant, not '{role}'"
                )
            result.messages.append((role.lower(), _unquote(body, line)))
        elif command == "ADAPTER":
            result.adapters.append((_unquote(rest, line).strip(), line))
        elif command == "TEMPLATE":
            result.template = _unquote(rest, line)
        elif command == "SYSTEM":
            result.system = _unquote(rest, line)
        else:
            result.licenses.append(_unquote(rest, line))
    if from_ is None or not from_[0]:
        raise InvalidRequest("the Modelfile has no FROM line")
    result.from_, result.from_line = from_
    return result


def quote_value(value: str) -> str:
    """A value as a Modelfile writes it, quoted only when it must be."""
    if value and "\n" not in value and value == value.strip() and not value.startswith('"'):
        return value
    return f'"""{value}"""'


def format_parameter_value(value: Any) -> str:
    """How a parameter value prints: ``true``, ``0.7``, ``"<|im_end|>"`` (JSON-like)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return format_number(value)


def format_number(value: Any) -> str:
    """A number as Go prints it: ``0`` and ``1`` for whole floats (not ``0.0``), else the
    shortest form that reads back (``0.7``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def format_parameters(parameters: dict[str, Any]) -> str:
    """Ollama's ``parameters`` text: one ``name value`` line per value, names padded."""
    lines = []
    for name in sorted(parameters):
        value = parameters[name]
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{name:<30} {format_parameter_value(item)}")
    return "\n".join(lines)


def render_modelfile(
    *,
    name: str,
    from_: str,
    template: str | None,
    system: str | None,
    parameters: dict[str, Any],
    licenses: list[str],
    messages: list[tuple[str, str]],
    adapters: Sequence[str] = (),
    projector: str | None = None,
) -> str:
    """Modelfile text that recreates a model (what ``show --modelfile`` prints); a
    projector is a second ``FROM``, as Ollama prints it."""
    out = [
        '# Modelfile generated by "a3s-power show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {name}",
        "",
        f"FROM {from_}",
    ]
    if projector is not None:
        out.append(f"FROM {projector}")
    out.extend(f"ADAPTER {path}" for path in adapters)
    if template is not None:
        out.append(f'TEMPLATE """{template}"""')
    if system is not None:
        out.append(f'SYSTEM """{system}"""')
    for key in sorted(parameters):
        value = parameters[key]
        for item in value if isinstance(value, list) else [value]:
            text = format_parameter_value(item) if isinstance(item, bool) else format_number(item)
            out.append(f"PARAMETER {key} {quote_value(text)}")
    for text in licenses:
        out.append(f'LICENSE """{text}"""')
    for role, content in messages:
        out.append(f"MESSAGE {role} {quote_value(content)}")
    return "\n".join(out) + "\n"
