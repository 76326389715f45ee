"""The text of the PDF documents clients attach (Anthropic's ``document`` blocks, OpenAI's
``file`` and ``input_file`` parts), for models that read text: each page's text layer, read
with pypdf on a thread of its own (a long PDF takes seconds of pure Python, which would
hold up every other request on the server's event loop).

A PDF whose pages have no text (scanned pages, which would need OCR) is refused rather than
left out, so that a client is never answered about a document the model did not see.
"""

from __future__ import annotations

import io
import logging
import time

from power_core.concurrency import run_on_native_thread
from power_core.errors import InvalidRequest

log = logging.getLogger("power_core")

PDF_MEDIA_TYPE = "application/pdf"
#: pages read at most from one document (a longer one is refused: no model here reads more)
MAX_PAGES = 1000
#: seconds one document's pages may take to read, checked after each page
MAX_SECONDS = 20.0
#: the bytes one stream of a PDF may decompress to (pypdf's own bound is 75 MB, which
#: takes minutes of pure Python to read as text; a page's text takes far less)
MAX_STREAM_BYTES = 4_000_000


class UnreadableDocument(InvalidRequest):
    """A document this server cannot read as text."""

    code = "unreadable_document"


def pdf_text(data: bytes, param: str, name: str | None = None) -> str:
    """The text of the PDF ``data`` (page after page, a blank line between), headed by its
    ``name`` if given; :class:`UnreadableDocument` naming ``param`` when it is not a PDF,
    asks for a password, has more than :data:`MAX_PAGES` pages or has no text."""
    text = run_on_native_thread(lambda: _read_pages(data, param), "pdf-text")
    return f"{name}\n\n{text}" if name else text


def _read_pages(data: bytes, param: str) -> str:
    from pypdf import PdfReader, overwrite_configuration
    from pypdf.errors import LimitReachedError

    # this thread's own (a context variable): the bounds hold for this document only
    overwrite_configuration(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        array_based_stream_maximum_output_length=MAX_STREAM_BYTES,
    )
    started = time.monotonic()
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableDocument("the PDF asks for a password.", param=param)
        count = len(reader.pages)
        if count > MAX_PAGES:
            raise UnreadableDocument(
                f"the PDF has {count} pages; this server reads at most {MAX_PAGES}.",
                param=param,
            )
        pages = []
        for page in reader.pages:
            pages.append((page.extract_text() or "").strip())
            if time.monotonic() - started > MAX_SECONDS:
                raise UnreadableDocument(
                    f"the PDF took more than {MAX_SECONDS:.0f} s to read ({len(pages)} of "
                    f"{count} pages); send fewer pages, or their text.",
                    param=param,
                )
    except UnreadableDocument:
        raise
    except LimitReachedError:
        raise UnreadableDocument(
            f"a part of the PDF unpacks to more than {MAX_STREAM_BYTES} bytes, more than this "
            "server reads; send its text instead.",
            param=param,
        ) from None
    except Exception as exc:  # pypdf's many errors on a damaged or foreign file
        log.info("an attached PDF could not be read: %s: %s", type(exc).__name__, exc)
        raise UnreadableDocument(
            f"the document is not a PDF this server can read ({type(exc).__name__}).",
            param=param,
        ) from None
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise UnreadableDocument(
            "the PDF has no text to read (scanned pages would need OCR, which this server "
            "does not do); send its text instead.",
            param=param,
        )
    return text
