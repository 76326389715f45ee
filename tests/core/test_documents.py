"""The text of attached PDFs (power_core.documents), with PDFs built in the test."""

from __future__ import annotations

import io
import time

import pytest
from pypdf import PdfReader, PdfWriter

from pdf_files import pdf_drawing_a_form, pdf_with_pages
from power_core import documents
from power_core.documents import UnreadableDocument, pdf_text


def test_the_pages_text_is_read_in_order_under_the_documents_name() -> None:
    data = pdf_with_pages("First (page).", "", "Third page.")
    assert pdf_text(data, "doc") == "First (page).\n\nThird page."
    assert pdf_text(data, "doc", "notes.pdf") == "notes.pdf\n\nFirst (page).\n\nThird page."


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"plain words, not a PDF", "not a PDF"),
        (pdf_with_pages("cut")[:60], "not a PDF"),
        (pdf_with_pages("", ""), "no text"),
    ],
)
def test_what_cannot_be_read_is_a_400_naming_the_parameter(data: bytes, says: str) -> None:
    with pytest.raises(UnreadableDocument) as refused:
        pdf_text(data, "messages.0.content.1.source")
    assert refused.value.http_status == 400
    assert refused.value.param == "messages.0.content.1.source"
    assert says in refused.value.message


def test_a_pdf_behind_a_password_is_refused_and_one_without_is_read() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_pages("Secret."))))
    writer.encrypt(user_password="hunter2", algorithm="AES-128")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(UnreadableDocument, match="password"):
        pdf_text(locked.getvalue(), "file")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_pages("Open."))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    opened = io.BytesIO()
    writer.write(opened)
    assert pdf_text(opened.getvalue(), "file") == "Open."


def test_a_small_pdf_that_unpacks_to_a_huge_one_is_refused_at_once() -> None:
    bomb = pdf_with_pages("x", flate_repeats=2_000_000)  # 66 MB of drawing in 70 KB
    assert len(bomb) < 200_000
    with pytest.raises(UnreadableDocument, match="bounds on reading"):
        pdf_text(bomb, "file")
    assert pdf_text(pdf_with_pages("fits", flate_repeats=100), "file").startswith("fits")


def test_a_pdf_that_takes_too_long_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_SECONDS", 0.0)
    with pytest.raises(UnreadableDocument, match="takes more than"):
        pdf_text(pdf_with_pages("slow a", "slow b"), "file")


def test_a_page_that_would_read_for_ever_is_stopped_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a 10 KB file whose one page draws a form 20,000 times: minutes of pure Python
    slow = pdf_drawing_a_form(20_000)
    assert len(slow) < 20_000
    monkeypatch.setattr(documents, "MAX_SECONDS", 2.0)
    started = time.monotonic()
    with pytest.raises(UnreadableDocument, match="takes more than 2 s"):
        pdf_text(slow, "file")
    assert time.monotonic() - started < 10  # the reading process was ended, not awaited
    assert pdf_text(pdf_drawing_a_form(2), "file").startswith("visible")


def test_too_many_pages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_PAGES", 2)
    with pytest.raises(UnreadableDocument, match="3 pages"):
        pdf_text(pdf_with_pages("a", "b", "c"), "file")
