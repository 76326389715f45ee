"""Log-probabilities of sampled tokens, computed only for sequences that ask for them."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as lc
import numpy as np

from power_backend_llamacpp.vocab import Vocabulary
from power_core.types import TokenLogprob


def token_logprob(ctx: Any, index: int, token: int, top: int, vocab: Vocabulary) -> TokenLogprob:
    """Log-softmax of batch output ``index``'s logits: the chosen token and the ``top`` best.

    Reads the raw logits row (before temperature and penalties), as OpenAI reports them.
    """
    row = lc.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(
        ctypes.cast(row, ctypes.POINTER(ctypes.c_float)), shape=(vocab.n_vocab,)
    )
    peak = float(logits.max())
    log_norm = peak + float(np.log(np.exp(logits - peak).sum()))
    piece = vocab.piece(token)
    pieces: list[bytes] = []
    alternatives: list[tuple[str, float]] = []
    if top > 0:
        k = min(top, vocab.n_vocab)
        best = np.argpartition(logits, -k)[-k:]
        best = best[np.argsort(logits[best])[::-1]]
        pieces = [vocab.piece(int(t)) for t in best]
        alternatives = [
            (_text(p), float(logits[t]) - log_norm) for p, t in zip(pieces, best, strict=True)
        ]
    return TokenLogprob(
        token=_text(piece),
        logprob=float(logits[token]) - log_norm,
        bytes=list(piece),
        top=alternatives,
        top_bytes=[list(p) for p in pieces],
    )


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")
