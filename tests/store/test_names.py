"""Model names: Ollama's grammar, defaults, case-insensitivity and path safety."""

from __future__ import annotations

import pytest

from power_core.errors import InvalidModelName
from power_core.names import ModelRef, is_model_name


@pytest.mark.parametrize(
    ("text", "parts", "display"),
    [
        ("smollm2", ("registry.ollama.ai", "library", "smollm2", "latest"), "smollm2:latest"),
        ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
        ("SmolLM2:135M", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
        ("me/mine", ("registry.ollama.ai", "me", "mine", "latest"), "me/mine:latest"),
        ("library/llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b"), "llama3.2:1b"),
        (
            "hf.co/Org/Repo-GGUF:Q4_K_M",
            ("hf.co", "org", "repo-gguf", "q4_k_m"),
            "hf.co/org/repo-gguf:q4_k_m",
        ),
        (
            "localhost:5000/team/model:v1.0",
            ("localhost:5000", "team", "model", "v1.0"),
            "localhost:5000/team/model:v1.0",
        ),
        (
            "registry.ollama.ai/library/x:latest",
            ("registry.ollama.ai", "library", "x", "latest"),
            "x:latest",
        ),
        (
            "registry.ollama.ai/someone/x:latest",
            ("registry.ollama.ai", "someone", "x", "latest"),
            "someone/x:latest",
        ),
        ("  padded:tag  ", ("registry.ollama.ai", "library", "padded", "tag"), "padded:tag"),
        (
            "a_b-c.d:e_f-g.h",
            ("registry.ollama.ai", "library", "a_b-c.d", "e_f-g.h"),
            "a_b-c.d:e_f-g.h",
        ),
    ],
)
def test_parse_fills_defaults_and_lowercases(
    text: str, parts: tuple[str, str, str, str], display: str
) -> None:
    ref = ModelRef.parse(text)
    assert ref.manifest_parts == parts
    assert ref.display == display
    assert str(ref) == display
    # the display form parses back to the same reference
    assert ModelRef.parse(ref.display) == ref
    assert ModelRef.parse(ref.full) == ref


def test_matching_is_case_insensitive() -> None:
    assert ModelRef.parse("Foo/Bar:Baz") == ModelRef.parse("foo/bar:baz")
    assert hash(ModelRef.parse("Foo")) == hash(ModelRef.parse("foo:latest"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        ":",
        "model:",
        ":tag",
        "/model",
        "ns/",
        "a//b",
        "a/b/c/d",
        "..",
        "../etc/passwd",
        "ns/..",
        "model:..",
        "mo..del",
        ".hidden",
        "-flag",
        "model:-tag",
        "model:.tag",
        "back\\slash",
        "ctrl\x00char",
        "new\nline",
        "tab\tmodel",
        "https://example.com/model.gguf",
        "white space",
        "model:tag:extra",
        "ns.with.dot/model",
        "x" * 129,
        "model:" + "t" * 129,
        "ümlaut",
        "model@sha256",
        "host:notaport/ns/model",
    ],
)
def test_rejects_bad_names(text: str) -> None:
    with pytest.raises(InvalidModelName):
        ModelRef.parse(text)
    assert not is_model_name(text)


def test_errors_name_the_problem() -> None:
    with pytest.raises(InvalidModelName, match="empty tag"):
        ModelRef.parse("model:")
    with pytest.raises(InvalidModelName, match=r"'\.\.'"):
        ModelRef.parse("../x")
    with pytest.raises(InvalidModelName, match="longer than 128"):
        ModelRef.parse("m" * 200)
    with pytest.raises(InvalidModelName, match="URL"):
        ModelRef.parse("http://x/y")


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidModelName):
        ModelRef.parse(None)  # type: ignore[arg-type]


def test_refs_are_frozen() -> None:
    ref = ModelRef.parse("x")
    with pytest.raises(AttributeError):
        ref.tag = "other"  # type: ignore[misc]
