"""Writing a blob's bytes so that a model mapped from them computes at full speed.

A blob is usually loaded right after it is written (``pull`` then ``run``), so llama.cpp
maps the very pages the write left in the page cache. The kernel caches a larger write in
larger folios, and on this project's machine (Linux 6.18, ext4, a 2-core VM) prompts
decoded markedly slower from weights cached that way: a 9-token prompt of SmolLM2-135M
took 45.0 ms from a copy written in 1 MiB writes, 41.3-41.6 ms in 256 or 128 KiB writes,
38.9 ms in 64 KiB writes, against 38.3-38.8 ms from the original file in the same runs
(medians of 18, interleaved, ad hoc; one token at a time decoded at the same speed).
So every blob is written in slices of at most :data:`WRITE_SLICE` bytes, which costs
about 2 ms more per 100 MB here than 1 MiB writes.
"""

from __future__ import annotations

from typing import IO

#: the most bytes one ``write`` call hands to the kernel
WRITE_SLICE = 64 * 1024


def write_all(handle: IO[bytes], data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` in slices of at most :data:`WRITE_SLICE` bytes; an unbuffered
    file may take less than it is given (a signal, a nearly full disk): the rest follows."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view[:WRITE_SLICE]) :]
