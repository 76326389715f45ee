"""The child process that reads a PDF's text (``python -m power_core.pdf_reader``): the PDF
on standard input, one JSON object on standard output, ``{"pages": [...], "count": n}`` or
``{"refused": "...", "why": "..."}``. :mod:`power_core.documents` runs it under a CPU-time
and memory limit and kills it at its deadline, so no PDF can keep the server busy."""

from __future__ import annotations

import io
import json
import sys


def read(data: bytes, max_pages: int, max_stream_bytes: int) -> dict[str, object]:
    from pypdf import PdfReader, overwrite_configuration
    from pypdf.errors import LimitReachedError

    overwrite_configuration(
        zlib_maximum_output_length=max_stream_bytes,
        lzw_maximum_output_length=max_stream_bytes,
        run_length_maximum_output_length=max_stream_bytes,
        array_based_stream_maximum_output_length=max_stream_bytes,
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return {"refused": "password"}
        count = len(reader.pages)
        if count > max_pages:
            return {"refused": "pages", "count": count}
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except LimitReachedError as exc:
        return {"refused": "limit", "why": str(exc)[:200]}
    except Exception as exc:  # pypdf's many errors on a damaged or foreign file
        return {"refused": "damaged", "why": type(exc).__name__}
    return {"pages": pages, "count": count}


def limit_self(cpu_seconds: int, memory_bytes: int) -> None:
    """Hold this process to ``cpu_seconds`` of CPU time (then the kernel ends it) and to
    ``memory_bytes`` of address space, where the platform can."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: the parent's deadline still holds
        return
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def main() -> None:
    max_pages, max_stream_bytes, cpu_seconds, memory_bytes = (int(a) for a in sys.argv[1:5])
    limit_self(cpu_seconds, memory_bytes)
    answer = read(sys.stdin.buffer.read(), max_pages, max_stream_bytes)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
