"""Tokens and text for one loaded model: tokenizing, token pieces, special tokens."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from collections.abc import Iterator
from typing import Any

import llama_cpp as lc

from power_core.concurrency import NativeWorkers, allocate_native_lock, unpatched
from power_core.errors import BackendUnavailable, InvalidRequest

#: texts longer than this are tokenized on another OS thread: llama.cpp takes about a
#: quarter of a second a MiB here, which on the server's thread would hold up every other
#: request meanwhile
OFF_THREAD_BYTES = 64 << 10
#: the threads that do it, as many as the cores: more long prompts at once wait their turn
_TOKENIZERS = NativeWorkers(os.cpu_count() or 1, "a3s-power-tokenize")


class Vocabulary:
    """A model's vocabulary, safe to use from any thread (llama.cpp's vocab is read-only).

    Token pieces are cached as ``bytes`` on first use so the per-token path of generation
    is a list lookup rather than a native call.
    """

    def __init__(self, model: int) -> None:
        self._vocab = lc.llama_model_get_vocab(model)
        # tokenizing runs on callers' threads while the engine's may free the model:
        # the model waits for the tokenizings under way (see close)
        self._users = 0
        self._closed = False
        self._users_lock = allocate_native_lock()
        self.n_vocab: int = lc.llama_vocab_n_tokens(self._vocab)
        self.bos: int = lc.llama_vocab_bos(self._vocab)
        self.adds_bos: bool = bool(lc.llama_vocab_get_add_bos(self._vocab))
        self.fim_prefix: int = lc.llama_vocab_fim_pre(self._vocab)
        self.fim_suffix: int = lc.llama_vocab_fim_suf(self._vocab)
        self.fim_middle: int = lc.llama_vocab_fim_mid(self._vocab)
        self._pieces: list[bytes | None] = [None] * self.n_vocab
        # 0 = not looked up yet, 1 = ends generation, 2 = ordinary
        self._eog = bytearray(self.n_vocab)

    @property
    def handle(self) -> Any:
        """The native ``llama_vocab *`` (for grammar samplers)."""
        return self._vocab

    @property
    def supports_fim(self) -> bool:
        return min(self.fim_prefix, self.fim_suffix, self.fim_middle) >= 0

    @functools.cached_property
    def longest_token_bytes(self) -> int:
        """The most bytes of text one token stands for (its stored text, which is never
        shorter: byte-level and SentencePiece vocabularies spell a space in two or three
        bytes), so that a text of ``n`` bytes has at least ``n / longest_token_bytes``
        tokens. Read once, on first use (17 ms for 49,152 tokens)."""
        texts = (lc.llama_vocab_get_text(self._vocab, token) for token in range(self.n_vocab))
        return max((len(text) for text in texts if text), default=1)

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS/EOS as the model is configured to."""
        data = text.encode("utf-8")
        if len(data) > OFF_THREAD_BYTES:
            return _TOKENIZERS.run(lambda: self._tokenized_in_use(data, add_special, parse_special))
        return self._tokenized_in_use(data, add_special, parse_special)

    def close(self) -> None:
        """Wait for the tokenizings under way and refuse new ones: the model that holds
        this vocabulary is about to be freed (a long prompt's tokenizing, on a thread of
        its own, read freed memory and crashed the process at a shutdown)."""
        sleep = unpatched("time", "sleep")  # on the engine's OS thread, never a greenlet's
        with self._users_lock:
            self._closed = True
        while True:
            with self._users_lock:
                if self._users == 0:
                    return
            sleep(0.005)

    def _tokenized_in_use(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        with self._in_use():
            return self._tokenized(data, add_special, parse_special)

    @contextlib.contextmanager
    def _in_use(self) -> Iterator[None]:
        """Hold the model's vocabulary for a call made from outside the engine's thread."""
        with self._users_lock:
            if self._closed:
                raise BackendUnavailable("the model was unloaded while the prompt was read")
            self._users += 1
        try:
            yield
        finally:
            with self._users_lock:
                self._users -= 1

    def _tokenized(self, data: bytes, add_special: bool, parse_special: bool) -> list[int]:
        capacity = len(data) + 8
        buf = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(
            self._vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:  # the buffer was too small; -n is the size needed
            capacity = -n
            buf = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(
                self._vocab, data, len(data), buf, capacity, add_special, parse_special
            )
            if n < 0:
                raise InvalidRequest("the text could not be tokenized")
        return buf[:n]

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens`` with special tokens rendered, so tokenize/detokenize round-trip."""
        self.check_tokens(tokens)
        with self._in_use():
            return self._detokenized(tokens)

    def _detokenized(self, tokens: list[int]) -> str:
        arr = (lc.llama_token * len(tokens))(*tokens)
        capacity = len(tokens) * 8 + 16
        buf = ctypes.create_string_buffer(capacity)
        n = lc.llama_detokenize(self._vocab, arr, len(tokens), buf, capacity, False, True)
        if n < 0:
            capacity = -n
            buf = ctypes.create_string_buffer(capacity)
            n = lc.llama_detokenize(self._vocab, arr, len(tokens), buf, capacity, False, True)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def check_tokens(self, tokens: list[int], param: str = "prompt") -> None:
        """Raise :class:`InvalidRequest` if any id is outside the vocabulary."""
        n_vocab = self.n_vocab
        for token in tokens:
            if not 0 <= token < n_vocab:
                raise InvalidRequest(
                    f"token id {token} is outside the vocabulary (0..{n_vocab - 1})", param=param
                )

    def piece(self, token: int) -> bytes:
        """The bytes a generated token stands for (special tokens render as nothing)."""
        piece = self._pieces[token]
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = lc.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = lc.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            piece = buf.raw[:n]
            self._pieces[token] = piece
        return piece

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ...)."""
        flag = self._eog[token]
        if flag == 0:
            flag = 1 if lc.llama_vocab_is_eog(self._vocab, token) else 2
            self._eog[token] = flag
        return flag == 1
