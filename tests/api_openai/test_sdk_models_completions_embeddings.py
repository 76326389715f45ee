"""Models, legacy completions and embeddings through the official ``openai`` SDK."""

from __future__ import annotations

import math

import openai
import pytest
import requests
from openai import OpenAI

from api_openai.wire_reading import MODEL

pytestmark = pytest.mark.model


# ------------------------------------------------------------------------------- models
def test_models_list_and_retrieve(client: OpenAI) -> None:
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids
    listed = next(m for m in models.data if m.id == MODEL)
    assert listed.object == "model"
    assert listed.owned_by == "library"
    assert listed.created > 0
    retrieved = client.models.retrieve(MODEL)
    assert retrieved == listed


def test_retrieve_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model:7b")
    with pytest.raises(openai.NotFoundError):  # not even a valid name
        client.models.retrieve("bad..name")


def test_a_model_is_deleted_as_openai_deletes_one(client: OpenAI, v1: str) -> None:
    # a copy of the test model (the same blobs), made through Ollama's API
    base = v1.removesuffix("/v1")
    copied = requests.post(
        base + "/api/copy", json={"source": MODEL, "destination": "doomed:copy"}, timeout=60
    )
    assert copied.status_code == 200
    deleted = client.models.delete("doomed:copy")
    assert (deleted.id, deleted.object, deleted.deleted) == ("doomed:copy", "model", True)
    assert "doomed:copy" not in [m.id for m in client.models.list()]
    assert client.models.retrieve(MODEL).id == MODEL  # its blobs stay: the model uses them
    with pytest.raises(openai.NotFoundError):
        client.models.delete("doomed:copy")


# ------------------------------------------------------------------------------- completions
def test_completion_of_a_string_prompt(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=3, temperature=0
    )
    assert reply.id.startswith("cmpl-")
    assert reply.object == "text_completion"
    assert reply.model == MODEL
    [choice] = reply.choices
    assert choice.index == 0 and choice.text
    assert choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_default_max_tokens_is_openais_sixteen(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL,
        prompt="Once upon a time",
        temperature=0,
        extra_body={"logit_bias": {"0": -100, "2": -100}},
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 16
    assert reply.choices[0].finish_reason == "length"


def test_list_of_prompts_gives_one_choice_each_with_n(client: OpenAI) -> None:
    prompts = ["The sky is", "Two plus two is"]
    reply = client.completions.create(model=MODEL, prompt=prompts, max_tokens=3, temperature=0, n=2)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    singles = [
        client.completions.create(model=MODEL, prompt=p, max_tokens=3, temperature=0)
        .choices[0]
        .text
        for p in prompts
    ]
    # choice p*n+i belongs to prompt p; greedy choices of one prompt agree
    assert [c.text for c in reply.choices] == [singles[0], singles[0], singles[1], singles[1]]
    assert reply.usage is not None and reply.usage.completion_tokens == 12


def test_echo_prepends_the_prompt(client: OpenAI) -> None:
    plain = client.completions.create(
        model=MODEL, prompt="Hello, my name is", max_tokens=3, temperature=0
    )
    echoed = client.completions.create(
        model=MODEL, prompt="Hello, my name is", max_tokens=3, temperature=0, echo=True
    )
    assert echoed.choices[0].text == "Hello, my name is" + plain.choices[0].text


def test_streamed_completion_with_usage_and_logprobs(client: OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt=["Red, green and", "One, two,"],
            max_tokens=3,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            logprobs=2,
        )
    )
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 6
    texts = {0: "", 1: ""}
    finished = {}
    for chunk in body:
        [choice] = chunk.choices
        texts[choice.index] += choice.text
        if choice.logprobs is not None and choice.logprobs.tokens:
            assert len(choice.logprobs.top_logprobs or []) == len(choice.logprobs.tokens)
        if choice.finish_reason:
            finished[choice.index] = choice.finish_reason
    assert finished == {0: "length", 1: "length"}
    plain = client.completions.create(model=MODEL, prompt="One, two,", max_tokens=3, temperature=0)
    assert texts[1] == plain.choices[0].text


def test_completion_logprobs_line_up_with_text(client: OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=4, temperature=0, logprobs=3
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.text_offset
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert logprobs.text_offset[0] == 0
    assert all(len(top) == 3 for top in logprobs.top_logprobs or [])


def test_completion_logprobs_of_tokens_that_split_a_character(client: OpenAI) -> None:
    # SmolLM2 writes a Chinese character in several tokens: each is named by its bytes, as
    # OpenAI names one, offsets count whole characters, and no alternative hides another
    prompt = "<|im_start|>user\nSay hello in Chinese characters.<|im_end|>\n<|im_start|>assistant\n"
    reply = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=8, temperature=0, logprobs=3
    )
    text = reply.choices[0].text
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.text_offset
    partial = [token for token in logprobs.tokens if token.startswith("bytes:")]
    assert partial and "\ufffd" not in "".join(logprobs.tokens)
    assert all(len(top) == 3 for top in logprobs.top_logprobs or [])
    rebuilt = b"".join(
        bytes(int(h, 16) for h in t[len("bytes:\\x") :].split("\\x"))
        if t.startswith("bytes:")
        else t.encode()
        for t in logprobs.tokens
    )
    assert rebuilt.decode("utf-8", "ignore") == text
    offsets = logprobs.text_offset
    assert offsets == sorted(offsets) and offsets[-1] < len(text)
    # a token completing a character starts where that character does
    for token, offset in zip(logprobs.tokens, offsets, strict=True):
        if not token.startswith("bytes:") and token:
            assert text[offset:].startswith(token)


def test_suffix_needs_a_fill_in_the_middle_model(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=MODEL, prompt="def add(a, b):", suffix="return c")
    assert caught.value.param == "suffix"


def test_best_of_above_n_is_refused(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=MODEL, prompt="Hi", best_of=3)
    assert caught.value.param == "best_of"


# ------------------------------------------------------------------------------- embeddings
def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_embeddings_default_base64_encoding(client: OpenAI) -> None:
    # the SDK asks for base64 and decodes it itself
    result = client.embeddings.create(model=MODEL, input=["hello world", "goodbye"])
    assert result.object == "list"
    assert result.model == MODEL
    assert [d.index for d in result.data] == [0, 1]
    first = result.data[0].embedding
    assert len(first) == 576  # SmolLM2-135M's hidden size
    assert _norm(first) == pytest.approx(1.0, abs=1e-4)
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0

    floats = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(first, abs=1e-6)


def test_embeddings_of_token_arrays(client: OpenAI, token_id) -> None:  # type: ignore[no-untyped-def]
    tokens = [token_id("Hello"), token_id(" world")]
    by_tokens = client.embeddings.create(model=MODEL, input=[tokens], encoding_format="float")
    assert by_tokens.usage.prompt_tokens == 2
    assert _norm(by_tokens.data[0].embedding) == pytest.approx(1.0, abs=1e-4)


def test_embeddings_dimensions_truncate_and_renormalise(client: OpenAI) -> None:
    full = (
        client.embeddings.create(model=MODEL, input="the quick brown fox", encoding_format="float")
        .data[0]
        .embedding
    )
    short = (
        client.embeddings.create(model=MODEL, input="the quick brown fox", dimensions=32)
        .data[0]
        .embedding
    )
    assert len(short) == 32
    assert _norm(short) == pytest.approx(1.0, abs=1e-4)
    scale = _norm(full[:32])
    assert short == pytest.approx([x / scale for x in full[:32]], abs=1e-5)
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input="x", dimensions=577)
    assert caught.value.param == "dimensions"


@pytest.mark.parametrize(
    ("value", "param"),
    [("", "input"), ([], "input"), ([["a"]], "input")],
)
def test_bad_embedding_input_is_a_bad_request(client: OpenAI, value: object, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=MODEL, input=value)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_embeddings_of_unknown_model_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nothing-here", input="hi")
