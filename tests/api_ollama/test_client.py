"""The official ``ollama`` Python client, unchanged, against A3S Power.

Every answer is parsed by the client's own pydantic response models, so a field of the
wrong type or shape fails here just as it would for any program using the client.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import ollama
import pytest

from reasoning_shots import ANSWER_SCHEMA, REASONING_SHOTS
from tool_templates import WEATHER_WITH_UNIT, weather_call_shots

MODEL = "smollm2:135m"
#: greedy and short, so generation tests stay fast on two cores
GREEDY = {"temperature": 0, "num_predict": 8}
#: greedy, with room for a few words of reasoning and a short JSON answer
GREEDY_80 = {"temperature": 0, "num_predict": 80}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city"}},
            "required": ["city"],
        },
    },
}
#: output constrained to a call of get_weather, so the tiny model always makes one
WEATHER_CALL_FORMAT = {
    "type": "object",
    "properties": {
        "name": {"const": "get_weather"},
        "arguments": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}
WEATHER_QUESTION = {
    "role": "user",
    "content": "What is the weather in Paris? Call the get_weather tool.",
}


def test_list_shows_the_model_with_details(client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert MODEL in models
    entry = models[MODEL]
    assert entry.size and entry.size > 50_000_000
    assert entry.digest and len(entry.digest) == 64
    assert isinstance(entry.modified_at, datetime)
    assert entry.details is not None
    assert entry.details.format == "gguf"
    assert entry.details.family == "llama"
    assert entry.details.quantization_level == "Q4_1"
    assert entry.details.parameter_size


def test_show_describes_the_model(client: ollama.Client) -> None:
    shown = client.show(MODEL)
    assert shown.modelfile and "FROM " in shown.modelfile
    assert shown.template and "im_start" in shown.template
    assert shown.capabilities and "completion" in shown.capabilities
    assert shown.details is not None and shown.details.family == "llama"
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] > 0
    assert isinstance(shown.modified_at, datetime)


def test_show_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("no-such-model:1")
    assert caught.value.status_code == 404
    assert "not found" in caught.value.error


def test_generate_without_streaming(client: ollama.Client) -> None:
    result = client.generate(model=MODEL, prompt="Name a colour.", options=GREEDY)
    assert isinstance(result, ollama.GenerateResponse)
    assert result.done is True
    assert result.done_reason in ("stop", "length")
    assert result.response
    assert result.eval_count is not None and 0 < result.eval_count <= 8
    assert result.prompt_eval_count and result.prompt_eval_count > 0
    assert result.total_duration and result.total_duration >= (result.eval_duration or 0)
    assert result.context and all(isinstance(t, int) for t in result.context)


def test_generate_streaming(client: ollama.Client) -> None:
    parts = list(client.generate(model=MODEL, prompt="Name a colour.", options=GREEDY, stream=True))
    assert len(parts) >= 2
    assert all(p.done is False for p in parts[:-1])
    final = parts[-1]
    assert final.done is True and final.done_reason in ("stop", "length")
    assert final.eval_count is not None and final.eval_count <= 8
    assert "".join(p.response for p in parts)


def test_chat_without_streaming(client: ollama.Client) -> None:
    result = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], options=GREEDY
    )
    assert isinstance(result, ollama.ChatResponse)
    assert result.message.role == "assistant"
    assert result.message.content
    assert result.done is True and result.eval_count and result.eval_count <= 8


def test_chat_streaming(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hello."}],
            options=GREEDY,
            stream=True,
        )
    )
    assert all(p.message.role == "assistant" for p in parts)
    assert parts[-1].done is True and all(p.done is False for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts)


def test_a_long_chat_streams_on_with_its_oldest_turns_dropped(client: ollama.Client) -> None:
    history: list[dict[str, str]] = []
    for i in range(20):
        history.append({"role": "user", "content": f"Remember item {i}: a red box."})
        history.append({"role": "assistant", "content": f"Item {i} noted."})
    history.append({"role": "user", "content": "Say hello."})
    parts = list(
        client.chat(model=MODEL, messages=history, options={**GREEDY, "num_ctx": 256}, stream=True)
    )
    assert "".join(p.message.content or "" for p in parts)
    final = parts[-1]
    assert final.done is True and final.prompt_eval_count is not None
    # the 41 messages hold over 500 tokens: the newest turns that fit, with room for 8
    assert 128 < final.prompt_eval_count <= 256 - 8


def _call_weather(client: ollama.Client, **extra: Any) -> Any:
    return client.chat(
        model=MODEL,
        messages=[WEATHER_QUESTION],
        tools=[WEATHER_TOOL],
        format=WEATHER_CALL_FORMAT,
        options={"temperature": 0, "num_predict": 48},
        **extra,
    )


def test_chat_goes_on_with_a_final_assistant_message(client: ollama.Client) -> None:
    # as Ollama: the start of an answer is continued, not answered as a closed turn
    started = "1, 2, 3, 4,"
    messages = [
        {"role": "user", "content": "Count from 1 to 10 separated by commas."},
        {"role": "assistant", "content": started},
    ]
    response = client.chat(model=MODEL, messages=messages, options=GREEDY)
    assert response.message.content.lstrip().startswith("5,"), response.message.content


def test_chat_tool_call_and_tool_result_round_trip(client: ollama.Client) -> None:
    result = _call_weather(client)
    calls = result.message.tool_calls
    assert calls and len(calls) == 1
    call = calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict)
    assert isinstance(call.function.arguments.get("city"), str)
    assert result.done_reason == "stop"

    follow_up = client.chat(
        model=MODEL,
        messages=[
            WEATHER_QUESTION,
            result.message,
            {"role": "tool", "content": "18 degrees and sunny", "tool_name": "get_weather"},
        ],
        options=GREEDY,
    )
    assert follow_up.done is True
    assert follow_up.message.role == "assistant"
    assert isinstance(follow_up.message.content, str)


def test_a_call_has_the_arguments_its_tool_declares(
    client: ollama.Client, tools_model: str
) -> None:
    # the model called get_weather with a city alone three times; the tool now requires a
    # unit, and the grammar that starts at its <tool_call> makes it write one
    weather = {"type": "function", "function": {"name": "get_weather"}}
    weather["function"]["parameters"] = WEATHER_WITH_UNIT
    messages = weather_call_shots("What is the weather in Rome?", ollama=True)
    response = client.chat(
        model=tools_model, messages=messages, tools=[weather], options={"temperature": 0}
    )
    [call] = response.message.tool_calls or []
    assert call.function.name == "get_weather"
    jsonschema.validate(dict(call.function.arguments), WEATHER_WITH_UNIT)


def test_what_the_model_cannot_do_is_refused_as_ollama_refuses_it(client: ollama.Client) -> None:
    # SmolLM2's template shows the model no tools and has it reason inline: tools without
    # a format forcing a call, and think, would be silently ignored
    with pytest.raises(ollama.ResponseError, match=f'"{MODEL}" does not support tools') as no:
        client.chat(model=MODEL, messages=[WEATHER_QUESTION], tools=[WEATHER_TOOL])
    assert no.value.status_code == 400
    for think in (True, "high"):
        with pytest.raises(ollama.ResponseError, match="does not support thinking"):
            client.chat(model=MODEL, messages=[WEATHER_QUESTION], think=think)  # type: ignore[arg-type]
        with pytest.raises(ollama.ResponseError, match="does not support thinking"):
            client.generate(model=MODEL, prompt="Hi", think=think)  # type: ignore[arg-type]
        # a load (no prompt, no messages) is refused too
        with pytest.raises(ollama.ResponseError, match="does not support thinking"):
            client.generate(model=MODEL, think=think)  # type: ignore[arg-type]
        with pytest.raises(ollama.ResponseError, match="does not support thinking"):
            client.chat(model=MODEL, messages=[], think=think)  # type: ignore[arg-type]
    with pytest.raises(ollama.ResponseError, match="does not support tools"):
        client.chat(model=MODEL, messages=[], tools=[WEATHER_TOOL])
    with pytest.raises(ollama.ResponseError, match="does not support insert") as insert:
        client.generate(model=MODEL, suffix="return x")
    assert insert.value.status_code == 400
    # an unload is not checked, as in Ollama: not even raw mode's refusal of a system
    unloaded = client.generate(model=MODEL, raw=True, system="x", keep_alive=0)
    assert unloaded.done_reason == "unload"
    answer = client.chat(model=MODEL, messages=[WEATHER_QUESTION], think=False, options=GREEDY)
    assert answer.message.content


def test_streamed_tool_calls_come_before_the_final_chunk(client: ollama.Client) -> None:
    parts = list(_call_weather(client, stream=True))
    with_calls = [i for i, p in enumerate(parts) if p.message.tool_calls]
    assert with_calls, "no chunk carried the tool call"
    assert with_calls[-1] < len(parts) - 1
    assert parts[-1].done is True
    assert parts[with_calls[0]].message.tool_calls[0].function.name == "get_weather"


def test_embed_returns_unit_vectors(client: ollama.Client) -> None:
    result = client.embed(model=MODEL, input=["the cat sat", "on the mat"])
    assert isinstance(result, ollama.EmbedResponse)
    assert len(result.embeddings) == 2
    for vector in result.embeddings:
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-3)
    assert result.prompt_eval_count and result.prompt_eval_count > 0
    assert result.total_duration and result.total_duration > 0

    short = client.embed(model=MODEL, input="the cat sat", dimensions=16)
    assert len(short.embeddings) == 1 and len(short.embeddings[0]) == 16
    assert math.isclose(math.fsum(x * x for x in short.embeddings[0]), 1.0, rel_tol=1e-3)
    # as Ollama: more dimensions than the model's, or 0 (Go's unset), give the whole vector
    (whole,) = client.embed(model=MODEL, input="the cat sat").embeddings
    assert len(whole) == 576
    for dimensions in (577, 4096, 0):
        wider = client.embed(model=MODEL, input="the cat sat", dimensions=dimensions)
        assert wider.embeddings == [whole]


def test_legacy_embeddings(client: ollama.Client) -> None:
    result = client.embeddings(model=MODEL, prompt="the cat sat")
    assert len(result.embedding) == client.show(MODEL).modelinfo["llama.embedding_length"]
    # as Ollama's legacy route: the pooled vector as is, which /api/embed normalises
    length = math.sqrt(math.fsum(x * x for x in result.embedding))
    assert length > 1.5, length
    [unit] = client.embed(model=MODEL, input="the cat sat").embeddings
    pairs = zip(result.embedding, unit, strict=True)
    assert all(math.isclose(x / length, y, abs_tol=1e-6) for x, y in pairs)


def test_ps_lists_the_loaded_model(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="Hi", options={"temperature": 0, "num_predict": 1})
    running = {m.model: m for m in client.ps().models}
    assert MODEL in running
    entry = running[MODEL]
    assert entry.size and entry.size > 0
    assert entry.size_vram == 0
    assert entry.context_length and entry.context_length > 0
    assert entry.expires_at and entry.expires_at > datetime.now(UTC)
    assert entry.details and entry.details.family == "llama"


def test_chat_with_images_on_a_text_model_is_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "What is this?", "images": [b"\x89PNG fake"]}],
        )
    assert caught.value.status_code == 400
    assert "image" in caught.value.error


def test_create_from_a_model_copy_and_delete(client: ollama.Client) -> None:
    created = client.create(
        model="ollama-test-pirate:1",
        from_=MODEL,
        system="You are a pirate.",
        parameters={"temperature": 0.5},
    )
    assert created.status == "success"
    shown = client.show("ollama-test-pirate:1")
    assert shown.parameters and "temperature" in shown.parameters
    assert shown.modelfile and "You are a pirate." in shown.modelfile

    assert client.copy("ollama-test-pirate:1", "ollama-test-parrot:1").status == "success"
    names = {m.model for m in client.list().models}
    assert {"ollama-test-pirate:1", "ollama-test-parrot:1"} <= names

    assert client.delete("ollama-test-parrot:1").status == "success"
    assert client.delete("ollama-test-pirate:1").status == "success"
    names = {m.model for m in client.list().models}
    assert not names & {"ollama-test-pirate:1", "ollama-test-parrot:1"}
    assert MODEL in names


def test_copy_and_delete_of_missing_models_are_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.copy("no-such-model:1", "whatever:1")
    assert caught.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete("no-such-model:1")
    assert caught.value.status_code == 404


def test_create_from_an_uploaded_blob(client: ollama.Client, tiny_gguf: Path) -> None:
    digest = client.create_blob(tiny_gguf)
    statuses = [
        p.status
        for p in client.create(
            model="ollama-test-tiny:1", files={"tiny.gguf": digest}, system="tiny", stream=True
        )
    ]
    assert statuses[-1] == "success"
    assert "writing manifest" in statuses
    shown = client.show("ollama-test-tiny:1")
    assert shown.details and shown.details.family == "llama"
    assert shown.modelinfo and shown.modelinfo["llama.context_length"] == 256
    client.delete("ollama-test-tiny:1")


def test_an_embedding_model_is_refused_chat_and_generation_as_ollama_refuses_them(
    client: ollama.Client, tiny_embedding_gguf: Path
) -> None:
    name = "ollama-test-embedder:1"
    client.create(model=name, files={"e.gguf": client.create_blob(tiny_embedding_gguf)})
    try:
        assert client.show(name).capabilities == ["embedding"]
        refusals = {
            "chat": lambda: client.chat(model=name, messages=[WEATHER_QUESTION]),
            "generate": lambda: client.generate(model=name, prompt="Hi"),
        }
        loads = {  # an empty request only loads the model: refused all the same
            "chat": lambda: client.chat(model=name, messages=[]),
            "generate": lambda: client.generate(model=name),
        }
        for asked, call in [*refusals.items(), *loads.items()]:
            with pytest.raises(ollama.ResponseError) as caught:
                call()
            assert caught.value.status_code == 400
            assert caught.value.error == f'"{name}" does not support {asked}'
    finally:
        client.delete(name)


def test_roles_are_read_as_ollama_reads_them(client: ollama.Client) -> None:
    name = "ollama-test-brief:1"
    client.create(model=name, from_=MODEL, system="Be brief.")
    later = {"role": "system", "content": "The user likes cats."}
    question = {"role": "user", "content": "Name a pet."}
    try:
        options = {**GREEDY, "num_predict": 1}
        # the Modelfile's SYSTEM goes first unless the conversation opens with its own: a
        # system message later on keeps it (the same prompt as writing it out)
        implied = client.chat(
            model=name, messages=[WEATHER_QUESTION, later, question], options=options
        )
        spelt = [{"role": "system", "content": "Be brief."}, WEATHER_QUESTION, later, question]
        written = client.chat(model=name, messages=spelt, options=options)
        assert implied.prompt_eval_count == written.prompt_eval_count
        # roles in any case, as Ollama lowercases them
        shouted = [{**m, "role": m["role"].upper()} for m in spelt]
        assert client.chat(model=name, messages=shouted, options=options).prompt_eval_count == (
            written.prompt_eval_count
        )
    finally:
        client.delete(name)


def test_create_quantizing_quantized_weights_is_a_clear_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.create(model="ollama-test-q:1", from_=MODEL, quantize="q4_K_M")
    assert caught.value.status_code == 400
    assert "only supported for F16, BF16 and F32 models" in caught.value.error


THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n<think>\n"
)


def test_chat_thinking_model_separates_reasoning(client: ollama.Client) -> None:
    # a template that opens <think> makes every model a "thinking" one
    client.create(model="ollama-test-thinker:1", from_=MODEL, template=THINKING_TEMPLATE)
    try:
        assert "thinking" in (client.show("ollama-test-thinker:1").capabilities or [])
        question = [{"role": "user", "content": "Why is the sky blue?"}]
        options = {"temperature": 0, "num_predict": 6}
        # like Ollama, a thinking model thinks unless told not to
        result = client.chat(model="ollama-test-thinker:1", messages=question, options=options)
        assert result.message.thinking
        assert result.message.content == ""
        parts = list(
            client.chat(
                model="ollama-test-thinker:1",
                messages=question,
                options=options,
                think=True,
                stream=True,
            )
        )
        assert "".join(p.message.thinking or "" for p in parts)
        assert all(not p.message.content for p in parts)
        hidden = client.chat(
            model="ollama-test-thinker:1", messages=question, options=options, think=False
        )
        assert not hidden.message.thinking
    finally:
        client.delete("ollama-test-thinker:1")


def test_a_format_applies_to_the_answer_after_the_reasoning(client: ollama.Client) -> None:
    # as Ollama, which lets a thinking model reason before it applies the format: the
    # JSON is the answer, not the reasoning (a template whose examples reason first)
    name = "ollama-test-reasoner:1"
    client.create(model=name, from_=MODEL, template=REASONING_SHOTS + THINKING_TEMPLATE)
    fruit = [{"role": "user", "content": "Name a fruit."}]
    try:
        answer = client.chat(model=name, messages=fruit, format=ANSWER_SCHEMA, options=GREEDY_80)
        assert answer.message.thinking and "fruit" in answer.message.thinking
        jsonschema.validate(json.loads(answer.message.content), ANSWER_SCHEMA)
        parts = list(
            client.chat(
                model=name, messages=fruit, format=ANSWER_SCHEMA, options=GREEDY_80, stream=True
            )
        )
        assert "".join(p.message.thinking or "" for p in parts) == answer.message.thinking
        assert "".join(p.message.content for p in parts) == answer.message.content
        # with thinking off the reasoning is dropped, and the answer is still the JSON
        hidden = client.chat(
            model=name, messages=fruit, format=ANSWER_SCHEMA, options=GREEDY_80, think=False
        )
        assert not hidden.message.thinking
        jsonschema.validate(json.loads(hidden.message.content), ANSWER_SCHEMA)
    finally:
        client.delete(name)
