"""A Responses request that continues an earlier response (``previous_response_id``) or a
kept conversation (``conversation``): its body with the earlier items before its own
input, over HTTP and over WebSocket."""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from power_api_openai.conversation_store import ConversationStore
from power_api_openai.response_ids import item_id
from power_api_openai.response_store import ResponseStore
from power_api_openai.responses_request import parse_input
from power_api_openai.validation import invalid_type
from power_core.errors import InvalidRequest, PowerError
from power_core.server.views import compact_json

log = logging.getLogger("power_api_openai")

#: the id prefix OpenAI gives each kind of input item
_ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


#: the most ``item_reference`` items one request may hold
MAX_REFERENCES = 1000
#: the client's ids kept as they are: ones a URL path carries as they are (OpenAI's style)
_USABLE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class PreviousResponseNotFound(InvalidRequest):
    """``previous_response_id`` names no response this server (or connection) holds."""

    code = "previous_response_not_found"


@dataclass
class ContinuedBody:
    """A request body ready to parse, and what storing its response needs."""

    body: dict[str, Any]
    #: the earlier conversation then the request's own input items (each with an id):
    #: what the response continues
    conversation: list[Any] = field(default_factory=list)
    #: where the request's own items start in :attr:`conversation`
    first_input: int = 0
    #: the response it continues
    continues: str | None = None
    #: the conversation it reads and adds to
    conversation_id: str | None = None

    @property
    def new_items(self) -> list[Any]:
        """The request's own input items, with their ids."""
        return self.conversation[self.first_input :]

    def stored_with(self, output: list[Any]) -> tuple[list[Any], slice]:
        """The conversation up to an answer of ``output`` items, and where this request's
        own input items are in it (what :meth:`ResponseStore.put` takes)."""
        return [*self.conversation, *output], slice(self.first_input, len(self.conversation))


def keep_response(
    continued: ContinuedBody,
    response: dict[str, Any],
    output: list[Any],
    store: ResponseStore,
    conversations: ConversationStore,
    *,
    into_conversation: bool = True,
) -> None:
    """After a finished response: keep it in ``store`` unless it said ``store: false``, and
    add its input and output items to its conversation, if it names one (and
    ``into_conversation``). A conversation that cannot take them (deleted meanwhile, a full
    disk) is logged: the response stands."""
    if response["store"]:
        store.put(response, *continued.stored_with(output))
    if continued.conversation_id is None or not into_conversation:
        return
    try:
        conversations.append(
            continued.conversation_id,
            [*continued.new_items, *output],
            "conversation",
            limit_param=None,
        )
    except PowerError as exc:
        log.warning("response %s was not added to its conversation: %s", response["id"], exc)


class KeptResponses(Protocol):
    """Where earlier responses are found: their conversations, and their items by id."""

    def conversation(self, response_id: str) -> list[Any] | None: ...

    def items(self, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class KeptInTurn:
    """Several places that keep responses, asked in turn (a WebSocket connection's own,
    then the server's)."""

    places: tuple[KeptResponses, ...]

    def conversation(self, response_id: str) -> list[Any] | None:
        for place in self.places:
            found = place.conversation(response_id)
            if found is not None:
                return found
        return None

    def items(self, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        wanted = set(item_ids)
        for place in self.places:
            found.update(place.items(wanted - found.keys()))
        return found


def continued_body(
    body: dict[str, Any],
    kept: KeptResponses,
    conversations: ConversationStore,
) -> ContinuedBody:
    """``body`` without ``previous_response_id`` or ``conversation``, its ``input`` after
    the conversation ``kept`` holds for that response id (``previous_response_not_found``
    when none) or the items of that conversation (404 when none), each ``item_reference``
    in it replaced by the item it names."""
    body = dict(body)
    continues = body.pop("previous_response_id", None)
    conversation_id = _conversation_id(body.pop("conversation", None))
    if continues is not None and conversation_id is not None:
        raise InvalidRequest(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            param="conversation",
        )
    earlier = _earlier_items(kept, conversations, continues, conversation_id)
    held = {item.get("id"): item for item in earlier if isinstance(item, dict)}
    given = body.get("input")
    refuse_duplicates(given, held, "input")
    resolved = resolved_references(given, held, kept, conversations.max_bytes)
    new_items = with_ids(resolved, set(held))
    if continues is None and conversation_id is None:
        if resolved is not given:
            body["input"] = resolved
        return ContinuedBody(body, new_items or [])
    if new_items is None:
        if given is not None:  # the parser says what is wrong
            return ContinuedBody(body, continues=continues, conversation_id=conversation_id)
        new_items = []
    # checked alone first, so that an error names the client's own item (input[0], not
    # its place in the whole conversation)
    parse_input(new_items)
    conversation = [*earlier, *new_items]
    return ContinuedBody(
        {**body, "input": conversation}, conversation, len(earlier), continues, conversation_id
    )


def _earlier_items(
    kept: KeptResponses,
    conversations: ConversationStore,
    continues: Any,
    conversation_id: str | None,
) -> list[Any]:
    """The items before the request's own: its conversation's, or those of the response it
    continues; none for a request that names neither."""
    if conversation_id is not None:
        conversation = conversations.get(conversation_id, "conversation")
        conversations.check_room(conversation, "conversation")
        return conversation.items
    if continues is None:
        return []
    if not isinstance(continues, str):
        raise invalid_type("previous_response_id", "a string", continues)
    found = kept.conversation(continues)
    if found is None:
        shown = continues if len(continues) <= 80 else continues[:80] + "..."
        raise PreviousResponseNotFound(
            f"Previous response with id '{shown}' not found.", param="previous_response_id"
        )
    return found


def resolved_references(
    value: Any,
    held: Mapping[Any, Any],
    kept: KeptResponses,
    limit_bytes: int,
    name: str = "input",
) -> Any:
    """``input`` (or a conversation's ``items``: ``name``) with each ``item_reference``
    replaced by the item it names: one ``held`` before (by id), else one of a kept
    response (its input or output, each response read once). ``value`` itself when it
    holds no reference. At most :data:`MAX_REFERENCES` references, and the items they
    bring at most ``limit_bytes`` (what one request may carry): a small request must not
    grow into a huge one."""
    if not isinstance(value, list) or not any(map(_is_reference, value)):
        return value
    named: dict[int, str] = {}
    for index, item in enumerate(value):
        if _is_reference(item):
            reference = item.get("id")
            if not isinstance(reference, str):
                raise invalid_type(f"{name}[{index}].id", "a string", reference)
            named[index] = reference
    if len(named) > MAX_REFERENCES:
        raise InvalidRequest(
            f"{len(named)} item references; at most {MAX_REFERENCES} in one request.",
            param=name,
        )
    wanted = set(named.values())
    found = {ref: held[ref] for ref in wanted if ref in held}
    found.update(kept.items(wanted - found.keys()))
    copies: dict[str, tuple[dict[str, Any], int]] = {}
    resolved, brought = [], 0
    for index, item in enumerate(value):
        reference = named.get(index)
        if reference is None:
            resolved.append(item)
            continue
        if reference not in found:
            raise InvalidRequest(
                f"Item with id '{reference[:80]}' not found: an item_reference names an item "
                "of the conversation, of the response continued, or of a kept response.",
                param=f"{name}[{index}].id",
            )
        if reference not in copies:
            # a copy of its own: the id stays the named item's
            copy = {key: value for key, value in found[reference].items() if key != "id"}
            copies[reference] = copy, len(compact_json(copy))
        copy, size = copies[reference]
        brought += size
        if brought > limit_bytes:
            raise InvalidRequest(
                f"the items referenced come to more than {limit_bytes} bytes, what one "
                "request may carry (max_body_bytes).",
                param=name,
            )
        resolved.append(copy)
    return resolved


def refuse_duplicates(value: Any, held: Container[Any], name: str) -> None:
    """A 400 for an item of ``value`` whose id an item ``held`` before has (as OpenAI's):
    sent again, the model would read it twice."""
    if not isinstance(value, list):
        return
    for index, item in enumerate(value):
        own = item.get("id") if isinstance(item, dict) and not _is_reference(item) else None
        if isinstance(own, str) and own in held:
            raise InvalidRequest(
                f"Duplicate item found with id '{own[:80]}'. Remove duplicate items from "
                "your input and try again.",
                param=f"{name}[{index}].id",
            )


def _is_reference(item: Any) -> bool:
    """An ``item_reference``: its type says so, or it has nothing but an id (the type is
    optional in OpenAI's API)."""
    if not isinstance(item, dict):
        return False
    kind = item.get("type")
    return kind == "item_reference" or (kind is None and set(item) == {"id"})


def _conversation_id(value: Any) -> str | None:
    """``conversation``: an id, or an object with one."""
    param = "conversation"
    if isinstance(value, dict):
        value = value.get("id")
        param = "conversation.id"
        if not isinstance(value, str):
            raise invalid_type(param, "a string", value)
    elif value is not None and not isinstance(value, str):
        raise invalid_type(param, "a string or an object with an id", value)
    if value == "":
        raise InvalidRequest(f"'{param}' must not be empty.", param=param)
    return value


def with_ids(value: Any, taken: set[Any] | None = None) -> list[Any] | None:
    """``input`` as a list of items as OpenAI lists them, each with an id of its own (a
    string is one user message), none of them one in ``taken``; ``None`` when it is
    neither a string nor a list."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        return None
    seen: set[Any] = set(taken or ())
    items = []
    for item in value:
        if isinstance(item, dict):
            item = _listed(item, seen)
            seen.add(item.get("id"))
        items.append(item)
    return items


def _listed(item: dict[str, Any], seen: set[Any]) -> dict[str, Any]:
    """An input item as OpenAI lists it: with an id (the client's unless it is not one a
    URL can carry or names an earlier item, as listing pages by id), a status, a
    message's text as a part, and the fields OpenAI's item types always have."""
    kind = item.get("type") or ("message" if "role" in item else None)
    prefix = _ITEM_PREFIXES.get(kind) if isinstance(kind, str) else None
    if prefix is None:
        return item  # not an item this server reads: the parser says so
    listed = dict(item)
    own = listed.get("id")
    if not isinstance(own, str) or not _USABLE_ID.fullmatch(own) or own in seen:
        listed["id"] = item_id(prefix)
    if kind == "message":
        listed["type"] = "message"
        content = listed.get("content")
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
            if listed.get("role") == "assistant":
                content = [{"type": "output_text", "text": content[0]["text"]}]
        if isinstance(content, list):
            listed["content"] = [_part(part) for part in content]
    if kind == "reasoning":
        listed.setdefault("summary", [])
    if kind in ("message", "function_call", "function_call_output"):
        listed.setdefault("status", "completed")
    return listed


def _part(part: Any) -> Any:
    """A content part with the fields OpenAI's types always give it."""
    if not isinstance(part, dict):
        return part
    if part.get("type") == "output_text":
        return {**part, "annotations": part.get("annotations") or []}
    if part.get("type") == "input_image":
        return {"detail": "auto", **part}
    return part
