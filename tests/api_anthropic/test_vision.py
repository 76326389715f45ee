"""Images through the official ``anthropic`` SDK (base64 ``image`` blocks), on the real
SmolLM2 with a tiny random projector (``tiny_projector``): the answer is Ollama's for the
same image, and an image by URL is a 400 in Anthropic's shape."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from conftest import PowerServer
from tiny_projector import N_IMAGE_TOKENS, ollama_chat_answer, tiny_png

pytestmark = pytest.mark.model

QUESTION = "What is in this picture?"
GREEDY: dict[str, Any] = {"extra_body": {"temperature": 0.0, "top_k": 1}}


def test_an_image_block_is_read_as_ollama_reads_the_image(
    client: anthropic.Anthropic, power_server: PowerServer, seeing_model: str
) -> None:
    image = tiny_png(11)
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}
    message = client.messages.create(
        model=seeing_model,
        max_tokens=12,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": source},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
        **GREEDY,
    )
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text == ollama_chat_answer(power_server.url, seeing_model, QUESTION, image, 12)
    assert text != ollama_chat_answer(power_server.url, seeing_model, QUESTION, tiny_png(12), 12)


def test_an_image_by_url_is_a_400_in_anthropics_shape(
    client: anthropic.Anthropic, seeing_model: str
) -> None:
    source = {"type": "url", "url": "https://example.com/cat.png"}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=seeing_model,
            max_tokens=4,
            messages=[{"role": "user", "content": [{"type": "image", "source": source}]}],
        )
    assert refused.value.status_code == 400
    assert "base64" in str(refused.value.body)


def test_count_tokens_counts_an_image_as_the_request_takes_it(
    client: anthropic.Anthropic, seeing_model: str
) -> None:
    image = tiny_png(14)
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}
    messages: Any = [
        {
            "role": "user",
            "content": [{"type": "image", "source": source}, {"type": "text", "text": "hi"}],
        }
    ]
    counted = client.messages.count_tokens(model=seeing_model, messages=messages)
    sent = client.messages.create(model=seeing_model, max_tokens=2, messages=messages, **GREEDY)
    taken = sent.usage.input_tokens + (sent.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == taken
    text_only = client.messages.count_tokens(
        model=seeing_model, messages=[{"role": "user", "content": "hi"}]
    )
    assert counted.input_tokens == text_only.input_tokens + N_IMAGE_TOKENS
