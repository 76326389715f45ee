"""Progress of pulls and creates on the terminal: a live bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import time

from cleo.formatters.formatter import Formatter
from cleo.io.io import IO
from cleo.io.outputs.stream_output import StreamOutput

from power_core.cli.format import human_size
from power_core.sources import PullProgress

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1


def _is_terminal(io: IO) -> bool:
    output = io.output
    return isinstance(output, StreamOutput) and output.stream.isatty()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ProgressPrinter:
    """A ``progress`` callback for ``library.pull``/``create`` that prints as Ollama does.

    On a terminal, byte progress redraws one line with a bar, bytes, rate and ETA; on a
    pipe or file every status prints once, and byte progress prints at each tenth.
    """

    def __init__(self, io: IO, *, terminal: bool | None = None) -> None:
        self._io = io
        self._terminal = _is_terminal(io) if terminal is None else terminal
        self._status: str | None = None
        self._started = time.monotonic()
        self._first_completed = 0
        self._last_draw = 0.0
        self._last_tenth = -1
        self._open_line = False

    def __call__(self, progress: PullProgress) -> None:
        if progress.status != self._status:
            self._end_line()
            self._status = progress.status
            self._started = time.monotonic()
            self._first_completed = progress.completed or 0
            self._last_tenth = -1
            self._last_draw = 0.0
            if progress.completed is None:
                self._io.write_line(Formatter.escape(progress.status))
                return
        if progress.completed is None:
            return
        if self._terminal:
            self._draw(progress)
        else:
            self._plain(progress)

    def _plain(self, progress: PullProgress) -> None:
        total, done = progress.total, progress.completed or 0
        if not total:
            return
        tenth = min(10, done * 10 // total)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            line = f"{progress.status} {tenth * 10}% ({human_size(done)}/{human_size(total)})"
            self._io.write_line(Formatter.escape(line))

    def _draw(self, progress: PullProgress) -> None:
        now = time.monotonic()
        total, done = progress.total, progress.completed or 0
        finished = total is not None and done >= total
        if not finished and now - self._last_draw < _REDRAW_SECONDS:
            return
        self._last_draw = now
        elapsed = max(now - self._started, 1e-6)
        rate = (done - self._first_completed) / elapsed
        parts = [progress.status]
        if total:
            fraction = min(1.0, done / total)
            filled = int(fraction * _BAR_WIDTH)
            bar = "█" * filled + " " * (_BAR_WIDTH - filled)
            parts.append(
                f"{int(fraction * 100):3d}% ▕{bar}▏ {human_size(done)}/{human_size(total)}"
            )
        else:
            parts.append(human_size(done))
        if rate > 0:
            parts.append(f"{human_size(int(rate))}/s")
            if total and not finished:
                parts.append(_duration((total - done) / rate))
        self._io.write("\r" + Formatter.escape("  ".join(parts)) + "\x1b[K")
        self._open_line = True

    def _end_line(self) -> None:
        if self._open_line:
            self._io.write_line("")
            self._open_line = False

    def finish(self) -> None:
        """End a redrawn line (call when the operation ends, even on error)."""
        self._end_line()
