"""OpenAI's Files API through the official ``openai`` SDK, unchanged: upload, retrieve,
list (paged), download and delete; and an uploaded PDF or text file named by its
``file_id`` in a chat's ``file`` part or a response's ``input_file``, read as its text."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI

from api_openai.test_sdk_files import PAGES, TEXT, chat_prompt_tokens
from api_openai.wire_reading import MODEL
from conftest import PowerServer
from pdf_files import pdf_with_pages

NOTES = "Buy flour.\nFix the mill wheel.\n"


@pytest.fixture
def uploaded(client: OpenAI) -> Any:
    """Upload files for one test and delete what is left after it."""
    made: list[str] = []

    def upload(name: str, data: bytes, purpose: str = "user_data", **options: Any) -> Any:
        created = client.files.create(file=(name, data), purpose=purpose, **options)  # type: ignore[arg-type]
        made.append(created.id)
        return created

    yield upload
    for file_id in made:
        with contextlib.suppress(openai.NotFoundError):
            client.files.delete(file_id)


def test_a_file_is_uploaded_retrieved_downloaded_and_deleted(client: OpenAI, uploaded: Any) -> None:
    data = pdf_with_pages(*PAGES)
    created = uploaded("mill.pdf", data)
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose) == (
        len(data),
        "mill.pdf",
        "user_data",
    )
    assert created.status == "processed" and created.expires_at is None
    assert abs(created.created_at - time.time()) < 60
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).read() == data
    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError, match=created.id):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_files_are_listed_newest_first_page_by_page(client: OpenAI, uploaded: Any) -> None:
    made = [uploaded(f"n{i}.txt", f"note {i}".encode(), purpose="assistants").id for i in range(3)]
    listed = [f.id for f in client.files.list(purpose="assistants", limit=1)]  # every page
    assert listed == list(reversed(made))
    first = client.files.list(purpose="assistants", limit=2)
    assert [f.id for f in first.data] == [made[2], made[1]] and first.has_more
    oldest = client.files.list(purpose="assistants", order="asc", limit=1)
    assert [f.id for f in oldest.data] == [made[0]]
    assert all(f.purpose == "user_data" for f in client.files.list(purpose="user_data"))


def test_an_uploaded_pdf_by_id_is_read_as_its_text(client: OpenAI, uploaded: Any) -> None:
    file_id = uploaded("mill.pdf", pdf_with_pages(*PAGES)).id
    as_text = chat_prompt_tokens(client, {"type": "text", "text": TEXT})
    assert chat_prompt_tokens(client, {"type": "file", "file": {"file_id": file_id}}) == as_text
    items = [
        {
            "role": "user",
            "content": [
                {"type": "input_file", "file_id": file_id},
                {"type": "input_text", "text": "When?"},
            ],
        }
    ]
    counted = client.responses.input_tokens.count(model=MODEL, input=items).input_tokens  # type: ignore[arg-type]
    text_items = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": TEXT},
                {"type": "input_text", "text": "When?"},
            ],
        }
    ]
    assert (
        counted == client.responses.input_tokens.count(model=MODEL, input=text_items).input_tokens
    )  # type: ignore[arg-type]
    reply = client.responses.create(model=MODEL, input=items, max_output_tokens=4)  # type: ignore[arg-type]
    assert reply.usage is not None and reply.usage.input_tokens > 0


def test_an_uploaded_text_file_by_id_is_read_as_it_is(client: OpenAI, uploaded: Any) -> None:
    file_id = uploaded("notes.txt", NOTES.encode()).id
    as_text = chat_prompt_tokens(client, {"type": "text", "text": f"notes.txt\n\n{NOTES}"})
    assert chat_prompt_tokens(client, {"type": "file", "file": {"file_id": file_id}}) == as_text


def test_files_that_cannot_be_read_are_400s(client: OpenAI, uploaded: Any) -> None:
    binary = uploaded("blob.bin", bytes(range(256))).id
    gone = uploaded("gone.txt", b"soon gone").id
    client.files.delete(gone)
    for file_id, says in ((binary, "neither a PDF nor UTF-8 text"), (gone, "no file with id")):
        with pytest.raises(openai.BadRequestError, match=says) as refused:
            chat_prompt_tokens(client, {"type": "file", "file": {"file_id": file_id}})
        assert refused.value.param == "messages[0].content[0].file.file_id"


def test_an_expiry_is_kept_and_bad_uploads_are_400s(client: OpenAI, v1: str, uploaded: Any) -> None:
    expiring = uploaded("e.txt", b"x", expires_after={"anchor": "created_at", "seconds": 3600})
    assert expiring.expires_at is not None
    assert expiring.expires_at - expiring.created_at in (3600, 3601)
    with pytest.raises(openai.BadRequestError) as bad_purpose:
        client.files.create(file=("a.txt", b"x"), purpose="nope")  # type: ignore[arg-type]
    assert bad_purpose.value.param == "purpose"
    with pytest.raises(openai.BadRequestError) as too_soon:
        client.files.create(
            file=("a.txt", b"x"),
            purpose="user_data",
            expires_after={"anchor": "created_at", "seconds": 10},
        )
    assert too_soon.value.param == "expires_after.seconds"
    no_file = requests.post(f"{v1}/files", data={"purpose": "user_data"}, timeout=30)
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    wrong_method = requests.put(f"{v1}/files/file-0", timeout=30)
    assert wrong_method.status_code == 405
    unknown = requests.get(f"{v1}/files/not-a-file-id", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"


def test_a_file_name_loses_folders_and_control_characters(
    client: OpenAI, v1: str, uploaded: Any
) -> None:
    # a name with a line break would break the header its download is named in; the SDK
    # escapes one, a hand-made form (RFC 5987's filename*) need not
    boundary = "b0undary"
    form = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; '
        "filename*=UTF-8''..%2Fnotes%0D%0ASet-Cookie%3A%20x%3D1.txt\r\n\r\n"
        f"some notes\r\n--{boundary}--\r\n"
    )
    reply = requests.post(
        f"{v1}/files",
        data=form.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    created = client.files.retrieve(reply.json()["id"])
    assert created.filename == "notesSet-Cookie: x=1.txt"
    download = requests.get(f"{v1}/files/{created.id}/content", timeout=30)
    assert download.status_code == 200 and download.content == b"some notes"
    assert "Set-Cookie" not in download.headers
    client.files.delete(created.id)
    with pytest.raises(openai.BadRequestError, match="empty") as empty:
        client.files.create(file=("empty.txt", b""), purpose="user_data")  # type: ignore[arg-type]
    assert empty.value.param == "file"


def test_an_upload_without_a_length_and_one_with_two_files(
    client: OpenAI, v1: str, power_server: PowerServer
) -> None:
    boundary = "b0undary"

    def part(name: str, body: bytes, filename: str | None = None) -> bytes:
        named = f'; filename="{filename}"' if filename else ""
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{named}\r\n\r\n'
        return head.encode() + body + b"\r\n"

    data = bytes(range(256)) * 4096  # 1 MiB
    form = [
        part("purpose", b"user_data"),
        part("file", data, "big.bin"),
        part("file", b"a second file", "second.txt"),
        f"--{boundary}--\r\n".encode(),
    ]
    reply = requests.post(  # a generator body goes chunked, without a Content-Length
        f"{v1}/files",
        data=(piece for piece in form),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    kept = reply.json()
    assert (kept["filename"], kept["bytes"]) == ("big.bin", len(data))
    assert client.files.content(kept["id"]).read() == data
    client.files.delete(kept["id"])
    # written straight into the store's folder; the second file's bytes did not stay there
    assert list((power_server.home / "files").glob(".upload-*")) == []
