"""The OpenAI Agents SDK (``openai-agents``), unchanged, running agents on A3S Power's
Responses API with the real SmolLM2 model: a plain run, a function tool's round trip,
``previous_response_id``, server-kept conversations and the SDK's conversation session.

Greedy answers to these prompts end well within ``max_tokens`` (the SDK treats a response
cut by ``max_output_tokens`` as a failure)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIConversationsSession,
    Runner,
    function_tool,
)
from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
from openai import AsyncOpenAI, NotFoundError

from api_openai.wire_reading import MODEL

pytestmark = pytest.mark.model

T = TypeVar("T")

SETTINGS = ModelSettings(temperature=0, max_tokens=200)


def helper() -> Agent[Any]:
    return Agent(
        name="Helper", instructions="Answer briefly.", model=MODEL, model_settings=SETTINGS
    )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def test_an_agent_answers_with_a_kept_response(agents_client: AsyncOpenAI) -> None:
    async def answer() -> Any:
        result = await Runner.run(helper(), "Name a fruit.")
        kept = await agents_client.responses.retrieve(result.last_response_id or "")
        return result, kept

    result, kept = run(answer())
    assert isinstance(result.final_output, str) and result.final_output
    assert kept.output_text == result.final_output
    assert kept.instructions == "Answer briefly."


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny and 21 C in {city}."


def forecaster(model: Any) -> Agent[Any]:
    """An agent whose first turn must call the weather tool; the SDK then resets
    tool_choice, so the second reads the tool's output and answers in text."""
    return Agent(
        name="Forecaster",
        instructions="Use the weather tool.",
        model=model,
        tools=[weather],
        model_settings=ModelSettings(
            temperature=0,
            max_tokens=200,
            tool_choice="required",
            parallel_tool_calls=False,
            # greedy, the tiny model can echo the tool's reply tag until max_tokens (seen
            # on CPUs without AMX); a frequency penalty, sent as users send one to a local
            # server, ends the loop
            extra_body={"frequency_penalty": 1.0},
        ),
    )


def test_a_function_tool_round_trip(tools_model: str) -> None:
    result = run(Runner.run(forecaster(tools_model), "What is the weather in Paris?"))
    kinds = [type(item) for item in result.new_items]
    assert kinds[:2] == [ToolCallItem, ToolCallOutputItem]
    assert kinds[-1] is MessageOutputItem
    output = result.new_items[1]
    assert isinstance(output, ToolCallOutputItem) and output.output.startswith("Sunny and 21 C")
    assert isinstance(result.final_output, str) and result.final_output
    # the second response read the call and its output: more input than the first
    first, second = (response.usage for response in result.raw_responses)
    assert second.input_tokens > first.input_tokens + first.output_tokens


def test_previous_response_id_continues_on_the_server() -> None:
    async def two_turns() -> Any:
        first = await Runner.run(helper(), "Hello, I am Ada.")
        second = await Runner.run(
            helper(), "Name a fruit.", previous_response_id=first.last_response_id
        )
        return first, second

    first, second = run(two_turns())
    [first_response] = first.raw_responses
    [second_response] = second.raw_responses
    assert second_response.response_id != first_response.response_id
    # the second read the first turn too, sent only as its id
    first_turn = first_response.usage.input_tokens + first_response.usage.output_tokens
    assert second_response.usage.input_tokens > first_turn


def test_a_conversation_id_keeps_the_turns_on_the_server(agents_client: AsyncOpenAI) -> None:
    async def two_turns() -> Any:
        conversation = await agents_client.conversations.create()
        for question in ("Hello, I am Ada.", "Name a fruit."):
            await Runner.run(helper(), question, conversation_id=conversation.id)
        items = await agents_client.conversations.items.list(conversation.id, order="asc")
        return [(item.role, item.content[0].text) for item in items.data]  # type: ignore[union-attr]

    turns = run(two_turns())
    assert [role for role, _ in turns] == ["user", "assistant", "user", "assistant"]
    assert [turns[0][1], turns[2][1]] == ["Hello, I am Ada.", "Name a fruit."]


def test_the_sdks_conversation_session_remembers_pops_and_clears(
    agents_client: AsyncOpenAI,
) -> None:
    async def session_turns() -> Any:
        session = OpenAIConversationsSession(openai_client=agents_client)
        first = await Runner.run(helper(), "Hello, I am Ada.", session=session)
        second = await Runner.run(helper(), "Name a fruit.", session=session)
        remembered = await session.get_items()
        popped = await session.pop_item()
        after_pop = await session.get_items()
        conversation_id = session.session_id
        await session.clear_session()
        try:
            await agents_client.conversations.retrieve(conversation_id)
        except NotFoundError:
            cleared = True
        else:
            cleared = False
        return first, second, remembered, popped, after_pop, cleared

    first, second, remembered, popped, after_pop, cleared = run(session_turns())
    assert [item.get("role") for item in remembered] == ["user", "assistant"] * 2
    assert remembered[2]["content"][0]["text"] == "Name a fruit."
    # the second turn read the first from the session: more input than the first turn made
    [first_response], [second_response] = first.raw_responses, second.raw_responses
    first_turn = first_response.usage.input_tokens + first_response.usage.output_tokens
    assert second_response.usage.input_tokens > first_turn
    assert popped is not None and popped.get("role") == "assistant"
    assert popped["content"][0]["text"] == second.final_output
    assert after_pop == remembered[:3]
    assert cleared


def test_a_streamed_run_delivers_the_text_as_it_comes() -> None:
    async def streamed() -> Any:
        result = Runner.run_streamed(helper(), "Name a fruit.")
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]
        return result, deltas

    result, deltas = run(streamed())
    assert len(deltas) > 1 and "".join(deltas) == result.final_output


def test_an_agent_on_the_chat_completions_api_calls_a_tool(
    agents_client: AsyncOpenAI, tools_model: str
) -> None:
    # the model class users of Ollama's OpenAI API pick: Chat Completions, not Responses
    model = OpenAIChatCompletionsModel(model=tools_model, openai_client=agents_client)
    result = run(Runner.run(forecaster(model), "What is the weather in Rome?"))
    kinds = [type(item) for item in result.new_items]
    assert kinds[:2] == [ToolCallItem, ToolCallOutputItem]
    assert kinds[-1] is MessageOutputItem
    assert isinstance(result.final_output, str) and result.final_output
