"""PDF documents through the official ``anthropic`` SDK, unchanged: the model reads their
text (counted token for token as the same text sent as a text document), in a message and
in a tool result; what cannot be read is a 400 in Anthropic's shape."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from api_anthropic.conftest import MODEL
from pdf_files import pdf_with_pages

pytestmark = pytest.mark.model

PAGES = ("The mill stands by the river.", "It was built in 1820.")


def pdf_block(data: bytes, title: str = "mill.pdf") -> dict[str, Any]:
    return {
        "type": "document",
        "title": title,
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(data).decode(),
        },
    }


def text_block(text: str, title: str = "mill.pdf") -> dict[str, Any]:
    return {"type": "document", "title": title, "source": {"type": "text", "data": text}}


def counted(client: anthropic.Anthropic, blocks: list[dict[str, Any]]) -> int:
    messages = [{"role": "user", "content": [*blocks, {"type": "text", "text": "When?"}]}]
    return client.messages.count_tokens(model=MODEL, messages=messages).input_tokens  # type: ignore[arg-type]


def test_the_model_reads_a_pdfs_text(client: anthropic.Anthropic) -> None:
    as_pdf = counted(client, [pdf_block(pdf_with_pages(*PAGES))])
    as_text = counted(client, [text_block("\n\n".join(PAGES))])
    assert as_pdf == as_text
    assert as_pdf > counted(client, [])
    reply = client.messages.create(
        model=MODEL,
        max_tokens=8,
        messages=[
            {
                "role": "user",
                "content": [pdf_block(pdf_with_pages(*PAGES)), {"type": "text", "text": "When?"}],  # type: ignore[list-item]
            }
        ],
    )
    usage = reply.usage  # Anthropic counts the tokens read from the cache apart
    read = usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert read + (usage.cache_creation_input_tokens or 0) == as_pdf


def test_a_pdf_in_a_tool_result_is_read(client: anthropic.Anthropic) -> None:
    def conversation(result: dict[str, Any]) -> list[Any]:
        return [
            {"role": "user", "content": "Read the file."},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [result]}],
            },
        ]

    # no tools offered: this model's template shows none (the turns still read back)
    as_pdf = client.messages.count_tokens(
        model=MODEL,
        messages=conversation(pdf_block(pdf_with_pages(*PAGES))),
    )
    as_text = client.messages.count_tokens(
        model=MODEL,
        messages=conversation(text_block("\n\n".join(PAGES))),
    )
    assert as_pdf.input_tokens == as_text.input_tokens
    bare = client.messages.count_tokens(
        model=MODEL,
        messages=conversation({"type": "text", "text": "ok"}),
    )
    assert as_pdf.input_tokens > bare.input_tokens + 10  # not left out


@pytest.mark.parametrize(
    ("block", "says"),
    [
        (pdf_block(b"%PDF-1.4 nothing more"), "not a PDF"),
        (pdf_block(pdf_with_pages("")), "no text"),
        (
            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
            "does not download",
        ),
        (
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "%%%"},
            },
            "base64",
        ),
    ],
)
def test_what_cannot_be_read_is_a_400(client: anthropic.Anthropic, block: dict, says: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        counted(client, [block])
    assert refused.value.status_code == 400 and says in str(refused.value)
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
