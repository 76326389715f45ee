"""The ``OpenAI`` completion model and ``OpenAIEmbeddings`` from ``langchain-openai``,
unchanged, against A3S Power's ``/v1/completions`` and ``/v1/embeddings`` and the real
SmolLM2 model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_ollama import OllamaEmbeddings, OllamaLLM
from langchain_openai import OpenAI, OpenAIEmbeddings
from pydantic import SecretStr

from api_langchain.cases import (
    CAT,
    COUNT,
    COUNT_ON,
    KITTEN,
    LIMIT,
    MARKETS,
    MODEL,
    assert_unit_vectors,
    cosine,
)

pytestmark = pytest.mark.model


def llm(url: str, **settings: Any) -> OpenAI:
    """A greedy ``OpenAI`` completion model that stops after :data:`LIMIT` tokens."""
    settings = {"temperature": 0, "max_tokens": LIMIT, **settings}
    return OpenAI(
        model=MODEL,
        base_url=url,
        api_key=SecretStr("unused"),
        max_retries=0,
        timeout=300,
        **settings,
    )


def embeddings(url: str) -> OpenAIEmbeddings:
    """``check_embedding_ctx_length`` would count tokens with tiktoken, whose data is
    downloaded on first use; the server takes the texts as they are."""
    return OpenAIEmbeddings(
        model=MODEL,
        base_url=url,
        api_key=SecretStr("unused"),
        max_retries=0,
        timeout=300,
        check_embedding_ctx_length=False,
    )


def test_generate_continues_the_prompt(openai_url: str, ollama_url: str) -> None:
    model = llm(openai_url)
    assert model.invoke(COUNT.start) == COUNT.then
    result = model.generate([COUNT.start])
    [[generation]] = result.generations
    assert generation.text == COUNT.then
    assert generation.generation_info is not None
    assert generation.generation_info["finish_reason"] == "length"
    assert result.llm_output is not None
    assert result.llm_output["model_name"] == MODEL
    usage = result.llm_output["token_usage"]
    assert usage["completion_tokens"] == LIMIT
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # the same prompt, sent raw to the Ollama API, is the same number of tokens
    [[raw]] = (
        OllamaLLM(model=MODEL, base_url=ollama_url, num_predict=1)
        .generate([COUNT.start], raw=True)
        .generations
    )
    assert raw.generation_info is not None
    assert usage["prompt_tokens"] == raw.generation_info["prompt_eval_count"]


def test_stream_yields_the_text_token_by_token(openai_url: str) -> None:
    chunks = list(llm(openai_url).stream(COUNT.start))
    texts = [chunk for chunk in chunks if chunk]
    assert len(texts) == LIMIT, texts
    assert "".join(texts) == COUNT.then


def test_async_invoke_and_stream(openai_url: str) -> None:
    async def ask() -> tuple[str, list[str]]:
        model = llm(openai_url)  # fresh clients for this event loop
        text = await model.ainvoke(COUNT.start)
        chunks = [chunk async for chunk in model.astream(COUNT_ON.start)]
        return text, chunks

    text, chunks = asyncio.run(ask())
    assert text == COUNT.then
    assert len([chunk for chunk in chunks if chunk]) == LIMIT
    assert "".join(chunks) == COUNT_ON.then


def test_batch_answers_each_prompt(openai_url: str) -> None:
    """LangChain sends a batch as one request with a list of prompts."""
    model = llm(openai_url)
    assert model.batch([COUNT.start, COUNT_ON.start]) == [COUNT.then, COUNT_ON.then]
    result = model.generate([COUNT.start, COUNT_ON.start])
    assert [[g.text for g in generations] for generations in result.generations] == [
        [COUNT.then],
        [COUNT_ON.then],
    ]
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["completion_tokens"] == 2 * LIMIT


def test_logprobs(openai_url: str) -> None:
    [[generation]] = llm(openai_url, logprobs=2).generate([COUNT.start]).generations
    assert generation.text == COUNT.then
    assert generation.generation_info is not None
    logprobs = generation.generation_info["logprobs"]
    tokens = logprobs["tokens"]
    assert len(tokens) == LIMIT
    assert "".join(tokens) == COUNT.then
    assert logprobs["text_offset"] == [len("".join(tokens[:n])) for n in range(LIMIT)]
    for token, logprob, top in zip(
        tokens, logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        assert len(top) == 2
        assert max(top, key=top.__getitem__) == token  # greedy: its own top choice
        assert top[token] == pytest.approx(logprob) and logprob <= 0


def test_embeddings_of_documents_and_queries(openai_url: str) -> None:
    model = embeddings(openai_url)
    cat, kitten, markets = model.embed_documents([CAT, KITTEN, MARKETS])
    assert_unit_vectors([cat, kitten, markets], 3)
    assert cosine(cat, markets) < 0.9, "two different texts, two different vectors"
    assert cosine(cat, kitten) > cosine(cat, markets) + 0.05
    query = model.embed_query(CAT)
    assert_unit_vectors([query], 1)
    assert query == pytest.approx(cat, abs=1e-5)


def test_async_embeddings(openai_url: str) -> None:
    async def embed() -> list[list[float]]:
        model = embeddings(openai_url)  # fresh clients for this event loop
        return [*await model.aembed_documents([CAT, MARKETS]), await model.aembed_query(CAT)]

    cat, markets, query = asyncio.run(embed())
    assert_unit_vectors([cat, markets, query], 3)
    assert cosine(cat, markets) < 0.9
    assert query == pytest.approx(cat, abs=1e-5)


def test_both_apis_embed_alike(openai_url: str, ollama_url: str) -> None:
    texts = [CAT, MARKETS]
    from_openai = embeddings(openai_url).embed_documents(texts)
    from_ollama = OllamaEmbeddings(model=MODEL, base_url=ollama_url).embed_documents(texts)
    for a, b in zip(from_openai, from_ollama, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
