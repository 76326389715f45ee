"""The Conversations API (``/v1/conversations``) and responses that read and extend a
conversation, through the official ``openai`` SDK, unchanged, against the real SmolLM2
model; conversations outlive a restart of the server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI

from api_openai.test_sdk_responses_socket import answer, dumped
from api_openai.wire_reading import MODEL, assert_error_shape
from conftest import PowerServer, import_test_model

pytestmark = pytest.mark.model

GREEDY: dict[str, Any] = {"model": MODEL, "temperature": 0, "max_output_tokens": 8}


def texts(items: Any) -> list[tuple[str, str]]:
    """``(role, text)`` of each message item."""
    return [(item.role, item.content[0].text) for item in items]


def test_a_conversation_is_created_read_updated_and_deleted(client: OpenAI) -> None:
    conversation = client.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "Hello."},
            {"role": "assistant", "content": "Hi there."},
        ],
        metadata={"topic": "greetings"},
    )
    assert conversation.id.startswith("conv_") and conversation.object == "conversation"
    assert conversation.metadata == {"topic": "greetings"}
    assert client.conversations.retrieve(conversation.id).created_at == conversation.created_at
    listed = client.conversations.items.list(conversation.id, order="asc")
    assert texts(listed.data) == [("user", "Hello."), ("assistant", "Hi there.")]
    assert listed.has_more is False
    first, second = listed.data
    assert first.id.startswith("msg_") and first.status == "completed"  # type: ignore[union-attr]
    assert first.content[0].type == "input_text"  # type: ignore[union-attr]
    assert second.content[0].type == "output_text"  # type: ignore[union-attr]
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "Bye."}]
    )
    assert texts(added.data) == [("user", "Bye.")]
    assert added.first_id == added.last_id == added.data[0].id
    # newest first by default, a page at a time (the SDK follows 'after')
    newest = client.conversations.items.list(conversation.id, limit=1)
    assert texts(newest.data) == [("user", "Bye.")] and newest.has_more is True
    every = list(client.conversations.items.list(conversation.id, limit=1))
    assert [text for _, text in texts(every)] == ["Bye.", "Hi there.", "Hello."]
    fetched = client.conversations.items.retrieve(second.id, conversation_id=conversation.id)
    assert texts([fetched]) == [("assistant", "Hi there.")]
    updated = client.conversations.update(conversation.id, metadata={"topic": "farewells"})
    assert updated.metadata == {"topic": "farewells"}
    left = client.conversations.items.delete(first.id, conversation_id=conversation.id)
    assert left.id == conversation.id and left.metadata == {"topic": "farewells"}
    remaining = client.conversations.items.list(conversation.id, order="asc")
    assert [text for _, text in texts(remaining.data)] == ["Hi there.", "Bye."]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(first.id, conversation_id=conversation.id)
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.id == conversation.id
    for call in (
        lambda: client.conversations.retrieve(conversation.id),
        lambda: client.conversations.items.list(conversation.id),
        lambda: client.conversations.delete(conversation.id),
        lambda: client.responses.create(**GREEDY, input="Hi", conversation=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()


def test_responses_read_a_conversation_and_add_their_items_to_it(client: OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"role": "user", "content": "My name is Ada."}]
    )
    first = client.responses.create(
        **GREEDY, input="What is my name?", conversation={"id": conversation.id}
    )
    assert first.conversation is not None and first.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in items] == ["message", "message", "message"]
    assert texts(items[:2]) == [("user", "My name is Ada."), ("user", "What is my name?")]
    # the response's own output item, as the response gave it
    assert items[2].id == first.output[0].id
    assert texts(items[2:]) == [("assistant", first.output_text)]
    # the next turn reads the whole conversation: as many tokens as a resend of it
    second = client.responses.create(**GREEDY, input="Spell it.", conversation=conversation.id)
    resend = client.responses.create(
        **GREEDY,
        input=[*dumped(items), {"role": "user", "content": "Spell it."}],  # type: ignore[list-item]
        store=False,
    )
    assert second.usage is not None and resend.usage is not None
    assert second.usage.input_tokens == resend.usage.input_tokens
    # a streamed response adds its items too, once it ends
    events = list(
        client.responses.create(
            **GREEDY, input="Thanks.", conversation=conversation.id, stream=True
        )
    )
    streamed = events[-1].response  # type: ignore[union-attr]
    assert streamed.conversation.id == conversation.id
    everything = list(client.conversations.items.list(conversation.id, order="asc"))
    assert len(everything) == 7
    assert everything[-1].id == streamed.output[0].id
    assert texts(everything[-2:-1]) == [("user", "Thanks.")]
    # instructions shape one response only: they are not added
    client.responses.create(
        **GREEDY, input="Ok.", instructions="Be brief.", conversation=conversation.id
    )
    roles = [item.role for item in client.conversations.items.list(conversation.id, limit=100)]  # type: ignore[union-attr]
    assert "system" not in roles and "developer" not in roles


def test_a_response_that_fails_adds_nothing(client: OpenAI) -> None:
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            **GREEDY,
            input=[{"role": "user", "content": "Hi"}, {"type": "bogus"}],  # type: ignore[list-item]
            conversation=conversation.id,
        )
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="ghost:1b", input="Hi", conversation=conversation.id)
    assert client.conversations.items.list(conversation.id).data == []


def test_responses_finishing_together_both_land(client: OpenAI) -> None:
    conversation = client.conversations.create()
    replies: list[Any] = []

    def ask(question: str) -> None:
        replies.append(
            client.responses.create(**GREEDY, input=question, conversation=conversation.id)
        )

    threads = [threading.Thread(target=ask, args=(f"Question {n}?",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = list(client.conversations.items.list(conversation.id, limit=100, order="asc"))
    assert len(replies) == 4 and len(items) == 8
    questions = sorted(text for role, text in texts(items) if role == "user")
    assert questions == [f"Question {n}?" for n in range(4)]
    assert len({item.id for item in items}) == 8


def test_the_websocket_mode_reads_and_extends_a_conversation(client: OpenAI) -> None:
    conversation = client.conversations.create(items=[{"role": "user", "content": "I like tea."}])
    with client.responses.connect() as connection:
        reply = answer(connection, input="What do I like?", conversation=conversation.id)
    assert reply.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert texts(items) == [
        ("user", "I like tea."),
        ("user", "What do I like?"),
        ("assistant", reply.output[0].content[0].text),
    ]


def test_input_tokens_are_counted_as_a_response_would_read_them(client: OpenAI) -> None:
    fields: dict[str, Any] = {
        "input": "Name three colours.",
        "instructions": "Answer in French.",
    }
    counted = client.responses.input_tokens.count(model=MODEL, **fields)
    assert counted.object == "response.input_tokens"
    reply = client.responses.create(**GREEDY, **fields, store=True)
    assert reply.usage is not None and counted.input_tokens == reply.usage.input_tokens
    follow = client.responses.input_tokens.count(
        model=MODEL, input="And three more.", previous_response_id=reply.id
    )
    continued = client.responses.create(
        **GREEDY, input="And three more.", previous_response_id=reply.id
    )
    assert continued.usage is not None
    assert follow.input_tokens == continued.usage.input_tokens > counted.input_tokens
    # a continuation counts with the model of the response it continues
    modelless = client.responses.input_tokens.count(
        input="And three more.", previous_response_id=reply.id
    )
    assert modelless.input_tokens == follow.input_tokens
    conversation = client.conversations.create(items=[{"role": "user", "content": "Hello."}])
    in_conversation = client.responses.input_tokens.count(
        model=MODEL, input="Hi.", conversation=conversation.id
    )
    alone = client.responses.input_tokens.count(model=MODEL, input="Hi.")
    assert in_conversation.input_tokens > alone.input_tokens
    # counting adds nothing to the conversation
    assert len(client.conversations.items.list(conversation.id).data) == 1
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(model="ghost:1b", input="Hi")
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.input_tokens.count(model=MODEL)
    assert missing.value.param == "input"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        (
            "POST",
            "/conversations",
            {"items": [{"role": "user", "content": "x"}] * 21},
            400,
            "items",
        ),
        ("POST", "/conversations", {"items": [{"type": "bogus"}]}, 400, "items[0].type"),
        ("POST", "/conversations", {"items": "Hello"}, 400, "items"),
        ("POST", "/conversations", {"metadata": {str(n): "v" for n in range(17)}}, 400, "metadata"),
        ("POST", "/conversations", {"metadata": {"k": 5}}, 400, "metadata.k"),
        ("GET", "/conversations/conv_123", None, 404, "conversation_id"),
        ("GET", "/conversations/..%2F..%2Fconfig", None, 404, None),
        ("DELETE", "/conversations/conv_" + "0" * 48, None, 404, "conversation_id"),
        ("GET", "/conversations/conv_123/items?limit=500", None, 404, "conversation_id"),
        (
            "POST",
            "/responses",
            {"model": MODEL, "input": "Hi", "conversation": "conv_1", "previous_response_id": "r"},
            400,
            "conversation",
        ),
        (
            "POST",
            "/responses",
            {"model": MODEL, "input": "Hi", "conversation": 5},
            400,
            "conversation",
        ),
        (
            "POST",
            "/responses",
            {"model": MODEL, "input": "Hi", "conversation": {"id": 5}},
            400,
            "conversation.id",
        ),
        (
            "POST",
            "/responses",
            {"model": MODEL, "input": "Hi", "conversation": "c"},
            404,
            "conversation",
        ),
        ("POST", "/responses/input_tokens", {"model": MODEL, "input": 5}, 400, "input"),
    ],
)
def test_bad_requests_are_refused_in_openais_shape(
    v1: str, method: str, path: str, body: Any, status: int, param: str | None
) -> None:
    reply = requests.request(method, v1 + path, json=body, timeout=60)
    assert_error_shape(reply, status, param)


def test_bad_requests_leave_a_conversation_as_it_was(client: OpenAI, v1: str) -> None:
    conversation = client.conversations.create(
        items=[{"role": "user", "content": "Keep me."}], metadata={"a": "1"}
    )
    url = f"{v1}/conversations/{conversation.id}"
    refused = [
        requests.post(url + "/items", json={"items": []}, timeout=60),
        requests.post(
            url + "/items", json={"items": [{"role": "nobody", "content": "x"}]}, timeout=60
        ),
        requests.post(url + "/items", data=b"{not json", timeout=60),
        requests.post(url, json={"metadata": {"a": 1}}, timeout=60),
        requests.post(url, json={}, timeout=60),
        requests.get(url + "/items?order=sideways", timeout=60),
        requests.get(url + "/items?after=msg_unknown", timeout=60),
        requests.delete(url + "/items/msg_unknown", timeout=60),
    ]
    for reply, status in zip(refused, [400] * 7 + [404], strict=True):
        assert_error_shape(reply, status)
    assert client.conversations.retrieve(conversation.id).metadata == {"a": "1"}
    assert texts(client.conversations.items.list(conversation.id).data) == [("user", "Keep me.")]


# ---------------------------------------------------------------------- across a restart
@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    server = PowerServer(tmp_path_factory.mktemp("conversations-home"))
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


def test_conversations_and_responses_outlive_a_restart_and_are_kept_whole(
    restartable: PowerServer,
) -> None:
    sdk = OpenAI(base_url=restartable.url + "/v1", api_key="x", max_retries=0)
    kept = sdk.conversations.create(
        items=[{"role": "user", "content": "Remember me."}], metadata={"k": "v"}
    )
    gone = sdk.conversations.create()
    sdk.conversations.delete(gone.id)
    first = sdk.responses.create(**GREEDY, input="Name a fruit.")
    unstored = sdk.responses.create(**GREEDY, input="Name a fruit.", store=False)
    restartable.stop()
    restartable.start()
    # a kept response is found, continued and its items referenced after the restart
    assert sdk.responses.retrieve(first.id).output_text == first.output_text
    continued = sdk.responses.create(
        **GREEDY, input="Another?", previous_response_id=first.id, store=False
    )
    resend = sdk.responses.create(
        **GREEDY,
        input=[
            {"type": "item_reference", "id": first.output[0].id},
            {"role": "user", "content": "Another?"},
        ],  # type: ignore[list-item]
        store=False,
    )
    assert continued.usage is not None and resend.usage is not None
    assert continued.usage.input_tokens > resend.usage.input_tokens  # the question too
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(unstored.id)
    assert sorted(path.name for path in (restartable.home / "responses").iterdir()) == [
        f"{first.id}.jsonl"
    ]
    assert sdk.conversations.retrieve(kept.id).metadata == {"k": "v"}
    assert texts(sdk.conversations.items.list(kept.id).data) == [("user", "Remember me.")]
    with pytest.raises(openai.NotFoundError):
        sdk.conversations.retrieve(gone.id)
    # one log each, a JSON value a line: the conversation, then each change
    folder: Path = restartable.home / "conversations"
    files = sorted(path.name for path in folder.iterdir())
    assert files == [f"{kept.id}.jsonl"]
    header, added = map(json.loads, (folder / files[0]).read_text().splitlines())
    assert header["id"] == kept.id and added["add"][0]["role"] == "user"


# ---------------------------------------------------------------------- item references
def test_item_references_name_items_of_kept_responses_and_conversations(
    client: OpenAI,
) -> None:
    first = client.responses.create(**GREEDY, input="Name a colour.")
    [asked] = client.responses.input_items.list(first.id).data
    follow_up = {"role": "user", "content": "Another?"}
    by_reference = client.responses.create(
        **GREEDY,
        input=[
            {"type": "item_reference", "id": asked.id},
            {"id": first.output[0].id},  # the type may be left out
            follow_up,
        ],  # type: ignore[list-item]
    )
    resend = client.responses.create(
        **GREEDY,
        input=[*dumped([asked, *first.output]), follow_up],  # type: ignore[list-item]
        store=False,
    )
    assert by_reference.usage is not None and resend.usage is not None
    assert by_reference.usage.input_tokens == resend.usage.input_tokens
    listed = client.responses.input_items.list(by_reference.id, order="asc").data
    assert texts(listed) == [
        ("user", "Name a colour."),
        ("assistant", first.output_text),
        ("user", "Another?"),
    ]
    # in a conversation: its own items, and a kept response's, added as items of their own
    conversation = client.conversations.create(
        items=[{"type": "item_reference", "id": first.output[0].id}]
    )
    [copied] = client.conversations.items.list(conversation.id).data
    assert texts([copied]) == [("assistant", first.output_text)]
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "item_reference", "id": copied.id}]
    )
    assert added.data[0].id != copied.id  # a second copy, with an id of its own
    reply = client.responses.create(
        **GREEDY,
        input=[{"type": "item_reference", "id": asked.id}],
        conversation=conversation.id,
    )
    items = client.conversations.items.list(conversation.id, order="asc", limit=100).data
    assert texts(items[2:3]) == [("user", "Name a colour.")]
    assert items[-1].id == reply.output[0].id
    for bad, param in (
        ([{"type": "item_reference", "id": "msg_unknown"}], "input[0].id"),
        ([{"role": "user", "content": "x"}, {"type": "item_reference", "id": 5}], "input[1].id"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(**GREEDY, input=bad)  # type: ignore[arg-type]
        assert caught.value.param == param
    with pytest.raises(openai.BadRequestError) as unknown:
        client.conversations.items.create(
            conversation.id, items=[{"type": "item_reference", "id": "msg_unknown"}]
        )
    assert unknown.value.param == "items[0].id"


def test_over_websocket_a_reference_reaches_the_connections_own_responses(
    client: OpenAI,
) -> None:
    with client.responses.connect() as connection:
        first = answer(connection, input="Say hi.", store=False)
        second = answer(
            connection,
            input=[
                {"type": "item_reference", "id": first.output[0].id},
                {"role": "user", "content": "Again."},
            ],
            store=False,
        )
    assert second.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.BadRequestError):  # kept by that connection only
        client.responses.create(
            **GREEDY, input=[{"type": "item_reference", "id": first.output[0].id}]
        )


# ---------------------------------------------------------------------- from a review
def test_a_client_deleting_as_it_pages_reaches_the_end(client: OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"role": "user", "content": f"Line {n}."} for n in range(15)]
    )
    deleted = 0
    for item in client.conversations.items.list(conversation.id, limit=4):
        client.conversations.items.delete(item.id, conversation_id=conversation.id)
        deleted += 1
    assert deleted == 15
    assert client.conversations.items.list(conversation.id).data == []


def test_an_id_the_conversation_holds_already_is_refused_as_a_duplicate(client: OpenAI) -> None:
    conversation = client.conversations.create(items=[{"role": "user", "content": "Hi."}])
    reply = client.responses.create(**GREEDY, input="Name a fruit.", conversation=conversation.id)
    [held, *_] = client.conversations.items.list(conversation.id, order="asc").data
    with pytest.raises(openai.BadRequestError) as twice:
        client.conversations.items.create(
            conversation.id, items=[{"role": "user", "content": "Hi.", "id": held.id}]
        )
    assert twice.value.param == "items[0].id" and "Duplicate item" in str(twice.value)
    # the response's output sent back with the conversation: the model would read it twice
    with pytest.raises(openai.BadRequestError) as resent:
        client.responses.create(
            **GREEDY,
            input=[*dumped(reply.output), {"role": "user", "content": "More."}],  # type: ignore[list-item]
            conversation=conversation.id,
        )
    assert resent.value.param == "input[0].id"
    with pytest.raises(openai.BadRequestError) as continued:
        client.responses.create(
            **GREEDY,
            input=dumped(reply.output),
            previous_response_id=reply.id,  # type: ignore[arg-type]
        )
    assert continued.value.param == "input[0].id"
    assert len(client.conversations.items.list(conversation.id).data) == 3


def test_items_are_kept_in_the_shapes_openais_types_give_them(client: OpenAI, v1: str) -> None:
    conversation = client.conversations.create(
        items=[
            {"role": "user", "content": "x", "id": "a/b"},  # no id a URL path can carry
            {"role": "user", "content": "y", "id": ".."},
            {"role": "user", "content": "z", "id": "msg_kept-as_is"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hello"}],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "content": [{"type": "reasoning_text", "text": "t"}],
            },
        ]  # type: ignore[list-item]
    )
    items = client.conversations.items.list(conversation.id, order="asc").data
    ids = [item.id for item in items]
    assert ids[0].startswith("msg_") and ids[1].startswith("msg_") and ids[2] == "msg_kept-as_is"
    for item_id in ids:  # each one reachable by its id
        assert (
            client.conversations.items.retrieve(item_id, conversation_id=conversation.id).id
            == item_id
        )
    assert items[3].content[0].annotations == []  # type: ignore[union-attr]
    assert items[4].summary == []  # type: ignore[union-attr]
    for item in (
        {"role": "user", "content": "x", "status": "weird"},
        {"type": "reasoning", "summary": [1]},
    ):
        refused = requests.post(
            f"{v1}/conversations/{conversation.id}/items", json={"items": [item]}, timeout=60
        )
        assert_error_shape(refused, 400)
        assert refused.json()["error"]["param"].startswith("items[0].")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/conversations/conv_1", "DELETE, GET, POST"),
        ("PATCH", "/conversations/conv_1/items", "GET, POST"),
        ("POST", "/conversations/conv_1/items/msg_1", "DELETE, GET"),
        ("GET", "/conversations", "POST"),
        ("PUT", "/responses/resp_1", "DELETE, GET"),
        ("PUT", "/responses/input_tokens", "POST"),
    ],
)
def test_a_wrong_method_is_405_naming_the_right_ones(
    v1: str, method: str, path: str, allowed: str
) -> None:
    reply = requests.request(method, v1 + path, timeout=60)
    assert_error_shape(reply, 405)
    assert sorted(reply.headers["Allow"].split(", ")) == sorted(allowed.split(", "))


def test_a_prepared_turn_over_websocket_adds_nothing_to_the_conversation(client: OpenAI) -> None:
    conversation = client.conversations.create()
    with client.responses.connect() as connection:
        answer(connection, input="Name a fruit.", conversation=conversation.id, generate=False)
        reply = answer(connection, input="Name a fruit.", conversation=conversation.id)
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert texts(items) == [("user", "Name a fruit."), ("assistant", reply.output_text)]


def test_two_servers_on_one_home_both_add_to_a_conversation(restartable: PowerServer) -> None:
    beside = PowerServer(restartable.home)  # the same home, a port of its own
    beside.start()
    try:
        clients = [
            OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
            for server in (restartable, beside)
        ]
        conversation = clients[0].conversations.create()

        def add(sdk: OpenAI, name: str) -> None:
            for n in range(25):
                sdk.conversations.items.create(
                    conversation.id, items=[{"role": "user", "content": f"{name} {n}"}]
                )

        threads = [
            threading.Thread(target=add, args=(sdk, name))
            for sdk, name in zip(clients, ("first", "second"), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for sdk in clients:
            listed = list(sdk.conversations.items.list(conversation.id, limit=100))
            assert len(listed) == 50 and len({item.id for item in listed}) == 50
    finally:
        beside.stop()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """A server whose request bodies, and so conversations, take at most 6000 bytes."""
    server = PowerServer(tmp_path_factory.mktemp("small-home"), max_body_bytes="6000")
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


def test_a_conversation_holds_what_one_request_may_carry(small_server: PowerServer) -> None:
    sdk = OpenAI(base_url=small_server.url + "/v1", api_key="x", max_retries=0)
    conversation = sdk.conversations.create()
    line = {"role": "user", "content": "x" * 1500}
    sdk.conversations.items.create(conversation.id, items=[line, line])
    with pytest.raises(openai.BadRequestError) as full:
        sdk.conversations.items.create(conversation.id, items=[line, line])
    assert full.value.code == "conversation_too_large" and full.value.param == "items"
    sdk.conversations.items.create(conversation.id, items=[line])  # what fits still goes in
    log = small_server.home / "conversations" / f"{conversation.id}.jsonl"
    room = 6000 - log.stat().st_size - 200
    sdk.conversations.items.create(conversation.id, items=[{"role": "user", "content": "y" * room}])
    # a response begins with room left, and its items go in past the limit
    sdk.responses.create(**GREEDY, input="Name a fruit.", conversation=conversation.id)
    assert log.stat().st_size > 6000
    with pytest.raises(openai.BadRequestError) as unread:  # refused before generating
        sdk.responses.create(**GREEDY, input="Hi", conversation=conversation.id)
    assert unread.value.code == "conversation_too_large" and unread.value.param == "conversation"
    assert len(sdk.conversations.items.list(conversation.id).data) == 6


def test_references_cannot_grow_a_small_request_into_a_huge_one(
    client: OpenAI, small_server: PowerServer, v1: str
) -> None:
    first = client.responses.create(**GREEDY, input="Name a fruit.")
    [asked] = client.responses.input_items.list(first.id).data
    conversation = client.conversations.create()
    # the count is checked before any reference is looked up
    many = [{"type": "item_reference", "id": asked.id}] * 21
    refused = requests.post(
        f"{v1}/conversations/{conversation.id}/items", json={"items": many}, timeout=60
    )
    assert_error_shape(refused, 400, "items")
    too_many = [{"type": "item_reference", "id": asked.id}] * 1001
    refused = requests.post(
        f"{v1}/responses/input_tokens", json={"model": MODEL, "input": too_many}, timeout=60
    )
    assert_error_shape(refused, 400, "input")
    # on a server whose requests carry at most 6000 bytes: 60 references to an item of
    # 200 bytes would make 12,000
    sdk = OpenAI(base_url=small_server.url + "/v1", api_key="x", max_retries=0)
    kept = sdk.responses.create(**GREEDY, input="y" * 150)
    [item] = sdk.responses.input_items.list(kept.id).data
    grown = requests.post(
        small_server.url + "/v1/responses/input_tokens",
        json={"model": MODEL, "input": [{"type": "item_reference", "id": item.id}] * 60},
        timeout=60,
    )
    assert_error_shape(grown, 400, "input")
    assert "max_body_bytes" in grown.json()["error"]["message"]
