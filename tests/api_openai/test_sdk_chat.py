"""Chat completions through the official ``openai`` SDK, against the real SmolLM2 model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from api_openai.wire_reading import MODEL, TokenId
from conftest import PowerServer, model_with_template, power_cli
from tool_templates import WEATHER_WITH_UNIT, weather_call_shots

pytestmark = pytest.mark.model

HI = [{"role": "user", "content": "Say hello."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["timezone"],
        },
    },
}


def test_create_returns_a_complete_chat_completion(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=HI, temperature=0, max_completion_tokens=6
    )
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    assert reply.system_fingerprint and reply.system_fingerprint.startswith("fp_")
    assert reply.created > 0
    [choice] = reply.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.message.refusal is None
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_completion_tokens_wins_over_max_tokens(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long poem about the sea."}],
        temperature=0,
        max_tokens=12,
        max_completion_tokens=3,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_developer_role_and_text_parts(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "You answer in one word."},
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What color is the sky?"},
                    {"type": "text", "text": "Answer now."},
                ],
            },
        ],
        temperature=0,
        max_tokens=4,
        user="someone",
    )
    assert reply.choices[0].message.content


def test_stream_with_usage(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HI,
            temperature=0,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 5
    assert all(c.usage is None for c in body)
    assert body[-1].choices[0].finish_reason == "length"
    text = "".join(c.choices[0].delta.content or "" for c in body)
    plain = client.chat.completions.create(model=MODEL, messages=HI, temperature=0, max_tokens=5)
    assert text == plain.choices[0].message.content


def test_n_gives_independent_choices_streamed_or_not(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=HI, n=2, temperature=1.0, seed=7, max_tokens=4
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content for c in reply.choices)

    stream = client.chat.completions.create(
        model=MODEL, messages=HI, n=2, temperature=1.0, seed=7, max_tokens=4, stream=True
    )
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1}
    # the same seed gives the same choices, streamed or not
    assert [texts[0], texts[1]] == [c.message.content for c in reply.choices]


def test_seed_reproduces_sampled_text(client: OpenAI) -> None:
    def sample() -> str | None:
        reply = client.chat.completions.create(
            model=MODEL, messages=HI, temperature=1.0, top_p=0.95, seed=1234, max_tokens=8
        )
        return reply.choices[0].message.content

    assert sample() == sample()


def test_stop_sequence_ends_the_text(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "Count from one to ten in words."}]
    full = client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=16
    )
    text = full.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 3, text
    stop_word = words[2]
    cut = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        temperature=0,
        max_tokens=16,
        # more than OpenAI's four, as Continue's autocomplete sends to other servers
        stop=[stop_word, "@@", "\n\n\n", "```", "<fim_prefix>", "<|endoftext|>", "/src/"],
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop_word)]


def test_logprobs_with_top_alternatives(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=HI, temperature=0, max_tokens=4, logprobs=True, top_logprobs=3
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    for token in content:
        assert token.logprob <= 0
        assert bytes(token.bytes or []).decode("utf-8", "replace") == token.token
        assert len(token.top_logprobs) == 3
        # greedy decoding picks the most likely token
        assert token.top_logprobs[0].token == token.token
        assert token.top_logprobs[0].logprob == pytest.approx(token.logprob)


def test_logprob_bytes_of_tokens_that_split_a_character(client: OpenAI) -> None:
    # SmolLM2 writes a Chinese character in several tokens: each token's (and each
    # alternative's) bytes are its own, which its text (a replacement character) cannot show
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello in Chinese characters."}],
        temperature=0,
        max_tokens=8,
        logprobs=True,
        top_logprobs=3,
    )
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    joined = b"".join(bytes(token.bytes or []) for token in content)
    assert joined.decode("utf-8", "ignore") == choice.message.content
    partial = [t for t in content if t.token == "\ufffd"]
    assert partial, "expected tokens that hold part of a character"
    for token in content:
        assert token.top_logprobs[0].bytes == token.bytes  # greedy: the chosen one leads
    for token in partial:
        assert all(alt.bytes != [0xEF, 0xBF, 0xBD] for alt in token.top_logprobs)


def test_logit_bias_bans_and_forces_tokens(client: OpenAI, token_id: TokenId) -> None:
    plain = client.chat.completions.create(
        model=MODEL, messages=HI, temperature=0, max_tokens=1, logprobs=True
    )
    assert plain.choices[0].logprobs and plain.choices[0].logprobs.content
    first = plain.choices[0].logprobs.content[0].token
    banned = client.chat.completions.create(
        model=MODEL,
        messages=HI,
        temperature=0,
        max_tokens=1,
        logit_bias={str(token_id(first)): -100},
    )
    assert banned.choices[0].message.content != first
    forced = client.chat.completions.create(
        model=MODEL,
        messages=HI,
        temperature=0,
        max_tokens=1,
        logit_bias={str(token_id("Ocean")): 100},
    )
    assert forced.choices[0].message.content == "Ocean"


class Answer(BaseModel):
    color: Literal["red", "green", "blue"]
    count: int


def test_parse_returns_a_pydantic_object(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Pick a color and how many apples you see."}],
        response_format=Answer,
        temperature=0,
        max_tokens=40,
    )
    message = completion.choices[0].message
    assert isinstance(message.parsed, Answer)
    assert Answer.model_validate_json(message.content or "") == message.parsed


def test_json_object_mode_gives_an_object(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=40,
    )
    choice = reply.choices[0]
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:  # cut short by max_tokens: still the start of an object
        assert (choice.message.content or "").lstrip().startswith("{")


def test_required_tool_call_and_result_round_trip(client: OpenAI) -> None:
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,
        max_tokens=40,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments.get("city"), str)

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 22 C"})
    answer = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        temperature=0,
        max_tokens=12,
    )
    assert answer.choices[0].message.content
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_tools_and_a_response_format_leave_the_model_the_choice(
    client: OpenAI, tools_model: str
) -> None:
    # what the Agents SDK sends for an agent with tools and an output type: the model may
    # call a tool or answer in the format (before, the format's grammar left it no call).
    # The answer's key is one the model has no reason to write, so it makes the call it
    # was told to make; the greedy choice is then only the grammar's to allow
    reading = {
        "type": "object",
        "properties": {"zq": {"type": "integer"}},
        "required": ["zq"],
        "additionalProperties": False,
    }
    asked = [
        {"role": "system", "content": "Use the get_weather tool."},
        {"role": "user", "content": "What is the weather in Rome?"},
    ]
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "r", "schema": reading}}
    called = client.chat.completions.create(
        model=tools_model,
        messages=asked,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        response_format=response_format,
        temperature=0,
        max_completion_tokens=60,
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    # tool_choice "none" leaves the answer alone to the format
    answered = client.chat.completions.create(
        model=tools_model,
        messages=asked,  # type: ignore[arg-type]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="none",
        response_format=response_format,
        temperature=0,
        max_completion_tokens=60,
    )
    assert answered.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(answered.choices[0].message.content or "")["zq"], int)


def test_a_call_the_model_chooses_to_make_has_the_arguments_its_tool_declares(
    client: OpenAI, tools_model: str
) -> None:
    # the model's three earlier calls gave a city alone; the tool now requires a unit too.
    # Left to itself the model calls as before (no unit); the grammar that starts at its
    # <tool_call> makes it write the call the tool declares, whole and streamed
    weather: Any = {"type": "function", "function": {"name": "get_weather"}}
    weather["function"]["parameters"] = WEATHER_WITH_UNIT
    asked = weather_call_shots("What is the weather in Rome, in fahrenheit?")
    reply = client.chat.completions.create(
        model=tools_model, messages=asked, tools=[weather], temperature=0, max_tokens=60
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_WITH_UNIT)
    assert arguments == {"city": "Rome", "unit": "fahrenheit"}
    stream = client.chat.completions.create(
        model=tools_model,
        messages=asked,
        tools=[weather],
        temperature=0,
        max_tokens=60,
        stream=True,
    )
    streamed = "".join(
        part.function.arguments or ""
        for chunk in stream
        for part in chunk.choices[0].delta.tool_calls or []
        if part.function is not None
    )
    assert json.loads(streamed) == arguments


def test_allowed_tools_limit_the_calls_to_the_tools_they_list(client: OpenAI) -> None:
    # the weather question, but only the clock may be called: a required call is the clock's
    allowed: Any = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],  # type: ignore[list-item]
        tool_choice=allowed,
        temperature=0,
        max_tokens=40,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert calls and {call.function.name for call in calls} == {"get_time"}
    unknown = {
        **allowed,
        "allowed_tools": {
            "mode": "auto",
            "tools": [{"type": "function", "function": {"name": "nope"}}],
        },
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=HI,  # type: ignore[arg-type]
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice=unknown,
        )
    assert "'nope'" in str(caught.value) and caught.value.body["param"] == "tool_choice"  # type: ignore[index]


def test_usage_counts_the_reasoning_tokens(client: OpenAI, power_server: PowerServer) -> None:
    # a template whose prompt opens <think>: the whole (short) answer is reasoning
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}<|im_start|>assistant\n<think>\n"
    )
    with model_with_template(power_server, "openai-test-thinker:1", template) as name:
        reply = client.chat.completions.create(
            model=name, messages=HI, temperature=0, max_completion_tokens=12
        )
        usage = reply.usage
        assert usage is not None and usage.completion_tokens_details is not None
        reasoning = usage.completion_tokens_details.reasoning_tokens
        assert reasoning and 10 <= reasoning <= 12 == usage.completion_tokens
        response = client.responses.create(
            model=name, input="Say hello.", temperature=0, max_output_tokens=12
        )
        assert response.usage is not None
        # the Responses API's count (of its own answer: the same prompt, read from the cache)
        assert 10 <= response.usage.output_tokens_details.reasoning_tokens <= 12
        # an answer without reasoning counts none
        plain = client.chat.completions.create(
            model=MODEL, messages=HI, temperature=0, max_completion_tokens=4
        )
        assert plain.usage and plain.usage.completion_tokens_details
        assert plain.usage.completion_tokens_details.reasoning_tokens == 0


def test_named_tool_choice_streams_through_the_sdk_helper(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "What time is it in Berlin?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=40,
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments)["timezone"] in ("UTC", "CET")


def test_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model:1b", messages=HI)
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"n": 0}, "n"),
        ({"stop": ["a", 5]}, "stop"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"\u00b2": 1}}, "logit_bias"),  # a digit to str.isdigit, not to int
        ({"logit_bias": {"\uff15": 1}}, "logit_bias"),  # a fullwidth 5: not a token id
        ({"logit_bias": {"1" * 5000: 1}}, "logit_bias"),  # past int()'s 4,300 digits
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_invalid_fields_are_bad_requests_naming_the_field(
    client: OpenAI, extra: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=HI, **extra)
    assert caught.value.param == param


def test_unknown_role_is_a_bad_request(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "wizard", "content": "hi"}],  # type: ignore[list-item,misc]
        )
    assert caught.value.param == "messages[0].role"


def test_modelfile_parameters_beat_openai_defaults_and_the_request_beats_both(
    client: OpenAI, power_server: PowerServer, tmp_path: Path
) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {MODEL}\nPARAMETER temperature 0\n", encoding="utf-8")
    power_cli(power_server.env, "create", "smollm2-greedy:135m", "-f", str(modelfile))
    story = [{"role": "user", "content": "Start a story about a dragon."}]

    def reply(model: str, **extra: Any) -> str | None:
        completion = client.chat.completions.create(
            model=model, messages=story, max_tokens=8, **extra
        )
        return completion.choices[0].message.content

    greedy = reply(MODEL, temperature=0)
    # the Modelfile's temperature 0 wins over OpenAI's default of 1: greedy, whatever the seed
    assert reply("smollm2-greedy:135m", seed=1) == greedy
    assert reply("smollm2-greedy:135m", seed=2) == greedy
    # a request's own temperature wins over the Modelfile: with it, seeds matter again
    sampled = {reply("smollm2-greedy:135m", temperature=2.0, seed=s) for s in range(3)}
    assert sampled != {greedy}


def test_a_conversation_reuses_the_cached_prompt_of_its_last_turn(client: OpenAI) -> None:
    """The second turn resends the first; the engine decodes only what is new, and says so
    in ``usage.prompt_tokens_details.cached_tokens`` as OpenAI's API does."""
    turn = [{"role": "user", "content": "Name a colour of the sky at dusk."}]
    first = client.chat.completions.create(
        model=MODEL, messages=turn, temperature=0, max_completion_tokens=12
    )
    answer = first.choices[0].message.content
    assert first.usage is not None and answer
    follow_up = [
        *turn,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And at noon?"},
    ]
    second = client.chat.completions.create(
        model=MODEL, messages=follow_up, temperature=0, max_completion_tokens=6
    )
    assert second.usage is not None and second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached is not None
    assert first.usage.prompt_tokens <= cached < second.usage.prompt_tokens


def test_deprecated_functions_are_answered_the_old_way(client: OpenAI) -> None:
    # OpenAI still takes functions/function_call; older LangChain and instructor send them
    functions = [WEATHER_TOOL["function"]]
    question = {"role": "user", "content": "What is the weather in Paris?"}
    asked = {
        "model": MODEL,
        "functions": functions,
        "function_call": {"name": "get_weather"},
        "temperature": 0,
        # room for the call: on CPUs without AMX the tiny model spaces its JSON out widely
        "max_tokens": 100,
    }
    reply = client.chat.completions.create(messages=[question], **asked)  # type: ignore[call-overload]
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None and choice.message.content is None
    call = choice.message.function_call
    assert call is not None and call.name == "get_weather"
    assert isinstance(json.loads(call.arguments).get("city"), str)

    streamed = list(client.chat.completions.create(messages=[question], stream=True, **asked))  # type: ignore[call-overload]
    pieces = [c.choices[0].delta.function_call for c in streamed if c.choices]
    pieces = [p for p in pieces if p is not None]
    assert pieces[0].name == "get_weather"
    assert json.loads("".join(p.arguments or "" for p in pieces)) == json.loads(call.arguments)
    assert streamed[-1].choices[0].finish_reason == "function_call"

    # the result goes back as a function message, after the assistant's function_call
    result = {"role": "function", "name": "get_weather", "content": "Sunny, 22 C"}
    said = {"role": "assistant", "content": None, "function_call": call.model_dump()}
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[question, said, result],
        functions=functions,
        function_call="none",  # SmolLM2's template shows no tools: it may not choose one
        max_tokens=8,  # type: ignore[list-item,call-overload]
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError) as both:
        client.chat.completions.create(  # type: ignore[call-overload]
            model=MODEL, messages=[question], functions=functions, tools=[WEATHER_TOOL]
        )
    assert both.value.param == "functions"


def test_a_forced_call_cut_by_max_tokens_keeps_the_calls_it_completed(client: OpenAI) -> None:
    asked = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is the weather in Paris and in Rome?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "temperature": 0,
    }
    whole = client.chat.completions.create(max_tokens=64, **asked)  # type: ignore[call-overload]
    assert whole.choices[0].finish_reason == "tool_calls"
    tokens = whole.usage.completion_tokens if whole.usage else 0
    # one token short: the list of calls never closes, its calls did
    cut = client.chat.completions.create(max_tokens=tokens - 1, **asked)  # type: ignore[call-overload]
    choice = cut.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content is None
    expected = [
        (c.function.name, c.function.arguments) for c in whole.choices[0].message.tool_calls or []
    ]
    assert [
        (c.function.name, c.function.arguments) for c in choice.message.tool_calls or []
    ] == expected


def test_what_the_model_cannot_do_is_refused_as_ollama_refuses_it(client: OpenAI) -> None:
    # SmolLM2's template never shows tools and has no reasoning: tools the model may choose
    # would be silently dropped, so they are a 400 (as on /api/chat and Ollama's /v1);
    # forcing a call works through a grammar, and tool_choice none uses no tool
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    asked = {"model": MODEL, "messages": question, "max_tokens": 40, "temperature": 0}
    for choice in (None, "auto"):
        extra = {} if choice is None else {"tool_choice": choice}
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(tools=[WEATHER_TOOL], **asked, **extra)  # type: ignore[call-overload]
        assert refused.value.param == "tools" and "does not support tools" in str(refused.value)
    forced = client.chat.completions.create(tools=[WEATHER_TOOL], tool_choice="required", **asked)  # type: ignore[call-overload]
    assert forced.choices[0].message.tool_calls
    unused = client.chat.completions.create(tools=[WEATHER_TOOL], tool_choice="none", **asked)  # type: ignore[call-overload]
    assert unused.choices[0].message.tool_calls is None
    with pytest.raises(openai.BadRequestError) as thinking:
        client.chat.completions.create(reasoning_effort="low", **asked)  # type: ignore[call-overload]
    assert thinking.value.param == "reasoning_effort"
    assert client.chat.completions.create(reasoning_effort="none", **asked).choices  # type: ignore[call-overload]
    with pytest.raises(openai.BadRequestError) as responses:
        client.responses.create(
            model=MODEL, input="Hi", reasoning={"effort": "high"}, max_output_tokens=16
        )
    assert responses.value.param == "reasoning.effort"
