"""Images through the official ``openai`` SDK (``image_url`` parts with data URLs), on the
real SmolLM2 with a tiny random projector (``tiny_projector``): the answer is Ollama's for
the same image, and a conversation that sends its image again reuses the prompt's cache
through the image, which a different image does not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from openai import BadRequestError, OpenAI

from conftest import PowerServer
from tiny_projector import N_IMAGE_TOKENS, ollama_chat_answer, tiny_png

pytestmark = pytest.mark.model

QUESTION = "What is in this picture?"


def asked(image: bytes, text: str = QUESTION) -> list[Any]:
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    parts = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]
    return [{"role": "user", "content": parts}]


def test_an_image_url_is_read_as_ollama_reads_the_image(
    client: OpenAI, power_server: PowerServer, seeing_model: str
) -> None:
    image = tiny_png(7)
    answer = client.chat.completions.create(
        model=seeing_model, messages=asked(image), temperature=0, max_tokens=12
    )
    text = answer.choices[0].message.content
    # OpenAI's API has no repetition penalty: Ollama's without it
    plain = ollama_chat_answer(
        power_server.url, seeing_model, QUESTION, image, 12, repeat_penalty=1.0
    )
    assert text == plain
    other = client.chat.completions.create(
        model=seeing_model, messages=asked(tiny_png(8)), temperature=0, max_tokens=12
    )
    assert other.choices[0].message.content != text
    assert other.usage is not None and answer.usage is not None
    assert other.usage.prompt_tokens == answer.usage.prompt_tokens


def test_the_prompt_cache_holds_an_image_only_for_that_image(
    client: OpenAI, seeing_model: str
) -> None:
    image = tiny_png(9)
    first = client.chat.completions.create(
        model=seeing_model, messages=asked(image, "Describe it."), temperature=0, max_tokens=4
    )
    again = client.chat.completions.create(
        model=seeing_model, messages=asked(image, "Describe it."), temperature=0, max_tokens=4
    )
    other = client.chat.completions.create(
        model=seeing_model,
        messages=asked(tiny_png(10), "Describe it."),
        temperature=0,
        max_tokens=4,
    )
    assert first.usage is not None and again.usage is not None and other.usage is not None
    cached = again.usage.prompt_tokens_details
    assert cached is not None and cached.cached_tokens == again.usage.prompt_tokens - 2
    # another image: the cache ends where the image starts
    held = other.usage.prompt_tokens_details
    assert held is not None and held.cached_tokens is not None
    assert held.cached_tokens < other.usage.prompt_tokens - N_IMAGE_TOKENS - 3


def test_an_image_that_is_not_one_is_a_400_in_openais_shape(
    client: OpenAI, seeing_model: str
) -> None:
    with pytest.raises(BadRequestError) as refused:
        client.chat.completions.create(
            model=seeing_model, messages=asked(b"GIF89a broken"), max_tokens=4
        )
    assert refused.value.status_code == 400
    body = refused.value.body
    assert isinstance(body, dict) and "could not be read" in body["message"]


def test_images_between_text_parts_are_read_where_they_are(
    client: OpenAI, power_server: PowerServer, seeing_model: str
) -> None:
    first, second = tiny_png(15), tiny_png(16)

    def part(image: bytes) -> dict[str, Any]:
        url = "data:image/png;base64," + base64.b64encode(image).decode()
        return {"type": "image_url", "image_url": {"url": url}}

    def text(words: str) -> dict[str, Any]:
        return {"type": "text", "text": words}

    parts = [text("Compare"), part(first), text("with"), part(second)]
    answer = client.chat.completions.create(
        model=seeing_model,
        messages=[{"role": "user", "content": parts}],  # type: ignore[list-item,misc]
        temperature=0,
        max_tokens=12,
    )
    # as Ollama reads [img] where a message's text places an image
    placed = ollama_chat_answer(
        power_server.url,
        seeing_model,
        "Compare\n[img]with\n[img]",
        [first, second],
        12,
        repeat_penalty=1.0,
    )
    assert answer.choices[0].message.content == placed
    upfront = ollama_chat_answer(
        power_server.url, seeing_model, "Compare\nwith", [first, second], 12, repeat_penalty=1.0
    )
    assert placed != upfront
