"""Finding tool calls in a model's streamed output text.

Models write tool calls as text in one of a few conventions; :class:`ToolCallScanner` recognises

* ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Hermes, Qwen), anywhere;
* ``[TOOL_CALLS][{...}, ...]`` and ``[TOOL_CALLS]name[ARGS]{...}`` (Mistral), anywhere;
* a bare JSON call ``{"name": ..., "arguments": {...}}`` (``"parameters"`` also accepted), a
  JSON list of them, or either inside a ```` ```json ```` fence, at the start of the output.

Ordinary text passes through at once; only a stretch that may still turn out to be a call is
held back, and a stretch that turns out not to be one comes out as text, so nothing is lost.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from enum import Enum
from typing import Any

from power_core.types import ToolCall

#: the block a Hermes or Qwen template has a model write each call in
CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_MISTRAL = "[TOOL_CALLS]"
_MARKERS = (CALL_OPEN, _MISTRAL)
_FENCE = "```"
_ARGS = "[ARGS]"
#: keys a bare JSON call may have; its first key must be one of them
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "function", "type", "id"})
# the characters a JSON value or a fence can end with: only then is a decode worth trying
_CLOSERS = frozenset("}]`")
_DECODER = json.JSONDecoder()
_FUNCTION_NAME = re.compile(r"[\w.\-]+")
_MISTRAL_NAME = re.compile(r"[\w.\-]*(?:\[CALL_ID\][\w\-]*)?(?:\[[A-Z_]*\]?)?")


class _Mode(Enum):
    TEXT = "text"
    BLOCK = "block"  # inside <tool_call> ... </tool_call>
    MISTRAL = "mistral"  # after [TOOL_CALLS]
    BARE = "bare"  # output began like a JSON call


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style (``call_`` and 24 random characters)."""
    return "call_" + secrets.token_hex(12)


def parse_tool_calls(value: Any, *, explicit: bool) -> list[ToolCall] | None:
    """The calls a decoded JSON value describes, or ``None`` if it is not (only) calls.

    ``explicit`` says a marker announced the calls, so a call without arguments is accepted
    and unknown keys are tolerated; a bare JSON value must look exactly like a call.
    """
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    for item in items:
        call = _call_from(item, explicit=explicit)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def _call_from(item: Any, *, explicit: bool) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    if not explicit and not set(item) <= _CALL_KEYS:
        return None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    if "arguments" in item:
        arguments = item["arguments"]
    elif "parameters" in item:
        arguments = item["parameters"]
    elif explicit:
        arguments = {}
    else:
        return None
    return _make_call(name.strip(), arguments)


def _make_call(name: str, arguments: Any) -> ToolCall | None:
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        arguments = {}
    elif isinstance(arguments, str):
        # some models (and OpenAI's own wire format) give arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(name=name, arguments=arguments, id=new_call_id())


def _decode(text: str) -> tuple[Any, int] | None:
    """Decode the JSON value ``text`` starts with; ``None`` if it is invalid or incomplete."""
    try:
        return _DECODER.raw_decode(text)
    except ValueError:
        return None


def _partial_marker(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that is the beginning of one of ``markers``."""
    for size in range(min(len(text), max(map(len, markers)) - 1), 0, -1):
        tail = text[-size:]
        if any(marker.startswith(tail) for marker in markers):
            return size
    return 0


def _bare_call_may_start(text: str) -> bool | None:
    """Whether ``text`` (no leading space) begins a bare JSON call.

    ``True``: its first key is a call key; ``None``: too early to tell; ``False``: it is not one.
    """
    pos = 0
    if text.startswith("`"):
        if len(text) < len(_FENCE):
            return None if _FENCE.startswith(text) else False
        if not text.startswith(_FENCE):
            return False
        pos = len(_FENCE)
        lang = text[pos : pos + 4]
        if len(lang) < 4 and "json".startswith(lang) and pos + len(lang) == len(text):
            return None
        if lang == "json":
            pos += 4
    pos = _skip_space(text, pos)
    if pos < len(text) and text[pos] == "[":
        pos = _skip_space(text, pos + 1)
    if pos == len(text):
        return None
    if text[pos] != "{":
        return False
    pos = _skip_space(text, pos + 1)
    if pos == len(text):
        return None
    if text[pos] != '"':
        return False
    end = text.find('"', pos + 1)
    key = text[pos + 1 : end if end != -1 else len(text)]
    if end == -1:
        return None if any(k.startswith(key) for k in _CALL_KEYS) else False
    return key in _CALL_KEYS


def _whole_calls_of_cut_list(text: str) -> list[ToolCall] | None:
    """The calls a JSON list cut short completed (``[{call}, {call}, {"na``), or ``None``."""
    if not text.startswith("["):
        return None
    values = []
    pos = _skip_space(text, 1)
    while (decoded := _decode(text[pos:])) is not None:
        value, end = decoded
        values.append(value)
        pos = _skip_space(text, pos + end)
        if not text.startswith(",", pos):
            break
        pos = _skip_space(text, pos + 1)
    return parse_tool_calls(values, explicit=False) if values else None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


class ToolCallScanner:
    """Separates tool calls from ordinary text in a model's streamed content.

    :meth:`feed` and :meth:`finish` return the text to show now; the calls found collect in
    :attr:`calls`. Whitespace between or after calls is dropped.
    """

    def __init__(self, *, forced: bool = False, names: Collection[str] | None = None) -> None:
        #: the calls found so far, in order
        self.calls: list[ToolCall] = []
        # output a grammar forced to be calls: a list cut short (a token limit) still gives
        # the calls it completed
        self._forced = forced
        # the tools the request declared: a call naming another is text, as Ollama reads it
        # (None: any name)
        self._names = names
        self._mode = _Mode.TEXT
        self._buf = ""
        # whitespace that stood before a marker, given back if the marker leads to no call
        self._lead = ""
        # True until the first text is shown: only then can a bare JSON call begin
        self._at_start = True
        # True while a [TOOL_CALLS] region may hold more ``name[ARGS]{...}`` calls
        self._mistral_more = False
        # whether the region entered last has not had a decode attempt yet
        self._fresh = True
        self._out: list[str] = []

    @property
    def holding(self) -> bool:
        """Whether some text is held back, waiting to be decided."""
        return bool(self._buf or self._lead)

    def feed(self, text: str) -> str:
        """Take more output text; return the text that is now known not to be a call."""
        self._buf += text
        self._run(trigger=any(c in _CLOSERS for c in text), final=False)
        return self._take()

    def finish(self) -> str:
        """Decide everything held back; return what turned out to be text."""
        self._run(trigger=True, final=True)
        self._mode = _Mode.TEXT
        return self._take()

    def _take(self) -> str:
        out = "".join(self._out)
        self._out.clear()
        return out

    def _show(self, text: str) -> None:
        self._out.append(text)
        if text.strip():
            self._at_start = False

    def _enter(self, mode: _Mode) -> None:
        self._mode = mode
        self._fresh = True

    def _run(self, *, trigger: bool, final: bool) -> None:
        step = {
            _Mode.TEXT: self._text,
            _Mode.BLOCK: self._block,
            _Mode.MISTRAL: self._mistral,
            _Mode.BARE: self._bare,
        }
        while step[self._mode](trigger or self._fresh, final):
            pass

    # Each step returns True to go on with the (changed) buffer, False to wait for more text.

    def _text(self, attempt: bool, final: bool) -> bool:
        buf = self._buf
        if self._at_start:
            head = buf.lstrip()
            if not head and not final:
                return False
            if head and _bare_call_may_start(head) is not False:
                self._enter(_Mode.BARE)
                return True
        found = [(buf.find(m), m) for m in _MARKERS if m in buf]
        if found:
            index, marker = min(found)
            before = buf[:index]
            body = before.rstrip()
            self._show(body)
            self._lead = before[len(body) :]
            self._buf = buf[index + len(marker) :]
            self._at_start = self._mistral_more = False
            self._enter(_Mode.BLOCK if marker == CALL_OPEN else _Mode.MISTRAL)
            return True
        keep = 0 if final else _partial_marker(buf, _MARKERS)
        body = buf[: len(buf) - keep]
        shown = body.rstrip()
        self._show(shown)
        # whitespace waits for what follows: before a call it is dropped
        space = body[len(shown) :]
        if final:
            if not self.calls:
                self._show(space)
            self._buf = ""
        else:
            self._buf = space + buf[len(buf) - keep :]
        return False

    def _block(self, attempt: bool, final: bool) -> bool:
        buf = self._buf
        ends = [i for i in (buf.find(CALL_CLOSE), buf.find(CALL_OPEN)) if i != -1]
        if not ends and not final:
            return False
        end = min(ends) if ends else len(buf)
        inner = buf[:end]
        closing = CALL_CLOSE if buf.startswith(CALL_CLOSE, end) else ""
        calls = self._block_calls(inner, cut_short=not ends)
        if calls is None:
            self._show(self._lead + CALL_OPEN + inner + closing)
        else:
            self.calls.extend(calls)
        self._lead = ""
        self._buf = buf[end + len(closing) :]
        self._enter(_Mode.TEXT)
        return True

    def _declared(self, calls: list[ToolCall] | None) -> list[ToolCall] | None:
        """``calls`` when each names a declared tool, else ``None`` (no calls: text)."""
        if calls is None or self._names is None:
            return calls
        return calls if all(call.name in self._names for call in calls) else None

    def _block_calls(self, inner: str, *, cut_short: bool) -> list[ToolCall] | None:
        text = inner.strip()
        decoded = _decode(text)
        if decoded is None:
            return None
        value, end = decoded
        rest = text[end:].strip()
        # output cut off inside the closing tag still holds a whole call
        if rest and not (cut_short and CALL_CLOSE.startswith(rest)):
            return None
        return self._declared(parse_tool_calls(value, explicit=True))

    def _mistral(self, attempt: bool, final: bool) -> bool:
        buf = self._buf
        head = buf.lstrip()
        skipped = len(buf) - len(head)
        if not head:
            if final:
                self._reject(len(buf))
                return True
            return False
        if head[0] in "[{" and not self._mistral_more:
            decoded = _decode(head) if attempt or final else None
            if decoded is None:
                if final:
                    self._reject(len(buf))
                    return True
                self._fresh = False
                return False
            value, end = decoded
            self._mistral_done(
                self._declared(parse_tool_calls(value, explicit=True)), skipped + end
            )
            return True
        if self._mistral_more and head.startswith(_MISTRAL):
            # the next call has its own marker: end this region, the text step takes it
            self._reject(0)
            return True
        args_at = head.find(_ARGS)
        if args_at == -1:
            if not final and _MISTRAL_NAME.fullmatch(head):
                return False
            self._reject(skipped)
            return True
        name = head[:args_at].split("[CALL_ID]")[0].strip()
        rest = head[args_at + len(_ARGS) :]
        value_at = _skip_space(rest, 0)
        decoded = _decode(rest[value_at:]) if attempt or final else None
        starts_json = value_at == len(rest) or rest[value_at] in "{["
        if decoded is None:
            if final or not _FUNCTION_NAME.fullmatch(name) or not starts_json:
                self._reject(len(buf) if final else skipped)
                return True
            self._fresh = False
            return False
        value, end = decoded
        call = _make_call(name, value) if _FUNCTION_NAME.fullmatch(name) else None
        consumed = skipped + args_at + len(_ARGS) + value_at + end
        if self._mistral_done(self._declared(None if call is None else [call]), consumed):
            self._mode, self._mistral_more = _Mode.MISTRAL, True
            self._fresh = True
        return True

    def _mistral_done(self, calls: list[ToolCall] | None, consumed: int) -> bool:
        """Take the calls of a [TOOL_CALLS] region; whether there were any."""
        if calls is None:
            self._reject(consumed)
            return False
        self.calls.extend(calls)
        self._lead = ""
        self._buf = self._buf[consumed:]
        self._enter(_Mode.TEXT)
        return True

    def _reject(self, consumed: int) -> None:
        """The text after [TOOL_CALLS] up to ``consumed`` is no call: show it as text."""
        if self._mistral_more:
            # a region that already gave calls simply ends here
            self._lead = ""
        else:
            self._show(self._lead + _MISTRAL + self._buf[:consumed])
            self._lead = ""
            self._buf = self._buf[consumed:]
        self._mistral_more = False
        self._enter(_Mode.TEXT)
        self._at_start = False

    def _bare(self, attempt: bool, final: bool) -> bool:
        if final and self._forced and _decode(self._buf.strip()) is None:
            # the grammar made it calls: the ones completed count, a cut-off rest is no text
            self.calls.extend(_whole_calls_of_cut_list(self._buf.strip()) or [])
            self._buf = ""
            self._enter(_Mode.TEXT)
            return True
        head = self._buf.lstrip()
        verdict = _bare_call_may_start(head)
        if verdict is None and not final:
            return False
        if not verdict:
            return self._not_bare()
        body = head
        fenced = body.startswith(_FENCE)
        if fenced:
            body = body[len(_FENCE) :]
            body = body[4:] if body.startswith("json") else body
        body = body.lstrip()
        decoded = _decode(body) if attempt or final else None
        if decoded is None:
            self._fresh = False
            return self._not_bare() if final else False
        value, end = decoded
        calls = self._declared(parse_tool_calls(value, explicit=False))
        if calls is None:
            return self._not_bare()
        after = body[end:]
        if fenced:
            tail = after.lstrip()
            if tail.startswith(_FENCE):
                after = tail[len(_FENCE) :]
            elif not final and _FENCE.startswith(tail):
                return False
            elif tail:
                return self._not_bare()
        self.calls.extend(calls)
        self._buf = after
        self._at_start = False
        self._enter(_Mode.TEXT)
        return True

    def _not_bare(self) -> bool:
        self._at_start = False
        self._enter(_Mode.TEXT)
        return True
