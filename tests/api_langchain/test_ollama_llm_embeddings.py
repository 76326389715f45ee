"""``OllamaLLM`` and ``OllamaEmbeddings`` from ``langchain-ollama``, unchanged, against A3S
Power's ``/api/generate`` and ``/api/embed`` and the real SmolLM2 model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_ollama import OllamaEmbeddings, OllamaLLM

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


def llm(url: str, **settings: Any) -> OllamaLLM:
    """A greedy ``OllamaLLM`` that stops after :data:`LIMIT` tokens."""
    settings = {"temperature": 0, "num_predict": LIMIT, **settings}
    return OllamaLLM(model=MODEL, base_url=url, client_kwargs={"timeout": 300}, **settings)


def embeddings(url: str) -> OllamaEmbeddings:
    return OllamaEmbeddings(model=MODEL, base_url=url, client_kwargs={"timeout": 300})


def test_raw_prompt_is_continued(ollama_url: str) -> None:
    """``raw=True`` is passed on to ``/api/generate``: the prompt goes in without a template."""
    model = llm(ollama_url)
    assert model.invoke(COUNT.start, raw=True) == COUNT.then
    [[generation]] = model.generate([COUNT.start], raw=True).generations
    assert generation.text == COUNT.then
    info = generation.generation_info
    assert info is not None
    assert info["done_reason"] == "length"
    assert info["eval_count"] == LIMIT
    assert 0 < info["prompt_eval_count"] < 40


def test_prompt_goes_through_the_chat_template_by_default(ollama_url: str) -> None:
    [[raw]] = llm(ollama_url).generate([COUNT.start], raw=True).generations
    [[templated]] = llm(ollama_url).generate([COUNT.start]).generations
    raw_info, templated_info = raw.generation_info, templated.generation_info
    assert raw_info is not None and templated_info is not None
    assert templated.text
    assert 0 < templated_info["eval_count"] <= LIMIT
    # the template adds SmolLM2's system prompt and the role markers around the same text
    assert templated_info["prompt_eval_count"] > raw_info["prompt_eval_count"] + 10


def test_stream_yields_the_text_token_by_token(ollama_url: str) -> None:
    chunks = list(llm(ollama_url).stream(COUNT.start, raw=True))
    texts = [chunk for chunk in chunks if chunk]
    assert len(texts) == LIMIT, texts
    assert "".join(texts) == COUNT.then


def test_async_invoke_and_stream(ollama_url: str) -> None:
    async def ask() -> tuple[str, list[str]]:
        model = llm(ollama_url)  # a fresh async client for this event loop
        text = await model.ainvoke(COUNT.start, raw=True)
        chunks = [chunk async for chunk in model.astream(COUNT_ON.start, raw=True)]
        return text, chunks

    text, chunks = asyncio.run(ask())
    assert text == COUNT.then
    assert len([chunk for chunk in chunks if chunk]) == LIMIT
    assert "".join(chunks) == COUNT_ON.then


def test_batch_answers_each_prompt(ollama_url: str) -> None:
    texts = llm(ollama_url).batch([COUNT.start, COUNT_ON.start], raw=True)
    assert texts == [COUNT.then, COUNT_ON.then]


def test_embeddings_of_documents_and_queries(ollama_url: str) -> None:
    model = embeddings(ollama_url)
    cat, kitten, markets = model.embed_documents([CAT, KITTEN, MARKETS])
    assert_unit_vectors([cat, kitten, markets], 3)
    # measured 0.79 and 0.93: the nearer meaning is the nearer vector
    assert cosine(cat, markets) < 0.9, "two different texts, two different vectors"
    assert cosine(cat, kitten) > cosine(cat, markets) + 0.05
    query = model.embed_query(CAT)
    assert_unit_vectors([query], 1)
    assert query == pytest.approx(cat, abs=1e-5)


def test_async_embeddings(ollama_url: str) -> None:
    async def embed() -> list[list[float]]:
        model = embeddings(ollama_url)  # a fresh async client for this event loop
        return [*await model.aembed_documents([CAT, MARKETS]), await model.aembed_query(CAT)]

    cat, markets, query = asyncio.run(embed())
    assert_unit_vectors([cat, markets, query], 3)
    assert cosine(cat, markets) < 0.9
    assert query == pytest.approx(cat, abs=1e-5)
