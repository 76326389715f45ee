"""PDFs attached through the official ``openai`` SDK, unchanged: a chat message's ``file``
part and a Responses ``input_file`` are read as their text (the same tokens as that text
sent as a text part); files by id or URL, other types and unreadable PDFs are 400s."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest
from openai import OpenAI

from api_openai.wire_reading import MODEL
from pdf_files import pdf_with_pages

pytestmark = pytest.mark.model

PAGES = ("The mill stands by the river.", "It was built in 1820.")
TEXT = "mill.pdf\n\n" + "\n\n".join(PAGES)


def data_url(data: bytes, media_type: str = "application/pdf") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def chat_prompt_tokens(client: OpenAI, part: dict[str, Any]) -> int:
    reply = client.chat.completions.create(
        model=MODEL,
        max_tokens=1,
        messages=[{"role": "user", "content": [part, {"type": "text", "text": "When?"}]}],  # type: ignore[list-item, misc]
    )
    assert reply.usage is not None
    return reply.usage.prompt_tokens


def test_a_chat_file_part_is_read_as_its_text(client: OpenAI) -> None:
    as_file = chat_prompt_tokens(
        client,
        {
            "type": "file",
            "file": {"filename": "mill.pdf", "file_data": data_url(pdf_with_pages(*PAGES))},
        },
    )
    assert as_file == chat_prompt_tokens(client, {"type": "text", "text": TEXT})
    # a data URL with parameters, and bare base64, are taken too
    named = data_url(pdf_with_pages(*PAGES)).replace(";base64,", ";name=mill.pdf;base64,")
    assert as_file == chat_prompt_tokens(
        client, {"type": "file", "file": {"filename": "mill.pdf", "file_data": named}}
    )
    bare = base64.b64encode(pdf_with_pages(*PAGES)).decode()
    assert as_file == chat_prompt_tokens(
        client, {"type": "file", "file": {"filename": "mill.pdf", "file_data": bare}}
    )


def test_a_responses_input_file_is_read_as_its_text(client: OpenAI) -> None:
    def counted(part: dict[str, Any]) -> int:
        items = [{"role": "user", "content": [part, {"type": "input_text", "text": "When?"}]}]
        return client.responses.input_tokens.count(model=MODEL, input=items).input_tokens  # type: ignore[arg-type]

    as_file = counted(
        {
            "type": "input_file",
            "filename": "mill.pdf",
            "file_data": data_url(pdf_with_pages(*PAGES)),
        }
    )
    assert as_file == counted({"type": "input_text", "text": TEXT})
    reply = client.responses.create(
        model=MODEL,
        max_output_tokens=4,
        input=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_file",
                        "filename": "mill.pdf",
                        "file_data": data_url(pdf_with_pages(*PAGES)),
                    },
                    {"type": "input_text", "text": "When?"},
                ],
            }
        ],  # type: ignore[list-item]
    )
    assert reply.usage is not None and reply.usage.input_tokens == as_file


@pytest.mark.parametrize(
    ("file", "param", "says"),
    [
        ({"file_id": "file-123"}, "file.file_id", "file_id"),
        ({"file_data": data_url(b"hello", "text/plain")}, "file.file_data", "text/plain"),
        ({"file_data": data_url(b"not a pdf")}, "file.file_data", "not a PDF"),
        ({"file_data": data_url(pdf_with_pages(""))}, "file.file_data", "no text"),
        ({"file_data": "data:application/pdf;base64,%%%"}, "file.file_data", "base64"),
        ({"filename": "a.pdf"}, "file.file_data", "file_data"),
    ],
)
def test_what_cannot_be_read_is_a_400(client: OpenAI, file: dict, param: str, says: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        chat_prompt_tokens(client, {"type": "file", "file": file})
    assert refused.value.param == f"messages[0].content[0].{param}"
    assert says in str(refused.value)
    with pytest.raises(openai.BadRequestError) as by_url:
        client.responses.create(
            model=MODEL,
            input=[
                {"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}
            ],  # type: ignore[list-item]
        )
    assert by_url.value.param == "input[0].content[0].file_url"
