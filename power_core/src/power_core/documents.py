"""The text of the PDF documents clients attach (Anthropic's ``document`` blocks, OpenAI's
``file`` and ``input_file`` parts), for models that read text: each page's text layer, read
with pypdf in a child process (:mod:`power_core.pdf_reader`) that has a CPU-time and a
memory limit and is killed at its deadline. A PDF can be made to take hours of pure Python
on one page (a form drawn thousands of times, thousands of fonts); in the server's own
process that would hold its interpreter lock and could not be stopped.

The text of a PDF read once is kept (by the SHA-256 of its bytes), so a conversation that
carries it turn after turn reads it once. A PDF whose pages have no text (scanned pages,
which would need OCR) is refused rather than left out, so that a client is never answered
about a document the model did not see.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections import OrderedDict

from power_core.errors import InvalidRequest

log = logging.getLogger("power_core")

PDF_MEDIA_TYPE = "application/pdf"
#: pages read at most from one document (a longer one is refused: no model here reads more)
MAX_PAGES = 1000
#: seconds one document may take to read, wall clock; its CPU time is held to the same
MAX_SECONDS = 20.0
#: the memory the reading process may take
MAX_MEMORY_BYTES = 1 << 30
#: the bytes one stream of a PDF may decompress to (pypdf's own bound is 75 MB)
MAX_STREAM_BYTES = 4_000_000
#: texts kept, by the SHA-256 of their PDFs
_KEPT_TEXTS = 64
_kept: OrderedDict[str, str] = OrderedDict()


class UnreadableDocument(InvalidRequest):
    """A document this server cannot read as text."""

    code = "unreadable_document"


def pdf_text(data: bytes, param: str, name: str | None = None) -> str:
    """The text of the PDF ``data`` (page after page, a blank line between), headed by its
    ``name`` if given; :class:`UnreadableDocument` naming ``param`` when it is not a PDF,
    asks for a password, has more than :data:`MAX_PAGES` pages, unpacks too large, takes
    longer than :data:`MAX_SECONDS` to read, or has no text."""
    digest = hashlib.sha256(data).hexdigest()
    text = _kept.get(digest)
    if text is None:
        text = _read(data, param)
        _kept[digest] = text
        while len(_kept) > _KEPT_TEXTS:
            _kept.popitem(last=False)
    _kept.move_to_end(digest)
    return f"{name}\n\n{text}" if name else text


def _read(data: bytes, param: str) -> str:
    """Run the reading process (under gevent its wait yields to other requests)."""
    try:
        limits = (MAX_PAGES, MAX_STREAM_BYTES, int(MAX_SECONDS) + 1, MAX_MEMORY_BYTES)
        finished = subprocess.run(
            [sys.executable, "-m", "power_core.pdf_reader", *map(str, limits)],
            input=data,
            capture_output=True,
            timeout=MAX_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnreadableDocument(
            f"the PDF takes more than {MAX_SECONDS:.0f} s to read; send fewer pages, or "
            "their text.",
            param=param,
        ) from None
    try:
        answer = json.loads(finished.stdout)
    except ValueError:
        log.info("the PDF reader ended with %s: %s", finished.returncode, finished.stderr[-300:])
        raise UnreadableDocument(
            "the PDF could not be read within this server's limits (time and memory); send "
            "its text instead.",
            param=param,
        ) from None
    refused = answer.get("refused")
    if refused is not None:
        raise UnreadableDocument(_refusal(refused, answer), param=param)
    text = "\n\n".join(page for page in answer["pages"] if page)
    if not text:
        raise UnreadableDocument(
            "the PDF has no text to read (scanned pages would need OCR, which this server "
            "does not do); send its text instead.",
            param=param,
        )
    return text


def _refusal(kind: str, answer: dict[str, object]) -> str:
    if kind == "password":
        return "the PDF asks for a password."
    if kind == "pages":
        return f"the PDF has {answer.get('count')} pages; this server reads at most {MAX_PAGES}."
    if kind == "limit":
        return (
            f"the PDF passes one of this server's bounds on reading ({answer.get('why')}); "
            "send its text instead."
        )
    return f"the document is not a PDF this server can read ({answer.get('why')})."
