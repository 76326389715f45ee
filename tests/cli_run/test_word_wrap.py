"""Answers wrapped at words as they stream, as ``ollama run`` wraps them."""

from __future__ import annotations

from power_core.cli.word_wrap import WordWrapper


def wrapped(columns: int, *pieces: str) -> list[str]:
    out: list[str] = []
    wrapper = WordWrapper(out.append, columns)
    for piece in pieces:
        wrapper.feed(piece)
    wrapper.finish()
    return "".join(out).split("\n")


def test_a_word_that_crosses_the_edge_moves_to_the_next_line_whole() -> None:
    # 20 columns, 5 left free: lines of at most 15
    lines = wrapped(20, "the quick brown fox jum", "ps over the lazy dog")
    assert lines == ["the quick brown", "fox jumps over ", "the lazy dog"]  # no space at the edge
    assert all(len(line) <= 15 for line in lines)


def test_a_word_as_long_as_a_line_is_written_as_it_comes() -> None:
    out: list[str] = []
    wrapper = WordWrapper(out.append, 20)
    wrapper.feed("x" * 15)  # no space yet: it fits no line anyway
    assert "".join(out) == "x" * 15
    wrapper.feed(" abc")
    wrapper.finish()
    assert "".join(out).split("\n") == ["x" * 15, "abc"]


def test_wide_characters_stream_and_count_two_columns() -> None:
    out: list[str] = []
    wrapper = WordWrapper(out.append, 20)
    wrapper.feed("日本語")
    assert "".join(out) == "日本語"  # written as they come, with no space to wait for
    wrapper.feed("の文章です。")
    wrapper.finish()
    lines = "".join(out).split("\n")
    assert lines == ["日本語の文章で", "す。"]  # 7 characters: 14 of the 15 columns
