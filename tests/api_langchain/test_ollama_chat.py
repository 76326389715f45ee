"""``ChatOllama`` from ``langchain-ollama``, unchanged, against A3S Power's Ollama API and the
real SmolLM2 model: replies, streams, usage, structured output, tools and log probabilities
as LangChain hands them to its users."""

from __future__ import annotations

import asyncio
from typing import Any

import ollama
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolCall
from langchain_ollama import ChatOllama

from api_langchain.cases import (
    COUNT,
    COUNT_ON,
    LIMIT,
    MODEL,
    WEATHER_QUESTION,
    Forecast,
    get_weather,
    merged,
)

pytestmark = pytest.mark.model


def chat(url: str, **settings: Any) -> ChatOllama:
    """A greedy ``ChatOllama`` that stops after :data:`LIMIT` tokens unless told otherwise."""
    settings = {"temperature": 0, "num_predict": LIMIT, **settings}
    return ChatOllama(model=MODEL, base_url=url, client_kwargs={"timeout": 300}, **settings)


def assert_counted_usage(message: AIMessage | AIMessageChunk, output_tokens: int) -> int:
    """The usage LangChain read from the reply adds up; returns its input tokens."""
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] == output_tokens
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    return usage["input_tokens"]


def test_invoke_continues_the_conversation(ollama_url: str) -> None:
    reply = chat(ollama_url).invoke(COUNT.conversation)
    assert isinstance(reply, AIMessage)
    assert reply.content == COUNT.then
    assert reply.tool_calls == []
    assert reply.response_metadata["model_name"] == MODEL
    assert reply.response_metadata["done_reason"] == "length"
    input_tokens = assert_counted_usage(reply, LIMIT)
    assert input_tokens == reply.response_metadata["prompt_eval_count"]
    assert reply.response_metadata["eval_count"] == LIMIT


def test_stream_yields_the_reply_token_by_token(ollama_url: str) -> None:
    chunks = list(chat(ollama_url).stream(COUNT.conversation))
    texts = [chunk.content for chunk in chunks if chunk.content]
    assert len(texts) == LIMIT, texts
    assert "".join(str(text) for text in texts) == COUNT.then
    assert [chunk for chunk in chunks if chunk.usage_metadata], "usage comes with the stream"
    whole = merged(chunks)
    assert whole.content == COUNT.then
    assert whole.response_metadata["done_reason"] == "length"
    assert_counted_usage(whole, LIMIT)


def test_async_invoke_and_stream(ollama_url: str) -> None:
    async def ask() -> tuple[AIMessage, list[AIMessageChunk]]:
        model = chat(ollama_url)  # a fresh async client for this event loop
        reply = await model.ainvoke(COUNT.conversation)
        chunks = [chunk async for chunk in model.astream(COUNT_ON.conversation)]
        return reply, chunks

    reply, chunks = asyncio.run(ask())
    assert reply.content == COUNT.then
    assert_counted_usage(reply, LIMIT)
    assert len([chunk for chunk in chunks if chunk.content]) == LIMIT
    whole = merged(chunks)
    assert whole.content == COUNT_ON.then
    assert_counted_usage(whole, LIMIT)


def test_stop_sequences_end_the_reply(ollama_url: str) -> None:
    reply = chat(ollama_url).invoke(COUNT.conversation, stop=[" 14"])
    assert reply.content == " 13,"
    assert reply.response_metadata["done_reason"] == "stop"
    usage = reply.usage_metadata
    assert usage is not None and usage["output_tokens"] < LIMIT


def test_batch_answers_each_conversation(ollama_url: str) -> None:
    replies = chat(ollama_url).batch([COUNT.conversation, COUNT_ON.conversation])
    assert [reply.content for reply in replies] == [COUNT.then, COUNT_ON.then]
    for reply in replies:
        assert isinstance(reply, AIMessage)
        assert_counted_usage(reply, LIMIT)


def test_structured_output_with_the_default_method(ollama_url: str) -> None:
    model = chat(ollama_url, num_predict=100)
    result = model.with_structured_output(Forecast, include_raw=True).invoke(WEATHER_QUESTION)
    assert isinstance(result, dict)
    assert result["parsing_error"] is None
    forecast = result["parsed"]
    assert isinstance(forecast, Forecast)
    raw = result["raw"]
    assert isinstance(raw, AIMessage) and isinstance(raw.content, str)
    assert Forecast.model_validate_json(raw.content) == forecast
    assert raw.response_metadata["done_reason"] == "stop"
    usage = raw.usage_metadata
    assert usage is not None and 0 < usage["output_tokens"] <= 100

    streamed = list(model.with_structured_output(Forecast).stream(WEATHER_QUESTION))
    assert streamed and isinstance(streamed[-1], Forecast)


@pytest.mark.parametrize("tool_choice", [None, "any", "get_weather"])
@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_tools_are_refused_for_a_model_whose_template_shows_none(
    ollama_url: str, tool_choice: str | None, streamed: bool
) -> None:
    """As Ollama answers: the Ollama API has no ``tool_choice``, so ChatOllama cannot force a
    call, and SmolLM2's template shows no tools."""
    model = chat(ollama_url).bind_tools([get_weather], tool_choice=tool_choice)
    with pytest.raises(ollama.ResponseError) as refused:
        if streamed:
            list(model.stream(WEATHER_QUESTION))
        else:
            model.invoke(WEATHER_QUESTION)
    assert refused.value.status_code == 400
    assert refused.value.error == f'"{MODEL}" does not support tools'


def test_structured_output_by_function_calling_is_refused(ollama_url: str) -> None:
    structured = chat(ollama_url).with_structured_output(Forecast, method="function_calling")
    with pytest.raises(ollama.ResponseError) as refused:
        structured.invoke(WEATHER_QUESTION)
    assert refused.value.status_code == 400
    assert "does not support tools" in refused.value.error


def test_a_conversation_with_a_tool_call_in_it_is_answered(ollama_url: str) -> None:
    """A history holding a call and its result (from another model, say) is rendered without
    tools offered: Ollama's ``tool_calls`` and ``tool`` messages as LangChain sends them."""
    call = ToolCall(name="get_weather", args={"city": "Paris"}, id="call_1", type="tool_call")
    history = [
        HumanMessage(WEATHER_QUESTION),
        AIMessage("", tool_calls=[call]),
        get_weather.invoke(call),
    ]
    plain = chat(ollama_url, num_predict=40)
    reply = plain.invoke(history)
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls == []
    assert isinstance(reply.content, str) and reply.content.strip()
    without = plain.invoke(history[:1])
    assert reply.usage_metadata is not None and without.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] > without.usage_metadata["input_tokens"]


def assert_greedy_logprobs(logprobs: list[Any], text: str) -> None:
    """One entry per generated token, spelling ``text``; each token is its own top choice."""
    assert len(logprobs) == LIMIT
    assert "".join(entry.token for entry in logprobs) == text
    for entry in logprobs:
        assert entry.logprob <= 0
        top = entry.top_logprobs
        assert len(top) == 2
        assert top[0].token == entry.token and top[0].logprob == pytest.approx(entry.logprob)
        assert top[0].logprob >= top[1].logprob


def test_logprobs_in_replies_and_streams(ollama_url: str) -> None:
    model = chat(ollama_url, logprobs=True, top_logprobs=2)
    reply = model.invoke(COUNT.conversation)
    assert reply.content == COUNT.then
    assert_greedy_logprobs(reply.response_metadata["logprobs"], COUNT.then)

    whole = merged(model.stream(COUNT_ON.conversation))
    assert whole.content == COUNT_ON.then
    assert_greedy_logprobs(whole.response_metadata["logprobs"], COUNT_ON.then)
