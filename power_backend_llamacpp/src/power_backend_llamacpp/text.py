"""Turning a choice's token pieces into visible text: UTF-8 assembly and stop strings."""

from __future__ import annotations

import codecs


class ChoiceText:
    """The text of one choice, fed one token piece at a time.

    Bytes are decoded incrementally, so a character split across tokens is held until its
    last byte arrives (never a U+FFFD for a split character), and nothing already decoded is
    decoded again. Text that could be the start of a stop string is held back until it
    either completes the stop string (then it and everything after it is dropped) or can no
    longer do so (then it is released).
    """

    __slots__ = ("_decoder", "_held", "_max_hold", "_stops", "matched")

    def __init__(self, stops: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in stops if s]
        self._max_hold = max((len(s) for s in self._stops), default=1) - 1
        self._held = ""
        #: the stop string that matched, once one has
        self.matched: str | None = None

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """Add one token's bytes; returns the text to emit now and whether a stop string matched."""
        text = self._decoder.decode(piece)
        if not self._stops:
            return text, False
        if not text:
            return "", False
        window = self._held + text
        cut = -1
        for stop in self._stops:
            found = window.find(stop)
            if found != -1 and (cut == -1 or found < cut):
                cut, self.matched = found, stop
        if cut != -1:
            self._held = ""
            return window[:cut], True
        keep = self._held_suffix(window)
        self._held = window[len(window) - keep :] if keep else ""
        return window[: len(window) - keep], False

    def _held_suffix(self, window: str) -> int:
        """Length of the longest suffix of ``window`` that begins some stop string."""
        for keep in range(min(self._max_hold, len(window)), 0, -1):
            tail = window[-keep:]
            for stop in self._stops:
                if stop.startswith(tail):
                    return keep
        return 0

    def flush(self) -> str:
        """Text held back for a stop string that can no longer match (the choice ended).

        Bytes of an incomplete character at the very end are dropped rather than shown as
        a replacement character.
        """
        held, self._held = self._held, ""
        return held
