"""``ChatOpenAI`` from ``langchain-openai``, unchanged, against A3S Power's OpenAI API and the
real SmolLM2 model, through both of its APIs: Chat Completions and (``use_responses_api``)
the Responses API."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from api_langchain.cases import (
    COUNT,
    COUNT_ON,
    LIMIT,
    MODEL,
    WEATHER_QUESTION,
    Forecast,
    get_time,
    get_weather,
    merged,
)

pytestmark = pytest.mark.model

#: room for a forced call or a structured answer (SmolLM2 took 24 to 53 tokens for these)
ROOM = 100


@pytest.fixture(params=["chat_completions", "responses"])
def responses(request: pytest.FixtureRequest) -> bool:
    """Whether ``ChatOpenAI`` speaks the Responses API instead of Chat Completions."""
    return bool(request.param == "responses")


def chat(url: str, responses: bool, **settings: Any) -> ChatOpenAI:
    """A greedy ``ChatOpenAI`` that stops after :data:`LIMIT` tokens unless told otherwise."""
    settings = {"temperature": 0, "max_tokens": LIMIT, **settings}
    return ChatOpenAI(
        model=MODEL,
        base_url=url,
        api_key=SecretStr("unused"),
        max_retries=0,
        timeout=300,
        use_responses_api=responses,
        **settings,
    )


def assert_usage(message: AIMessage | AIMessageChunk, *, exactly: int = 0, most: int = 0) -> None:
    """The usage LangChain read adds up, with ``exactly`` (or at most ``most``) tokens out."""
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    if exactly:
        assert usage["output_tokens"] == exactly
    else:
        assert 0 < usage["output_tokens"] <= most
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def assert_cut_at_the_limit(message: AIMessage | AIMessageChunk, responses: bool) -> None:
    metadata = message.response_metadata
    assert metadata["model_name"] == MODEL
    if responses:
        assert metadata["status"] == "incomplete"
        assert metadata["incomplete_details"] == {"reason": "max_output_tokens"}
    else:
        assert metadata["finish_reason"] == "length"


def test_invoke_continues_the_conversation(openai_url: str, responses: bool) -> None:
    reply = chat(openai_url, responses).invoke(COUNT.conversation)
    assert isinstance(reply, AIMessage)
    assert reply.text == COUNT.then
    assert reply.tool_calls == []
    assert_cut_at_the_limit(reply, responses)
    assert_usage(reply, exactly=LIMIT)


def test_input_tokens_agree_with_the_ollama_api(openai_url: str, ollama_url: str) -> None:
    """One conversation, one prompt: Chat Completions, the Responses API and ``ChatOllama``
    count the same input tokens."""
    counts = []
    for model in (
        chat(openai_url, False, max_tokens=1),
        chat(openai_url, True, max_tokens=1),
        ChatOllama(model=MODEL, base_url=ollama_url, num_predict=1),
    ):
        reply = model.invoke(COUNT.conversation)
        assert isinstance(reply, AIMessage) and reply.usage_metadata is not None
        counts.append(reply.usage_metadata["input_tokens"])
    assert counts[0] > len(COUNT.start.split()) and counts == [counts[0]] * 3, counts


def test_stream_with_usage(openai_url: str, responses: bool) -> None:
    chunks = list(chat(openai_url, responses, stream_usage=True).stream(COUNT.conversation))
    texts = [chunk.text for chunk in chunks if chunk.text]
    assert len(texts) == LIMIT, texts
    assert "".join(texts) == COUNT.then
    assert len([chunk for chunk in chunks if chunk.usage_metadata]) == 1
    whole = merged(chunks)
    assert whole.text == COUNT.then
    assert_cut_at_the_limit(whole, responses)
    assert_usage(whole, exactly=LIMIT)


def test_chat_completions_stream_usage_only_when_asked(openai_url: str) -> None:
    """Without ``stream_usage`` LangChain does not ask for ``include_usage``; as OpenAI, the
    stream then has no usage chunk."""
    chunks = list(chat(openai_url, False, stream_usage=False).stream(COUNT.conversation))
    assert "".join(chunk.text for chunk in chunks) == COUNT.then
    assert [chunk.usage_metadata for chunk in chunks if chunk.usage_metadata] == []


def test_async_invoke_and_stream(openai_url: str, responses: bool) -> None:
    async def ask() -> tuple[BaseMessage, list[AIMessageChunk]]:
        # langchain-openai keeps one default async client per URL and timeout for the whole
        # process, whose connections belong to the event loop that made them: a client of
        # this loop's own, as any program that runs asyncio.run twice needs
        model = chat(
            openai_url,
            responses,
            stream_usage=True,
            http_async_client=openai.DefaultAsyncHttpxClient(),
        )
        reply = await model.ainvoke(COUNT.conversation)
        chunks = [chunk async for chunk in model.astream(COUNT_ON.conversation)]
        return reply, chunks

    reply, chunks = asyncio.run(ask())
    assert isinstance(reply, AIMessage)
    assert reply.text == COUNT.then
    assert_usage(reply, exactly=LIMIT)
    assert len([chunk for chunk in chunks if chunk.text]) == LIMIT
    whole = merged(chunks)
    assert whole.text == COUNT_ON.then
    assert_usage(whole, exactly=LIMIT)


def test_batch_answers_each_conversation(openai_url: str, responses: bool) -> None:
    replies = chat(openai_url, responses).batch([COUNT.conversation, COUNT_ON.conversation])
    assert [reply.text for reply in replies] == [COUNT.then, COUNT_ON.then]
    for reply in replies:
        assert isinstance(reply, AIMessage)
        assert_usage(reply, exactly=LIMIT)


def test_stop_sequences_end_the_reply(openai_url: str) -> None:
    reply = chat(openai_url, False).invoke(COUNT.conversation, stop=[" 14"])
    assert reply.text == " 13,"
    assert reply.response_metadata["finish_reason"] == "stop"
    assert_usage(reply, most=LIMIT - 1)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(
    openai_url: str, responses: bool, method: Literal["json_schema", "function_calling"]
) -> None:
    """``json_schema`` is ``with_structured_output``'s default; ``function_calling`` forces a
    call of a tool named after the schema, which works on any model."""
    model = chat(openai_url, responses, max_tokens=ROOM)
    structured = model.with_structured_output(Forecast, method=method, include_raw=True)
    result = structured.invoke(WEATHER_QUESTION)
    assert isinstance(result, dict)
    assert result["parsing_error"] is None
    forecast = result["parsed"]
    assert isinstance(forecast, Forecast)
    raw = result["raw"]
    assert isinstance(raw, AIMessage)
    assert_usage(raw, most=ROOM)
    if method == "json_schema":
        assert raw.tool_calls == []
        assert Forecast.model_validate_json(raw.text) == forecast
    else:
        [call] = raw.tool_calls
        assert call["name"] == "Forecast"
        assert Forecast.model_validate(call["args"]) == forecast
    if not responses:
        finish = "stop" if method == "json_schema" else "tool_calls"
        assert raw.response_metadata["finish_reason"] == finish

    streamed = list(model.with_structured_output(Forecast, method=method).stream(WEATHER_QUESTION))
    assert streamed and isinstance(streamed[-1], Forecast)


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_tools_the_model_may_choose_are_refused(
    openai_url: str, responses: bool, streamed: bool
) -> None:
    """As Ollama's ``/v1`` answers: SmolLM2's template shows no tools, so ``tool_choice``
    ``auto`` is a 400 that reaches the user as the ``openai`` client's error."""
    model = chat(openai_url, responses).bind_tools([get_weather])
    with pytest.raises(openai.BadRequestError) as refused:
        if streamed:
            list(model.stream(WEATHER_QUESTION))
        else:
            model.invoke(WEATHER_QUESTION)
    assert refused.value.status_code == 400
    assert refused.value.param == "tools"
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["message"] == f'"{MODEL}" does not support tools'


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_tool_choice_any_forces_one_call(openai_url: str, responses: bool, streamed: bool) -> None:
    model = chat(openai_url, responses, max_tokens=ROOM).bind_tools(
        [get_weather], tool_choice="any", parallel_tool_calls=False
    )
    if streamed:
        reply: AIMessage | AIMessageChunk = merged(model.stream(WEATHER_QUESTION))
    else:
        reply = model.invoke(WEATHER_QUESTION)
    assert reply.invalid_tool_calls == []
    [call] = reply.tool_calls
    assert call["name"] == "get_weather"
    assert call["id"]
    assert isinstance(call["args"]["city"], str)
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == call["id"]
    assert result.content == f"sunny in {call['args']['city']}"
    if not responses:
        assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_a_named_tool_is_the_one_called(openai_url: str, responses: bool) -> None:
    model = chat(openai_url, responses, max_tokens=ROOM)
    reply = model.bind_tools([get_weather, get_time], tool_choice="get_time").invoke(
        WEATHER_QUESTION
    )
    assert reply.invalid_tool_calls == []
    assert reply.tool_calls, "a named tool_choice is a call of that tool"
    for call in reply.tool_calls:
        assert call["name"] == "get_time"
        assert call["args"]["timezone"] in ("UTC", "CET")
    assert_usage(reply, most=ROOM)


def test_a_tool_result_is_answered(openai_url: str, responses: bool) -> None:
    """The forced call's result goes back as LangChain sends it (a ``tool`` message, or the
    Responses API's ``function_call_output``), and the model answers from it."""
    forced = chat(openai_url, responses, max_tokens=ROOM).bind_tools(
        [get_weather], tool_choice="any", parallel_tool_calls=False
    )
    asked = forced.invoke(WEATHER_QUESTION)
    [call] = asked.tool_calls
    history = [WEATHER_QUESTION, asked, get_weather.invoke(call)]
    reply = chat(openai_url, responses, max_tokens=ROOM).invoke(history)
    assert reply.tool_calls == []
    assert reply.text.strip()
    assert_usage(reply, most=ROOM)
    assert reply.usage_metadata is not None and asked.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] > asked.usage_metadata["input_tokens"]


def assert_greedy_logprobs(logprobs: dict[str, Any], text: str) -> None:
    """One entry per generated token, spelling ``text``; each token is its own top choice."""
    entries = logprobs["content"]
    assert len(entries) == LIMIT
    assert "".join(entry["token"] for entry in entries) == text
    for entry in entries:
        assert entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode() == entry["token"]
        first, second = entry["top_logprobs"]
        assert first["token"] == entry["token"]
        assert first["logprob"] == pytest.approx(entry["logprob"])
        assert first["logprob"] >= second["logprob"]


def test_chat_completions_logprobs_in_replies_and_streams(openai_url: str) -> None:
    model = chat(openai_url, False, logprobs=True, top_logprobs=2)
    reply = model.invoke(COUNT.conversation)
    assert reply.text == COUNT.then
    assert_greedy_logprobs(reply.response_metadata["logprobs"], COUNT.then)

    whole = merged(model.stream(COUNT_ON.conversation))
    assert whole.text == COUNT_ON.then
    assert_greedy_logprobs(whole.response_metadata["logprobs"], COUNT_ON.then)


def test_previous_response_ids_send_only_the_new_messages(openai_url: str) -> None:
    """``use_previous_response_id``: LangChain drops the messages up to its last answer and
    names that answer's response instead, which the server kept."""
    chained = chat(openai_url, True, use_previous_response_id=True)
    question = HumanMessage("Name a fruit.")
    first = chained.invoke([question])
    assert first.response_metadata["id"].startswith("resp_")
    follow_up = HumanMessage("And a vegetable?")
    second = chained.invoke([question, first, follow_up])
    stored = openai.OpenAI(base_url=openai_url, api_key="unused").responses.retrieve(
        second.response_metadata["id"]
    )
    assert stored.previous_response_id == first.response_metadata["id"]
    whole = chat(openai_url, True).invoke([question, first, follow_up])
    assert second.text == whole.text
    assert second.usage_metadata is not None and whole.usage_metadata is not None
    assert second.usage_metadata["input_tokens"] == whole.usage_metadata["input_tokens"]
