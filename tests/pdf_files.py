"""Small PDFs built in the tests: pages of Helvetica text, or pages with no text at all."""

from __future__ import annotations

import zlib


def pdf_with_pages(*texts: str, flate_repeats: int = 1) -> bytes:
    """A PDF of one page per text (an empty text makes a page with nothing to read); with
    ``flate_repeats``, each page's drawing repeated that often and compressed (a small
    file that unpacks to a large one)."""
    pages = len(texts)
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(pages))
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for n, text in enumerate(texts):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET\n".encode() if text else b""
        bodies.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * n} 0 R >>".encode()
        )
        packing = b""
        if flate_repeats > 1:
            content = zlib.compress(content * flate_repeats, 9)
            packing = b" /Filter /FlateDecode"
        bodies.append(
            b"<< /Length "
            + str(len(content)).encode()
            + packing
            + b" >>\nstream\n"
            + content
            + b"\nendstream"
        )
    return _assembled(bodies)


def pdf_drawing_a_form(times: int, form_text: str = "again ") -> bytes:
    """One page that draws a text form ``times`` times: a few bytes that make pypdf read
    the form's text as often (slow pure Python for a large ``times``)."""
    form_content = ("BT /F1 12 Tf 72 700 Td (" + form_text * 200 + ") Tj ET\n").encode()
    page_content = b"BT /F1 12 Tf 72 720 Td (visible) Tj ET\n" + b"/Fm0 Do\n" * times
    packed_page = zlib.compress(page_content, 9)
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
        b"<< /Font << /F1 3 0 R >> /XObject << /Fm0 6 0 R >> >> /Contents 5 0 R >>",
        b"<< /Length "
        + str(len(packed_page)).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
        + packed_page
        + b"\nendstream",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources "
        b"<< /Font << /F1 3 0 R >> >> /Length "
        + str(len(form_content)).encode()
        + b" >>\nstream\n"
        + form_content
        + b"\nendstream",
    ]
    return _assembled(bodies)


def _assembled(bodies: list[bytes]) -> bytes:
    """A PDF file of ``bodies``, objects 1, 2, ... in order, with its cross-reference table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(bodies) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(bodies) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
