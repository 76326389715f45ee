"""Constraining tool calls: the JSON Schemas that output must match.

With ``tool_choice`` ``"required"`` or the name of a function, generation is constrained (by
the engine's grammar) to a JSON call ``{"name": ..., "arguments": {...}}`` that
:class:`~power_core.chat.output.OutputParser` then reads as a bare JSON tool call. With
``"auto"`` and a response format, to either such a call or the formatted answer. With
``"auto"`` alone, the model writes what it likes until it opens a ``<tool_call>`` block;
the calls it then writes are constrained (:func:`call_blocks`).
"""

from __future__ import annotations

import copy
from typing import Any

from power_core.chat.tool_calls import CALL_CLOSE, CALL_OPEN
from power_core.engine import CallBlocks, FreeSpan
from power_core.errors import InvalidRequest
from power_core.types import ToolSpec

_DEF_KEYS = ("$defs", "definitions")
#: tags of templates whose <tool_call> blocks hold XML, not JSON (Qwen3-Coder, GLM 4.5)
_XML_CALLS = ("<function=", "<parameter=", "<arg_key>")


def forced_tool_call_schema(
    tools: list[ToolSpec], tool_choice: str, parallel: bool
) -> dict[str, Any] | None:
    """The JSON Schema output must match so that it is a tool call, or ``None``.

    :param tools: the functions the request offers.
    :param tool_choice: ``"auto"`` or ``"none"`` (no constraint: ``None``), ``"required"``
        (a call of any of ``tools``) or the name of the one function that must be called.
    :param parallel: allow several calls (``"required"`` only): the schema is then a
        non-empty JSON list of calls. A named function is called once, as OpenAI and
        llama.cpp's server answer it: a list let small models repeat the call until
        ``max_tokens`` (7 identical calls in 200 tokens, seen with SmolLM2).
    :raises InvalidRequest: (``param="tool_choice"``) when ``tool_choice`` names no tool, or
        ``"required"`` comes without tools; (``param="tools"``) when a tool's ``parameters``
        is not an object schema.
    """
    if tool_choice in ("auto", "none"):
        return None
    if tool_choice == "required":
        if not tools:
            raise InvalidRequest(
                "tool_choice 'required' needs at least one tool", param="tool_choice"
            )
        chosen = list(tools)
    else:
        chosen = [tool for tool in tools if tool.name == tool_choice]
        if not chosen:
            known = ", ".join(repr(tool.name) for tool in tools) or "none"
            raise InvalidRequest(
                f"tool_choice names function {tool_choice!r}, which is not among the tools "
                f"(offered: {known})",
                param="tool_choice",
            )
        chosen = chosen[:1]

    defs: dict[str, Any] = {}
    variants = [_call_schema(tool, index, defs) for index, tool in enumerate(chosen)]
    call: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    several = parallel and tool_choice == "required"
    schema: dict[str, Any] = {"type": "array", "items": call, "minItems": 1} if several else call
    if defs:
        schema["$defs"] = defs
    return schema


def answer_or_call_schema(
    answer: dict[str, Any] | None, tools: list[ToolSpec], parallel: bool
) -> dict[str, Any]:
    """The JSON Schema of output that is either the answer ``answer`` describes (any JSON
    object when ``None``: a ``json_object`` format) or a call of ``tools`` (a list of
    calls with ``parallel``): with tools to choose among (``tool_choice`` ``"auto"``) and a
    response format, a model may call a tool or answer in that format, as OpenAI's do."""
    # one call as an object (as a model writes it unasked), or several in a list
    lists = [False, True] if parallel else [False]
    forms = [forced_tool_call_schema(tools, "required", several) for several in lists]
    defs: dict[str, Any] = {}
    for form in forms:
        assert form is not None  # "required" always constrains
        defs.update(form.pop("$defs", {}))  # the same tools' definitions in each
    answered = _hoisted(copy.deepcopy(answer or {"type": "object"}), "answer_", defs)
    schema: dict[str, Any] = {"anyOf": [answered, *forms]}
    if defs:
        schema["$defs"] = defs
    return schema


def call_blocks(
    template_source: str, tools: list[ToolSpec], parallel: bool, reasoning: FreeSpan | None
) -> CallBlocks | None:
    """The calls a model that may choose among ``tools`` writes under a grammar, once it
    opens a call: a template that has it write JSON in ``<tool_call>`` blocks (Hermes,
    Qwen 2.5 and 3, the ChatML this server falls back to) gets calls of those tools with
    valid arguments, one call unless ``parallel``. ``None`` for other conventions (XML in
    the blocks too, as Qwen3-Coder's and GLM's templates have), and for tools whose
    parameters no schema can constrain: their calls are read as the model writes them."""
    if CALL_OPEN not in template_source or any(tag in template_source for tag in _XML_CALLS):
        return None
    try:
        schema = forced_tool_call_schema(tools, "required", parallel=False)
    except InvalidRequest:
        return None
    assert schema is not None  # "required" always constrains
    return CallBlocks(CALL_OPEN, CALL_CLOSE, schema, several=parallel, reasoning=reasoning)


def _call_schema(tool: ToolSpec, index: int, defs: dict[str, Any]) -> dict[str, Any]:
    parameters = _arguments_schema(tool, index, defs)
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _arguments_schema(tool: ToolSpec, index: int, defs: dict[str, Any]) -> dict[str, Any]:
    parameters = tool.parameters
    if not isinstance(parameters, dict):
        raise InvalidRequest(
            f"tool {tool.name!r}: parameters must be a JSON Schema object", param="tools"
        )
    declared = parameters.get("type", "object")
    if declared != "object":
        raise InvalidRequest(
            f"tool {tool.name!r}: parameters must describe an object, not {declared!r}",
            param="tools",
        )
    schema = copy.deepcopy(parameters)
    schema["type"] = "object"
    return _hoisted(schema, f"tool{index}_", defs)


def _hoisted(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a copy, changed here) made part of a combined schema: its own definitions
    move to the root's ``defs``, renamed with ``prefix`` so that parts cannot clash, and its
    references (including ``"#"`` for itself) follow them."""
    local: dict[str, Any] = {}
    for key in _DEF_KEYS:
        local.update(schema.pop(key, None) or {})
    renames = {f"#/{key}/{name}": f"#/$defs/{prefix}{name}" for key in _DEF_KEYS for name in local}
    if not (_refers_to(schema, "#") or any(_refers_to(v, "#") for v in local.values())):
        for name, sub in local.items():
            defs[prefix + name] = _rewrite_refs(sub, renames, None)
        return _rewrite_refs(schema, renames, None)
    root_name = "root"
    while root_name in local:  # a definition of its own may bear the name
        root_name += "_"
    root = f"#/$defs/{prefix}{root_name}"
    for name, sub in local.items():
        defs[prefix + name] = _rewrite_refs(sub, renames, root)
    defs[prefix + root_name] = _rewrite_refs(schema, renames, root)
    return {"$ref": root}


def _refers_to(node: Any, target: str) -> bool:
    if isinstance(node, dict):
        if node.get("$ref") == target:
            return True
        return any(_refers_to(value, target) for value in node.values())
    if isinstance(node, list):
        return any(_refers_to(value, target) for value in node)
    return False


def _rewrite_refs(node: Any, renames: dict[str, str], root: str | None) -> Any:
    if isinstance(node, dict):
        result = {key: _rewrite_refs(value, renames, root) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref == "#" and root is not None:
                result["$ref"] = root
            else:
                for old, new in renames.items():
                    if ref == old or ref.startswith(old + "/"):
                        result["$ref"] = new + ref[len(old) :]
                        break
        return result
    if isinstance(node, list):
        return [_rewrite_refs(value, renames, root) for value in node]
    return node
