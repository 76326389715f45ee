"""Streamed answers wrapped at word boundaries in the terminal, as ``ollama run`` wraps them."""

from __future__ import annotations

import shutil
import sys
import unicodedata
from collections.abc import Callable

#: columns left free at the right edge, as Ollama leaves them
EDGE = 5
#: narrower terminals are not wrapped
NARROWEST = 10


def terminal_width() -> int | None:
    """The columns of the terminal the answer is written to, or ``None`` when it is not a
    terminal (a file, a pipe: nothing to wrap for)."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


class WordWrapper:
    """Writes streamed text so that no word crosses the right edge: a word that would is
    moved to the next line whole. A word is held until it ends (a space, a line's end, or
    :meth:`finish`), so each is written once; spaces and line breaks pass at once. A wide
    character (Chinese, Japanese: two columns) is a word of its own, as text without
    spaces breaks there, and a word as long as a line is written as it comes."""

    def __init__(self, write: Callable[[str], None], columns: int) -> None:
        self._write = write
        self._columns = columns
        self._width = columns - EDGE
        self._column = 0
        self._word = ""

    def feed(self, text: str) -> None:
        """Take the next piece of the answer."""
        for char in text:
            if char == "\n":
                self._end_word()
                self._write("\n")
                self._column = 0
            elif char.isspace():
                self._end_word()
                if self._column < self._width:  # a space at the edge would start the line
                    self._write(char)
                    self._column += 1
            elif unicodedata.east_asian_width(char) in "WF":
                self._end_word()
                self._place(char, 2)
            else:
                self._word += char
                if len(self._word) >= self._width:  # it fits no line: nothing to wait for
                    self._end_word()

    def finish(self) -> None:
        """Write the word still held (the text ended, or something else is written next)."""
        self._end_word()

    def _end_word(self) -> None:
        word, self._word = self._word, ""
        if word:
            self._place(word, len(word))

    def _place(self, word: str, width: int) -> None:
        if self._column and self._column + width > self._width:
            self._write("\n")
            self._column = 0
        self._write(word)
        self._column += width
        if self._column >= self._columns:  # past the terminal's own edge, which wrapped it
            self._column %= self._columns


def wrapped_writer(
    write: Callable[[str], None], columns: int | None
) -> tuple[Callable[[str], None], Callable[[], None]]:
    """``(feed, finish)`` writing through a :class:`WordWrapper` when ``columns`` is a
    terminal's width worth wrapping for, else straight to ``write``."""
    if columns is None or columns < NARROWEST:
        return write, lambda: None
    wrapper = WordWrapper(write, columns)
    return wrapper.feed, wrapper.finish
