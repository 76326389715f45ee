"""Log-probabilities in the two shapes OpenAI uses: chat's and legacy completions'."""

from __future__ import annotations

import codecs
from typing import Any

from power_core.types import TokenLogprob


def chat_token_logprobs(tokens: list[TokenLogprob]) -> list[dict[str, Any]]:
    """Chat's ``logprobs.content``: each token with its bytes and top alternatives."""
    return [
        {
            "token": item.token,
            "logprob": item.logprob,
            "bytes": list(item.bytes),
            "top_logprobs": [
                {"token": token, "logprob": logprob, "bytes": raw}
                for token, logprob, raw in item.alternatives()
            ],
        }
        for item in tokens
    ]


def chat_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """A choice's (or chunk's) ``logprobs`` object."""
    return {"content": chat_token_logprobs(tokens), "refusal": None}


class CompletionLogprobs:
    """Legacy completions' ``logprobs``: parallel lists with each token's text offset."""

    def __init__(self, offset: int) -> None:
        self.tokens: list[str] = []
        self.token_logprobs: list[float] = []
        self.top_logprobs: list[dict[str, float]] = []
        self.text_offset: list[int] = []
        self._offset = offset
        # the text's characters come whole: a token holding part of one adds nothing yet
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, tokens: list[TokenLogprob]) -> dict[str, Any]:
        """Append ``tokens``; returns the object for just these (a streamed chunk's)."""
        start = len(self.tokens)
        for item in tokens:
            self.tokens.append(legacy_token(item.token, item.bytes))
            self.token_logprobs.append(item.logprob)
            self.top_logprobs.append(
                {legacy_token(text, raw): logprob for text, logprob, raw in item.alternatives()}
            )
            self.text_offset.append(self._offset)
            self._offset += len(self._decoder.decode(bytes(item.bytes)))
        return self._json(start)

    def json(self) -> dict[str, Any]:
        """The object for every token so far."""
        return self._json(0)

    def _json(self, start: int) -> dict[str, Any]:
        return {
            "tokens": self.tokens[start:],
            "token_logprobs": self.token_logprobs[start:],
            "top_logprobs": self.top_logprobs[start:],
            "text_offset": self.text_offset[start:],
        }


def legacy_token(text: str, raw: list[int]) -> str:
    """A token as legacy completions name it: its text, or, for a token holding part of a
    character, ``bytes:`` and its bytes (``bytes:\\xe4\\xbd``), as OpenAI writes one."""
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{byte:02x}" for byte in raw)
    return text
