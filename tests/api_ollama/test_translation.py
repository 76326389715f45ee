"""Ollama request fields translated into core requests, without a server."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from power_api_ollama.options import parse_options
from power_api_ollama.translate import chat_request, embed_request, generate_request
from power_api_ollama.wire import keep_alive, rfc3339
from power_core.errors import InvalidRequest


def test_options_are_sorted_for_the_core() -> None:
    parsed = parse_options(
        {
            "temperature": 0,
            "top_k": 5.0,
            "seed": 7,
            "num_ctx": 1024,
            "use_mmap": False,
            "num_predict": 12,
            "stop": "\n",
        }
    )
    assert parsed.sampling == {"temperature": 0.0, "top_k": 5, "seed": 7}
    assert isinstance(parsed.sampling["top_k"], int)
    assert parsed.load == {"num_ctx": 1024, "use_mmap": False}
    assert parsed.max_tokens == 12
    assert parsed.stop == ["\n"]
    assert parse_options({"num_predict": -1}).max_tokens == -1  # no limit, over a Modelfile's
    assert parse_options({"num_predict": 0}).max_tokens == -1  # Ollama's runners: no limit
    assert parse_options(None).sampling == {}


def test_unusable_and_unknown_options_are_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="power_api_ollama"):
        parsed = parse_options({"mirostat": 2, "low_vram": True, "frobnicate": True})
    assert parsed.sampling == {} and parsed.load == {}
    assert "mirostat" in caplog.text and "low_vram" in caplog.text
    assert "frobnicate" in caplog.text


def test_gpu_options_are_load_options() -> None:
    parsed = parse_options({"num_gpu": 1, "main_gpu": 0, "use_mlock": True})
    assert parsed.load == {"num_gpu": 1, "main_gpu": 0, "use_mlock": True}


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": float("inf")}, "top_k"),
        ({"num_ctx": "big"}, "num_ctx"),
        ({"use_mmap": 1}, "use_mmap"),
        ({"stop": ["a", 1]}, "stop"),
        ({"mirostat": "yes"}, "mirostat"),
    ],
)
def test_a_wrong_option_type_names_the_option(options: dict, name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_options(options)
    assert caught.value.param == name and f"'{name}'" in caught.value.message


def test_a_fraction_for_a_whole_option_is_cut_as_ollama_cuts_it() -> None:
    parsed = parse_options({"num_predict": 3.5, "top_k": 2.9, "num_ctx": 1024.0})
    assert (parsed.max_tokens, parsed.sampling["top_k"], parsed.load["num_ctx"]) == (3, 2, 1024)


def test_errors_show_values_as_json() -> None:
    with pytest.raises(InvalidRequest, match=r"got true$"):
        parse_options({"temperature": True})
    with pytest.raises(InvalidRequest, match=r"got true$"):
        keep_alive({"keep_alive": True})


def test_generate_fields() -> None:
    request, images = generate_request(
        {
            "model": "m",
            "prompt": "p",
            "suffix": "",
            "system": "s",
            "context": [1, 2],
            "keep_alive": "5m",
            "format": "json",
            "think": "high",
            "logprobs": True,
            "top_logprobs": 3,
            "images": ["aGk="],
        }
    )
    assert (request.prompt, request.system, request.context) == ("p", "s", [1, 2])
    assert request.suffix is None
    assert request.keep_alive == 300
    assert request.response_format is not None and request.response_format.schema is None
    assert request.think is True and request.logprobs == 3
    assert images == [b"hi"]
    # as Ollama: top_logprobs only applies when logprobs is true
    alone, _ = generate_request({"model": "m", "prompt": "p", "top_logprobs": 3})
    assert alone.logprobs is None


def test_chat_messages_and_tools() -> None:
    request = chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"function": {"name": "get", "arguments": {"city": "Paris"}}}],
                },
                {"role": "tool", "content": "sunny", "tool_name": "get"},
            ],
            "tools": [{"type": "function", "function": {"name": "get"}}],
            "format": {"type": "object"},
            "keep_alive": -1,
        }
    )
    assert request.messages is not None
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]
    assert request.messages[1].tool_calls[0].arguments == {"city": "Paris"}
    assert request.messages[2].tool_name == "get"
    assert request.tools[0].name == "get"
    assert request.tools[0].parameters["type"] == "object"
    assert request.response_format is not None
    assert request.response_format.schema == {"type": "object"}
    assert request.keep_alive == -1


def test_embed_input_forms() -> None:
    assert embed_request({"model": "m", "input": "a"}).inputs == ["a"]
    assert embed_request({"model": "m", "input": ["a", "b"]}).inputs == ["a", "b"]
    assert embed_request({"model": "m"}).inputs == []
    assert embed_request({"model": "m", "input": "a", "truncate": False}).truncate is False
    assert embed_request({"model": "m", "input": "a", "dimensions": 0}).dimensions is None
    with pytest.raises(InvalidRequest):
        embed_request({"model": "m", "input": "a", "dimensions": -1})


def test_times_have_nanoseconds() -> None:
    moment = datetime(2024, 6, 4, 14, 38, 31, 837530, tzinfo=UTC)
    assert rfc3339(moment) == "2024-06-04T14:38:31.837530000Z"
    shifted = moment.astimezone(timezone(timedelta(hours=-7)))
    assert rfc3339(shifted) == "2024-06-04T14:38:31.837530000Z"
    assert rfc3339(moment.timestamp()).startswith("2024-06-04T14:38:31.8375")
