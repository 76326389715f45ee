"""The GBNF grammars a job's output is held to: JSON (matching a schema), and tool calls
in blocks.

Schemas become grammars by llama-cpp-python's converter, corrected in :mod:`.json_grammar`;
what a grammar cannot express, or a schema too big for one, is refused with a 400
(:mod:`.schema_keywords`, :mod:`.schema_limits`).
"""

from __future__ import annotations

from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF

from power_backend_llamacpp.json_grammar import gbnf_literal, json_schema_grammar
from power_backend_llamacpp.schema_keywords import check_keyword_types
from power_backend_llamacpp.schema_limits import (
    check_grammar_nesting,
    check_grammar_text,
    check_repetitions,
)
from power_core.engine import CallBlocks
from power_core.errors import InvalidRequest


def grammar_for(json_mode: bool, json_schema: dict[str, Any] | None) -> str | None:
    """The GBNF grammar constraining output to JSON (matching ``json_schema`` if given)."""
    if json_schema is not None:
        return _schema_grammar(json_schema, "")
    if json_mode:
        return JSON_GBNF
    return None


def call_blocks_grammar(blocks: CallBlocks) -> str | None:
    """The GBNF grammar of output from just after a call block's opener: the call, its
    closer, then (``several``) more blocks apart by whitespace, and maybe whitespace before
    the output ends (end-of-generation tokens are allowed once it is whole). ``None`` when
    the call's
    schema cannot be expressed: the calls are then read as the model writes them."""
    try:
        call = _schema_grammar(blocks.call_schema, "call")
    except InvalidRequest:
        return None
    opener, closer = gbnf_literal(blocks.opener), gbnf_literal(blocks.closer)
    block = f"call-blocks-ws call call-blocks-ws {closer}"
    more = f" (call-blocks-ws {opener} {block})*" if blocks.several else ""
    # whitespace may end the output too: after a closer it must not commit to a new block
    return f"root ::= {block}{more} call-blocks-ws\ncall-blocks-ws ::= [ \\t\\n]{{0,8}}\n" + call


def _schema_grammar(schema: dict[str, Any], rule: str) -> str:
    check_keyword_types(schema)
    check_repetitions(schema)
    try:
        grammar = json_schema_grammar(schema, rule)
    except InvalidRequest:
        raise
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        # a shape the keyword check lets through and the converter trips on: its
        # words ("'NoneType' object is not iterable") would say nothing to the client
        raise InvalidRequest(
            "the JSON schema cannot be used to constrain output: a keyword holds a "
            "value the converter cannot read",
            param="json_schema",
        ) from exc
    except Exception as exc:
        # the converter reports unsupported schemas in its own words (even with
        # assert), and every one of them means this schema cannot be used
        raise InvalidRequest(
            f"the JSON schema cannot be used to constrain output: {exc}", param="json_schema"
        ) from exc
    check_grammar_text(grammar)
    check_grammar_nesting(grammar)
    return grammar
