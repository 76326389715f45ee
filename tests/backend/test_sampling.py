"""Sampler chains: the cheaper chain the backend builds picks exactly what llama.cpp's would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np
import pytest

from power_backend_llamacpp.backend import _init_llama_cpp
from power_backend_llamacpp.sampling import SamplerChain, _Candidates
from power_backend_llamacpp.vocab import Vocabulary
from power_core.types import SamplingOptions

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def vocab(model_path: Path) -> Iterator[Vocabulary]:
    _init_llama_cpp()
    params = lc.llama_model_default_params()
    params.vocab_only = True
    model = lc.llama_model_load_from_file(str(model_path).encode(), params)
    yield Vocabulary(model)
    lc.llama_model_free(model)


def llama_cpp_order(n_vocab: int, o: SamplingOptions, seed: int, history: list[int]) -> Any:
    """The chain in llama.cpp's own order: penalties over the whole vocabulary first."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    penalties = lc.llama_sampler_init_penalties(
        n_vocab, o.repeat_last_n, o.repeat_penalty, o.frequency_penalty, o.presence_penalty
    )
    lc.llama_sampler_chain_add(chain, penalties)
    for token in history[-o.repeat_last_n :]:
        lc.llama_sampler_accept(penalties, token)
    if o.temperature <= 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return chain
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(o.top_k))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(o.top_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(o.temperature))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
    return chain


@pytest.mark.parametrize(
    "options",
    [
        SamplingOptions(temperature=0.8, top_k=40, top_p=0.9, repeat_penalty=1.3, seed=3),
        SamplingOptions(temperature=1.0, top_k=5, top_p=1.0, repeat_penalty=1.1, seed=4),
        SamplingOptions(
            temperature=0.7, top_k=20, presence_penalty=1.5, frequency_penalty=0.5, seed=5
        ),
        SamplingOptions(temperature=0.0, repeat_penalty=1.5),
    ],
)
def test_prefiltered_penalties_choose_like_llama_cpp(
    vocab: Vocabulary, options: SamplingOptions
) -> None:
    rng = np.random.default_rng(0)
    history = [int(t) for t in rng.integers(0, 200, size=100)]
    ours = SamplerChain(vocab, options, seed=options.seed or 0, grammar=None, history=history)
    reference = llama_cpp_order(vocab.n_vocab, options, options.seed or 0, history)
    a, b = _Candidates(vocab.n_vocab), _Candidates(vocab.n_vocab)
    try:
        for _ in range(300):
            logits = rng.normal(0.0, 3.0, size=vocab.n_vocab).astype(np.float32)
            # make the penalised tokens strong candidates, so the penalties decide
            logits[history[-20:]] += 6.0
            expected = b.choose(reference, logits)
            assert a.choose(ours.handle, logits) == expected
            lc.llama_sampler_accept(reference, expected)
            lc.llama_sampler_accept(ours.handle, expected)
    finally:
        ours.free()
        lc.llama_sampler_free(reference)


def test_top_p_of_zero_keeps_the_likeliest_token_alone(vocab: Vocabulary) -> None:
    # OpenAI's and llama.cpp's reading: no probability mass beyond the first token
    options = SamplingOptions(temperature=1.0, top_k=0, top_p=0.0, seed=6)
    chain = SamplerChain(vocab, options, seed=6, grammar=None, history=[])
    candidates = _Candidates(vocab.n_vocab)
    rng = np.random.default_rng(1)
    try:
        for _ in range(50):
            logits = rng.normal(0.0, 0.5, size=vocab.n_vocab).astype(np.float32)
            assert candidates.choose(chain.handle, logits) == int(logits.argmax())
    finally:
        chain.free()
