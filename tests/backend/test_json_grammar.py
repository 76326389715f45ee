"""JSON schemas that Pydantic and LangChain emit, as grammars: llama.cpp compiles each,
the SmolLM2 model writes under it, and what it writes is JSON that satisfies the schema.

Where the model would not wander into a defect by itself, the grammar is asked directly:
llama.cpp's own grammar sampler, on the model's vocabulary, judges a text token by token.
"""

from __future__ import annotations

import ctypes
import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

import jsonschema
import llama_cpp as lc
import pytest
from pydantic import AnyUrl, BaseModel, Field, HttpUrl

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.output_grammars import grammar_for
from power_backend_llamacpp.vocab import Vocabulary
from power_core.errors import InvalidRequest
from power_core.types import SamplingOptions

from .conftest import chat, done, run, text

pytestmark = pytest.mark.model

#: SmolLM2's token for "\n"
NEWLINE = 198


class Person(BaseModel):
    name: str
    friends: list[Person] = []


class Team(BaseModel):
    lead: Person


class Reading(BaseModel):
    data: Any


class Folder(BaseModel):
    path: Literal["C:\\temp", 'say "hi"']


@pytest.fixture(scope="module")
def vocab(model_path: Path) -> Iterator[Vocabulary]:
    params = lc.llama_model_default_params()
    params.vocab_only = True
    model = lc.llama_model_load_from_file(str(model_path).encode(), params)
    yield Vocabulary(model)
    lc.llama_model_free(model)


def accepts(vocab: Vocabulary, schema: dict[str, Any], written: str) -> bool:
    """Whether llama.cpp's grammar sampler, under ``schema``'s grammar, lets the model
    write exactly ``written`` and then stop."""
    grammar = grammar_for(False, schema)
    assert grammar is not None
    sampler = lc.llama_sampler_init_grammar(vocab.handle, grammar.encode(), b"root")
    assert sampler, "llama.cpp does not compile the grammar"
    end = lc.llama_vocab_eos(vocab.handle)
    try:
        for token in [*vocab.tokenize(written, add_special=False, parse_special=False), end]:
            one = (lc.llama_token_data * 1)(lc.llama_token_data(id=token, logit=0.0, p=0.0))
            candidates = lc.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
            lc.llama_sampler_apply(sampler, ctypes.byref(candidates))
            if math.isinf(one[0].logit):
                return False
            if token != end:
                lc.llama_sampler_accept(sampler, token)
        return True
    finally:
        lc.llama_sampler_free(sampler)


def generate(
    engine: LlamaCppEngine,
    ask: str,
    schema: dict[str, Any],
    max_tokens: int = 60,
    logit_bias: dict[int, float] | None = None,
) -> Any:
    """What the model writes for ``ask`` under ``schema``, parsed, checked against it."""
    sampling = SamplingOptions(temperature=0.0, repeat_penalty=1.0, logit_bias=logit_bias or {})
    events = run(engine, chat(ask), sampling=sampling, max_tokens=max_tokens, json_schema=schema)
    assert done(events).reason == "stop", text(events)
    value = json.loads(text(events))  # strict: a raw control character in a string fails
    jsonschema.validate(value, schema)
    return value


# (a) strings


def test_strings_hold_no_raw_control_characters_even_when_the_model_wants_one(
    engine: LlamaCppEngine,
) -> None:
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 60}},
        "required": ["text"],
    }
    # a newline weighted so that the model writes one wherever the grammar lets it
    ask = "Write a poem about the sea, as JSON."
    value = generate(engine, ask, schema, logit_bias={NEWLINE: 30.0})
    assert value["text"] and not re.search(r"[\x00-\x1f\x7f]", value["text"])


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"text": {"type": "string"}}},
        {"type": "object"},  # any object: its values' strings too
    ],
)
def test_a_string_takes_a_control_character_only_escaped(
    vocab: Vocabulary, schema: dict[str, Any]
) -> None:
    assert accepts(vocab, schema, '{"text": "a\\nb\\u0000"}')
    assert not accepts(vocab, schema, '{"text": "a\nb"}')
    assert not accepts(vocab, schema, '{"text": "a\tb"}')
    assert not accepts(vocab, schema, '{"text": "a\x7fb"}')


# (b) patterns


@pytest.mark.parametrize(
    ("ask", "pattern"),
    [
        ("Give a three digit number.", r"^\d{3}$"),
        ("Give a phone number.", r"^\(\d{3}\) \d{3}-\d{4}$"),
        ("Give a date like 12/05.", r"^\d{2}\/\d{2}$"),
        ("Give a price.", r"\$\d+\.\d{2}"),  # no anchor: taken whole, which satisfies it
        ("Give a version number.", r"v\d+\.\d+"),
        ("Give two words.", r"^\S{1,10}\s\S{1,10}$"),
        ("Give an email.", r"^[\w.+-]{1,20}@example\.com$"),
    ],
)
def test_patterns_with_escapes_constrain_the_output(
    engine: LlamaCppEngine, ask: str, pattern: str
) -> None:
    value = generate(engine, ask, {"type": "string", "pattern": pattern}, max_tokens=30)
    assert re.search(pattern, value)


def test_a_patterns_top_level_alternatives_are_each_a_whole_string(vocab: Vocabulary) -> None:
    # the converter wrote '"\"" "cat" | "dog" "\"" space': a quote on one side of each
    schema = {"type": "string", "pattern": "^cat|dog$"}
    assert accepts(vocab, schema, '"cat"') and accepts(vocab, schema, '"dog"')
    assert not accepts(vocab, schema, '"cat') and not accepts(vocab, schema, 'dog"')


def test_a_pattern_anchored_at_one_end_leaves_the_other_open(vocab: Vocabulary) -> None:
    # JSON Schema patterns match anywhere: "^https?://" is "starts with", not "is"
    starts = {"type": "string", "pattern": "^https?://"}
    assert accepts(vocab, starts, '"https://example.com/a"') and accepts(vocab, starts, '"http://"')
    assert not accepts(vocab, starts, '"ftp://example.com"')
    ends = {"type": "string", "pattern": r"\.pdf$"}
    assert accepts(vocab, ends, '"report.pdf"') and not accepts(vocab, ends, '"report.pdf.txt"')
    # with no anchor at all it is taken whole, as constrained decoding takes patterns
    whole = {"type": "string", "pattern": "@"}
    assert accepts(vocab, whole, '"@"') and not accepts(vocab, whole, '"me@example.com"')
    either = {"type": "string", "pattern": "^cat|dog$"}  # starts with cat, or ends with dog
    assert accepts(vocab, either, '"catalog"') and accepts(vocab, either, '"hotdog"')
    assert not accepts(vocab, either, '"dogma"')
    assert accepts(vocab, {"type": "string", "pattern": ""}, '"anything at all"')


def test_patterns_with_surrogates_or_past_the_size_limit_are_400s(vocab: Vocabulary) -> None:
    smile = {"type": "string", "pattern": r"^\ud83d\ude00$"}  # one character, as JSON writes it
    assert accepts(vocab, smile, '"\U0001f600"')
    for pattern, says in (
        (r"^\ud83d$", "unpaired surrogate"),
        ("^\ud800$", "unpaired surrogate"),  # a raw one, as JSON text can carry it
        ("a" * 4097, "at most 4096"),
        ("a{" * 3000, "at most 4096"),
    ):
        with pytest.raises(InvalidRequest, match=says) as caught:
            grammar_for(False, {"type": "string", "pattern": pattern})
        assert caught.value.param == "json_schema"
        assert len(caught.value.message) < 300  # a long pattern is not quoted whole


def test_a_property_named_ref_is_a_property(vocab: Vocabulary) -> None:
    schema = {"type": "object", "properties": {"$ref": {"type": "string"}}, "required": ["$ref"]}
    assert accepts(vocab, schema, '{"$ref": "x"}')


def test_what_a_pattern_matches_is_written_as_json(vocab: Vocabulary) -> None:
    anything = {"type": "string", "pattern": "^.{1,5}$"}
    assert accepts(vocab, anything, '"a-b"')
    assert not accepts(vocab, anything, '"a"b"') and not accepts(vocab, anything, '"a\tb"')
    quoted = {"type": "string", "pattern": r'^say "\w+"\\$'}
    assert accepts(vocab, quoted, r'"say \"hi\"\\"')
    assert not accepts(vocab, quoted, '"say "hi"\\"')


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        (r"^a(?=b)", "a lookahead"),
        (r"^(?<!a)b$", "a lookbehind"),
        (r"\bword\b", "a word boundary"),
        (r"^(a)\1$", "a backreference"),
        (r"^\p{L}+$", "a Unicode property escape"),
    ],
)
def test_what_a_grammar_cannot_express_is_refused_by_name(
    engine: LlamaCppEngine, pattern: str, named: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"uses {named}") as caught:
        run(engine, "x", max_tokens=4, json_schema={"type": "string", "pattern": pattern})
    assert caught.value.param == "json_schema"
    assert engine.active_jobs() == 0


# (c) references


@pytest.mark.parametrize("model", [Person, Team], ids=["ref-at-the-root", "ref-in-properties"])
def test_recursive_pydantic_models(engine: LlamaCppEngine, model: type[BaseModel]) -> None:
    value = generate(engine, "Give people and their friends, as JSON.", model.model_json_schema())
    model.model_validate(value)


def test_a_reference_outside_the_schema_is_refused_by_name(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequest, match="only references within the schema"):
        run(engine, "x", max_tokens=4, json_schema={"$ref": "https://example.com/s.json"})
    with pytest.raises(InvalidRequest, match="points at nothing"):
        run(engine, "x", max_tokens=4, json_schema={"$ref": "#/$defs/Missing"})


# (d) any value


def test_langchains_items_of_any_value(engine: LlamaCppEngine) -> None:
    # what langchain's convert_to_openai_tool writes for a list[Any] argument
    tags = {"type": "array", "items": {}, "maxItems": 3, "description": "tags"}
    schema = {"type": "object", "properties": {"tags": tags}, "required": ["tags"]}
    assert generate(engine, "Give JSON with at most three tags.", schema)["tags"]


@pytest.mark.parametrize(
    "schema",
    [{}, {"description": "anything"}, Reading.model_json_schema()["properties"]["data"]],
)
def test_a_schema_without_constraints_takes_any_value(
    vocab: Vocabulary, schema: dict[str, Any]
) -> None:
    for value in ('"text"', "42", "[1, null]", "true", '{"a": {}}'):
        assert accepts(vocab, schema, value), value


# (e) literals


def test_enum_and_const_values_are_written_exactly(vocab: Vocabulary) -> None:
    assert accepts(vocab, {"const": "x\ny"}, '"x\\ny"')
    assert not accepts(vocab, {"const": "x\ny"}, '"x\ny"')
    quoted = {"enum": ['it\'s "q"', "a\\b"]}
    assert accepts(vocab, quoted, '"it\'s \\"q\\""') and accepts(vocab, quoted, '"a\\\\b"')


@pytest.mark.parametrize(
    ("ask", "schema", "expected"),
    [
        ("Say it.", {"const": "x\ny"}, "x\ny"),
        ("Say it.", {"enum": ['it\'s "q"', "a\\b"]}, None),
        ("Pick a path.", Folder.model_json_schema(), None),
        (
            "Say hi.",
            {
                "type": "object",
                "properties": {'say "hi"\\': {"const": 1}},
                "required": ['say "hi"\\'],
            },
            {'say "hi"\\': 1},
        ),
    ],
)
def test_literals_with_quotes_backslashes_and_newlines(
    engine: LlamaCppEngine, ask: str, schema: dict[str, Any], expected: Any
) -> None:
    value = generate(engine, ask, schema, max_tokens=30)
    if expected is not None:
        assert value == expected


# (e) integer bounds and type lists


class Review(BaseModel):
    stars: int = Field(ge=1, le=5)
    helpful_votes: int = Field(gt=-3, lt=40)


@pytest.mark.parametrize(
    ("low", "high"), [(1, 5), (7, 7), (0, 100), (18, 137), (-137, -3), (-5, 5), (995, 1003)]
)
def test_an_integer_between_bounds_is_every_one_of_them_and_nothing_else(
    vocab: Vocabulary, low: int, high: int
) -> None:
    schema = {"type": "integer", "minimum": low, "maximum": high}
    tried = sorted({*range(low - 3, low + 14), *range(high - 13, high + 4), 0, -1})
    allowed = [n for n in tried if accepts(vocab, schema, str(n))]
    assert allowed == [n for n in tried if low <= n <= high]
    assert not accepts(vocab, schema, "0" + str(max(low, 1)))  # no leading zeros
    assert not accepts(vocab, schema, "-0")


def test_exclusive_fractional_and_one_sided_bounds(vocab: Vocabulary) -> None:
    def allowed(schema: dict[str, Any], tried: range) -> list[int]:
        return [n for n in tried if accepts(vocab, {"type": "integer", **schema}, str(n))]

    assert allowed({"exclusiveMinimum": 2, "exclusiveMaximum": 6}, range(0, 9)) == [3, 4, 5]
    # JSON Schema draft 4: the exclusive flag beside the bound
    draft4 = {"minimum": 2, "exclusiveMinimum": True, "maximum": 6, "exclusiveMaximum": True}
    assert allowed(draft4, range(0, 9)) == [3, 4, 5]
    assert allowed({"minimum": 1.5, "maximum": 4.5}, range(0, 7)) == [2, 3, 4]
    assert allowed({"minimum": 98}, range(95, 102)) == [98, 99, 100, 101]
    only_minimum = {"type": "integer", "minimum": 0}
    assert accepts(vocab, only_minimum, "1234567890123456")
    assert not accepts(vocab, only_minimum, "-1")
    assert accepts(vocab, {"type": "integer", "maximum": -10}, "-1234567")
    # a bound past the 16 digits the grammar writes leaves that side open
    assert accepts(vocab, {"type": "integer", "maximum": 1e300}, "42")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "integer", "minimum": 5, "maximum": 4},
            'no integer satisfies the bounds {"maximum": 4, "minimum": 5}',
        ),
        ({"type": "integer", "exclusiveMinimum": 4, "maximum": 4}, "no integer satisfies"),
        ({"type": "integer", "minimum": 1e17}, "no integer of at most 16 digits satisfies"),
        ({"type": "integer", "minimum": "1"}, "minimum must be a number, not a string"),
        ({"type": "integer", "maximum": [5]}, "maximum must be a number, not an array"),
        ({"type": [], "minimum": 1}, "a non-empty array of type names"),
        (
            {"type": "number", "minimum": 1, "exclusiveMaximum": 1},
            'no number satisfies the bounds {"exclusiveMaximum": 1, "minimum": 1}',
        ),
        ({"type": "number", "minimum": 1e17}, "no number of at most 16 digits satisfies"),
        ({"type": "number", "maximum": "1"}, "a number's maximum must be a number, not a string"),
        ({"type": "string", "maxLength": -1}, "must be a non-negative whole number"),
    ],
)
def test_integer_bounds_no_integer_meets_are_refused(
    engine: LlamaCppEngine, schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        run(engine, "x", max_tokens=4, json_schema=schema)
    assert caught.value.param == "json_schema"


def test_the_model_keeps_to_a_pydantic_models_bounds(engine: LlamaCppEngine) -> None:
    ask = "The film was great: 9 stars, and 75 people found this helpful. As JSON."
    review = Review.model_validate(generate(engine, ask, Review.model_json_schema()))
    assert 1 <= review.stars <= 5 and -3 < review.helpful_votes < 40


def within(bounds: dict[str, Any], value: Decimal) -> bool:
    """Whether ``value`` meets ``bounds``, as JSON Schema reads them (draft 4's flags too)."""

    def bound(key: str) -> Decimal:
        return Decimal(repr(bounds[key]))

    low, high = bounds.get("minimum"), bounds.get("maximum")
    low_excluded = bounds.get("exclusiveMinimum") is True
    high_excluded = bounds.get("exclusiveMaximum") is True
    checks = [
        low is None or (value > bound("minimum") if low_excluded else value >= bound("minimum")),
        high is None or (value < bound("maximum") if high_excluded else value <= bound("maximum")),
    ]
    for key, above in (("exclusiveMinimum", True), ("exclusiveMaximum", False)):
        if key in bounds and not isinstance(bounds[key], bool):
            checks.append(value > bound(key) if above else value < bound(key))
    return all(checks)


@pytest.mark.parametrize(
    "bounds",
    [
        {"minimum": 0, "maximum": 1},
        {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
        {"minimum": -2.25, "maximum": 0.5},
        {"minimum": 0.05, "exclusiveMaximum": 99.99},
        {"exclusiveMinimum": -0.001},
        {"maximum": -7.5},
        {"minimum": 3, "maximum": 3},
        {"minimum": 0.5, "exclusiveMinimum": True, "maximum": 2.25},
    ],
)
def test_a_number_between_bounds_is_every_one_of_them_and_nothing_else(
    vocab: Vocabulary, bounds: dict[str, Any]
) -> None:
    schema = {"type": "number", **bounds}
    near = {Decimal(0), *(Decimal(repr(v)) for v in bounds.values() if not isinstance(v, bool))}
    steps = [Decimal(step) for step in ("0", "0.001", "0.01", "0.1", "0.5", "1")]
    values = {value + sign * step for value in near for step in steps for sign in (1, -1)}
    written = {
        format(value.quantize(Decimal(10) ** -places), "f")
        for value in values
        for places in range(5)
    }
    # a negative zero (-0.0) is a number no bound needs: never written
    candidates = sorted(text for text in written if not (text[0] == "-" and Decimal(text) == 0))
    allowed = [text for text in candidates if accepts(vocab, schema, text)]
    assert allowed == [text for text in candidates if within(bounds, Decimal(text))]
    # JSON numbers only, without an exponent, and no negative zero
    for never in ("-0", "01", "1.", ".5", "1e0", "0.5e1"):
        assert not accepts(vocab, schema, never)


def test_the_model_keeps_to_a_pydantic_models_number_bounds(engine: LlamaCppEngine) -> None:
    class Day(BaseModel):
        celsius: float = Field(ge=-10, le=10)
        share: float = Field(gt=0, lt=1)

    # without the bounds SmolLM2 writes {"celsius": 36.6, "share": 85}
    ask = "It is 36.6 degrees Celsius today, and 85% of people stayed home. As JSON."
    day = Day.model_validate(generate(engine, ask, Day.model_json_schema()))
    assert -10 <= day.celsius <= 10 and 0 < day.share < 1


def test_a_list_of_types_keeps_the_schemas_other_keywords(vocab: Vocabulary) -> None:
    schema = {
        "type": ["object", "null"],
        "properties": {"n": {"type": ["integer", "string"], "minimum": 1, "maxLength": 2}},
        "required": ["n"],
        "additionalProperties": False,
    }
    assert accepts(vocab, schema, "null")
    assert accepts(vocab, schema, '{"n": 3}') and accepts(vocab, schema, '{"n": "ab"}')
    assert not accepts(vocab, schema, '{"m": 3}')  # the properties were dropped
    assert not accepts(vocab, schema, '{"n": 0}')  # and the integer's bound
    assert not accepts(vocab, schema, '{"n": "abc"}')  # and the string's length
    # values listed with a list of types are the only ones (OpenAI's strict nullable enum)
    nullable = {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert accepts(vocab, nullable, '"a"') and accepts(vocab, nullable, "null")
    assert not accepts(vocab, nullable, '"c"')
    assert not accepts(vocab, {"type": ["string", "null"], "const": "a"}, '"zz"')
    # a null bound is no bound, and a count JSON writes as 3.0 is the count 3
    assert accepts(vocab, {"type": "integer", "maximum": None}, "123456")
    three = {"type": "string", "minLength": 3.0, "maxLength": 3.0}
    assert accepts(vocab, three, '"abc"') and not accepts(vocab, three, '"ab"')


@pytest.mark.parametrize(
    ("format_name", "written", "refused"),
    [
        (
            "email",
            ["ada@example.com", "first.last+tag@mail.example.co.uk", "o'brien@x-y.io"],
            ["ada", "ada@example", "a..b@example.com", ".a@example.com", "ada@-x.com", "a@b.c"],
        ),
        (
            "uri",
            [
                "https://example.com",
                "http://localhost:8080/path?q=1#frag",
                "ftp://10.0.0.1/file.txt",
                "https://[::1]:443/",
                "https://en.wikipedia.org/wiki/Paris_(city)",
            ],
            ["example.com", "https://", "see the website", "https://exa mple.com", "1http://x"],
        ),
        ("hostname", ["example.com", "localhost", "a-b.c"], ["-a.com", "a_b.com", "a..b", ""]),
        (
            "ipv4",
            ["192.168.0.1", "0.0.0.0", "255.255.255.255"],
            ["256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4.5"],
        ),
    ],
)
def test_string_formats_take_their_shape(
    vocab: Vocabulary, format_name: str, written: list[str], refused: list[str]
) -> None:
    schema = {"type": "string", "format": format_name}
    assert [text for text in written if not accepts(vocab, schema, json.dumps(text))] == []
    assert [text for text in refused if accepts(vocab, schema, json.dumps(text))] == []


def test_a_property_named_like_a_format_rule_keeps_its_own(vocab: Vocabulary) -> None:
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "json-format-label": {"type": "integer"},
        },
        "required": ["email", "json-format-label"],
    }
    assert accepts(vocab, schema, '{"email": "a@b.cd", "json-format-label": 3}')
    assert not accepts(vocab, schema, '{"email": "a@b.cd", "json-format-label": "x"}')


def test_the_model_writes_pydantics_url_and_address_types(engine: LlamaCppEngine) -> None:
    class Site(BaseModel):
        homepage: AnyUrl
        server: IPv4Address
        link: HttpUrl | None = None  # 1 to 2,083 characters: a window no grammar counts

    # without the formats SmolLM2 writes {"homepage": "Example.com", "server": "7"}
    ask = "Our homepage is the Example website, and it runs on server number 7. As JSON."
    Site.model_validate(generate(engine, ask, Site.model_json_schema()))
