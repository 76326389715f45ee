"""Sampler chains: the cheaper chain the backend builds picks exactly what llama.cpp's would,
and a grammar of tool calls starts where the output opens one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np
import pytest

from power_backend_llamacpp.backend import _init_llama_cpp
from power_backend_llamacpp.output_grammars import call_blocks_grammar
from power_backend_llamacpp.sampling import SamplerChain, _Candidates
from power_backend_llamacpp.vocab import Vocabulary
from power_core.chat.tools import forced_tool_call_schema
from power_core.engine import CallBlocks
from power_core.types import SamplingOptions, ToolSpec

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


CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
#: a call of get_weather, as the core asks for one in a <tool_call> block
WEATHER_CALL = forced_tool_call_schema(
    [ToolSpec("get_weather", parameters=CITY)], "required", parallel=False
)


def one_token(vocab: Vocabulary, text: str) -> int:
    (token,) = vocab.tokenize(text, add_special=False, parse_special=False)
    return token


def preferring(vocab: Vocabulary, first: int, second: int) -> Any:
    """Logits that make ``first`` the likeliest token and ``second`` the next."""
    logits = np.zeros(vocab.n_vocab, dtype=np.float32)
    logits[first], logits[second] = 10.0, 5.0
    return logits


def chain_for_calls(vocab: Vocabulary, opener: str) -> SamplerChain:
    assert WEATHER_CALL is not None
    blocks = CallBlocks(opener, "</call>", WEATHER_CALL)
    grammar = call_blocks_grammar(blocks)
    options = SamplingOptions(temperature=0.0)
    return SamplerChain(vocab, options, seed=0, grammar=grammar, history=[], call_blocks=blocks)


def test_a_call_grammar_starts_after_the_opener(vocab: Vocabulary) -> None:
    hello, brace = one_token(vocab, "Hello"), one_token(vocab, "{")
    chain = chain_for_calls(vocab, "<tool_call>")
    try:
        # free before the opener: the likeliest token, whatever it is
        assert chain.sample_row(preferring(vocab, hello, brace)) == hello
        for part in ("<", "tool", "_", "call", ">"):
            token = one_token(vocab, part)
            assert chain.sample_row(preferring(vocab, token, brace)) == token
        # after it, the grammar refuses text that is no call and takes the next best
        assert chain.sample_row(preferring(vocab, hello, brace)) == brace
    finally:
        chain.free()


def after_writing(vocab: Vocabulary, opener: str, tokens: list[int], then: list[int]) -> int:
    """The token a chain for calls opened by ``opener`` picks from logits preferring
    ``then[0]``, then ``then[1]``, once it has written ``tokens`` (each the likeliest)."""
    chain = chain_for_calls(vocab, opener)
    try:
        for token in tokens:
            assert chain.sample_row(preferring(vocab, token, then[0])) == token
        return chain.sample_row(preferring(vocab, then[0], then[1]))
    finally:
        chain.free()


def test_the_grammar_first_reads_what_the_openers_token_held_after_it(
    vocab: Vocabulary,
) -> None:
    hello, quote = one_token(vocab, "Hello"), one_token(vocab, '"')
    written = [one_token(vocab, "<"), one_token(vocab, "call"), one_token(vocab, "={")]
    # the opener "<call=" ends inside the token "={": the grammar reads its "{" first, so
    # a property's quote comes next
    assert after_writing(vocab, "<call=", written, [hello, quote]) == quote
    # the opener "<cal" leaves the "l" of "call", which no call starts with: the grammar
    # is dropped and the output goes on free, to be read as the model writes it
    assert after_writing(vocab, "<cal", written, [hello, quote]) == hello


def test_after_its_calls_the_output_may_end_after_whitespace(vocab: Vocabulary) -> None:
    # whitespace after the last closer once committed the model to another block
    eos, hello = lc.llama_vocab_eos(vocab.handle), one_token(vocab, "Hello")
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</call>\n'
    written = vocab.tokenize(call, add_special=False, parse_special=False)
    assert after_writing(vocab, "<tool_call>", written, [eos, hello]) == eos
