"""Grammar-constrained JSON, log-probabilities, several choices, logit bias, fill-in-the-middle."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_core.engine import FreeSpan
from power_core.errors import InvalidRequest, UnsupportedFeature
from power_core.types import ChoiceDone, SamplingOptions, TextDelta
from reasoning_shots import ANSWER_SCHEMA, REASONING_SHOTS

from .conftest import chat, done, run, text

pytestmark = pytest.mark.model

PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer"},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
}


def test_json_mode_output_parses(engine: LlamaCppEngine) -> None:
    prompt = chat("Describe a cat named Tom, aged 3, as a JSON object.")
    events = run(engine, prompt, max_tokens=200, json_mode=True)
    assert done(events).reason == "stop"
    assert isinstance(json.loads(text(events)), dict)


def test_json_schema_output_validates(engine: LlamaCppEngine) -> None:
    prompt = chat("Give me a person with a name, an age and some hobbies as JSON.")
    events = run(engine, prompt, max_tokens=300, json_schema=PERSON_SCHEMA)
    assert done(events).reason == "stop"
    jsonschema.validate(json.loads(text(events)), PERSON_SCHEMA)


def test_json_schema_holds_with_sampling_too(engine: LlamaCppEngine) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    sampling = SamplingOptions(temperature=1.2, seed=5)
    events = run(
        engine, chat("Is water wet?"), sampling=sampling, max_tokens=60, json_schema=schema
    )
    jsonschema.validate(json.loads(text(events)), schema)


def test_a_model_reasons_freely_before_its_constrained_answer(engine: LlamaCppEngine) -> None:
    prompt = REASONING_SHOTS + chat("Name a fruit.") + "<think>\n"
    span = FreeSpan("<think>", "</think>", opened=True)
    events = run(engine, prompt, max_tokens=80, json_schema=ANSWER_SCHEMA, free_span=span)
    assert done(events).reason == "stop"
    reasoning, closed, answer = text(events).partition("</think>")
    assert closed and "fruit" in reasoning  # the reasoning is the model's own words
    jsonschema.validate(json.loads(answer), ANSWER_SCHEMA)
    # an answer that does not open with the span is constrained from its first token
    opened_later = FreeSpan("<think>", "</think>", opened=False)
    events = run(
        engine,
        chat("Name a fruit."),
        max_tokens=80,
        json_schema=ANSWER_SCHEMA,
        free_span=opened_later,
    )
    jsonschema.validate(json.loads(text(events)), ANSWER_SCHEMA)


def test_unusable_schema_is_an_invalid_request(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest):
        run(engine, "x", max_tokens=4, json_schema={"type": "no-such-type"})
    assert engine.active_jobs() == 0


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 30000},  # overflowed llama.cpp's stack: the process died
        {"type": "string", "pattern": "^c{0,30000}$"},
        {"type": "array", "items": {"type": "integer"}, "maxItems": 30000},
    ],
)
def test_a_schema_too_deep_for_the_grammar_is_an_invalid_request(
    engine: LlamaCppEngine, schema: dict[str, object]
) -> None:
    with pytest.raises(InvalidRequest, match="at most 1000 between"):
        run(engine, "x", max_tokens=4, json_schema=schema)
    events = run(engine, "x", max_tokens=4, json_schema={"type": "string", "maxLength": 1000})
    assert done(events).reason in ("stop", "length")


def test_logprobs_shape(engine: LlamaCppEngine) -> None:
    events = run(engine, chat("Name a fruit."), max_tokens=8, logprobs=3)
    entries = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
    assert len(entries) == done(events).usage.completion_tokens
    for entry in entries:
        assert entry.logprob <= 0.0
        assert len(entry.top) == 3
        assert [lp for _, lp in entry.top] == sorted((lp for _, lp in entry.top), reverse=True)
        # greedy: the chosen token is the most likely one
        assert entry.top[0][0] == entry.token
        assert entry.logprob == pytest.approx(entry.top[0][1], abs=1e-5)
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token
    assert "".join(e.token for e in entries) == text(events)


def test_logprobs_zero_gives_chosen_tokens_only(engine: LlamaCppEngine) -> None:
    events = run(engine, chat("Name a fruit."), max_tokens=6, logprobs=0)
    entries = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
    assert entries and all(entry.top == [] for entry in entries)
    assert all(math.isfinite(entry.logprob) for entry in entries)


def test_no_logprobs_unless_asked(engine: LlamaCppEngine) -> None:
    events = run(engine, chat("Name a fruit."), max_tokens=6)
    assert all(e.logprobs == [] for e in events if isinstance(e, TextDelta))


def test_two_choices_share_the_prompt_and_sample_independently(engine: LlamaCppEngine) -> None:
    sampling = SamplingOptions(temperature=1.0, top_k=0, top_p=1.0, seed=11)
    prompt = chat("Invent a name for a pet.")
    events = run(engine, prompt, sampling=sampling, max_tokens=16, n=2)
    finished = {e.choice: e for e in events if isinstance(e, ChoiceDone)}
    assert set(finished) == {0, 1}
    usage = done(events).usage
    assert usage.prompt_tokens == len(engine.tokenize(prompt, add_bos=True))
    assert usage.completion_tokens == sum(e.completion_tokens for e in finished.values())
    first, second = text(events, 0), text(events, 1)
    assert first and second and first != second
    # each choice is what a single job with that choice's seed produces
    alone = SamplingOptions(temperature=1.0, top_k=0, top_p=1.0, seed=12)
    assert text(run(engine, prompt, sampling=alone, max_tokens=16)) == second


def test_greedy_choices_agree(engine: LlamaCppEngine) -> None:
    events = run(engine, "The capital of Italy is", max_tokens=8, n=3)
    assert text(events, 0) == text(events, 1) == text(events, 2) != ""


def test_n_larger_than_parallel_sequences_is_rejected(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest):
        run(engine, "Hi", max_tokens=2, n=5)


def test_logit_bias_bans_and_forces(engine: LlamaCppEngine) -> None:
    prompt = "The capital of France is"
    plain = run(engine, prompt, max_tokens=1, return_context=True)
    context = done(plain).usage.context
    assert context is not None
    first = context[-1]
    banned = SamplingOptions(temperature=0.0, repeat_penalty=1.0, logit_bias={first: -100.0})
    again = run(engine, prompt, sampling=banned, max_tokens=1, return_context=True)
    assert (done(again).usage.context or [])[-1] != first
    forced_token = engine.tokenize(" banana")[0]
    forced = SamplingOptions(temperature=0.0, logit_bias={forced_token: 100.0})
    events = run(engine, prompt, sampling=forced, max_tokens=3, return_context=True)
    assert (done(events).usage.context or [])[-3:] == [forced_token] * 3


def test_logit_bias_outside_the_vocabulary(engine: LlamaCppEngine) -> None:
    sampling = SamplingOptions(temperature=0.0, logit_bias={10**9: 5.0})
    with pytest.raises(InvalidRequest):
        run(engine, "Hi", sampling=sampling, max_tokens=2)


def test_max_tokens_cuts_with_length(engine: LlamaCppEngine) -> None:
    events = run(engine, chat("Write a long essay about rivers."), max_tokens=5)
    assert done(events).reason == "length"
    assert done(events).usage.completion_tokens == 5
    nothing = run(engine, chat("Hi"), max_tokens=0)
    assert text(nothing) == "" and done(nothing).reason == "length"


def test_token_prompts_equal_text_prompts(engine: LlamaCppEngine) -> None:
    prompt = chat("Name a color.")
    tokens = engine.tokenize(prompt, add_bos=True)
    assert text(run(engine, tokens, max_tokens=8)) == text(run(engine, prompt, max_tokens=8))


def test_suffix_without_fim_tokens_is_unsupported(engine: LlamaCppEngine) -> None:
    assert engine.info.supports_fim is False
    with pytest.raises(UnsupportedFeature):
        run(engine, "def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))", max_tokens=4)
    assert engine.active_jobs() == 0
