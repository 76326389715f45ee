"""Visible text: stop strings held across token boundaries, UTF-8 never broken."""

from __future__ import annotations

import pytest

from power_backend_llamacpp import LlamaCppEngine
from power_backend_llamacpp.text import ChoiceText
from power_core.types import ChoiceDone, TextDelta

from .conftest import chat, done, run, text

PROMPT = chat("Write two sentences about the moon.")


# ------------------------------------------------------------------ ChoiceText on its own
def feed_all(assembler: ChoiceText, pieces: list[bytes]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        emitted, stopped = assembler.feed(piece)
        out.append(emitted)
        if stopped:
            return "".join(out), True
    out.append(assembler.flush())
    return "".join(out), False


def test_split_characters_are_held_until_complete() -> None:
    assembler = ChoiceText([])
    emoji = "😀".encode()
    assert assembler.feed(emoji[:1]) == ("", False)
    assert assembler.feed(emoji[1:3]) == ("", False)
    assert assembler.feed(emoji[3:] + "é".encode()[:1]) == ("😀", False)
    assert assembler.feed("é".encode()[1:] + b"!") == ("é!", False)


def test_an_incomplete_character_at_the_end_is_dropped_not_replaced() -> None:
    assembler = ChoiceText([])
    assert assembler.feed(b"ok" + "中".encode()[:2]) == ("ok", False)
    assert assembler.flush() == ""


def test_stop_string_spanning_pieces_is_cut_and_never_emitted() -> None:
    assembler = ChoiceText(["END"])
    assert assembler.feed(b"abc E") == ("abc ", False)
    assert assembler.feed(b"N") == ("", False)
    assert assembler.feed(b"Dxyz") == ("", True)


def test_held_text_is_released_when_it_stops_matching() -> None:
    assembler = ChoiceText(["END"])
    assert assembler.feed(b"E") == ("", False)
    assert assembler.feed(b"NX") == ("ENX", False)
    assembler = ChoiceText(["END"])
    assert assembler.feed(b"xEN") == ("x", False)
    assert assembler.flush() == "EN"


def test_earliest_of_several_stop_strings_wins() -> None:
    assert feed_all(ChoiceText(["world", "lo w"]), [b"hel", b"lo wor", b"ld"]) == ("hel", True)
    assert feed_all(ChoiceText(["zzz", "o"]), [b"hel", b"lo"]) == ("hell", True)


def test_the_stop_string_that_matched_is_named() -> None:
    several = ChoiceText(["world", "lo w"])
    feed_all(several, [b"hel", b"lo wor", b"ld"])
    assert several.matched == "lo w"
    unmatched = ChoiceText(["zzz"])
    feed_all(unmatched, [b"hel", b"lo"])
    assert unmatched.matched is None


def test_stop_string_inside_a_multibyte_sequence() -> None:
    stop = "好"
    data = "你好吗".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert feed_all(ChoiceText([stop]), pieces) == ("你", True)


# ------------------------------------------------------------------ through the engine
@pytest.mark.model
def test_stop_strings_spanning_token_boundaries(engine: LlamaCppEngine) -> None:
    events = run(engine, PROMPT, max_tokens=48)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    full = "".join(deltas)
    # a stop string made of the end of one token and the start of the next
    k = next(i for i in range(2, len(deltas) - 1) if len(deltas[i]) >= 2 and deltas[i + 1])
    spanning = deltas[k][-2:] + deltas[k + 1][:2]
    cut = full.index(spanning)
    later = full[cut + len(spanning) : cut + len(spanning) + 3]
    assert later
    events = run(engine, PROMPT, max_tokens=48, stop=[later, "never appears", spanning])
    assert text(events) == full[:cut]
    assert spanning not in text(events)
    assert done(events).reason == "stop"
    finished = [e for e in events if isinstance(e, ChoiceDone)]
    assert (finished[0].reason, finished[0].stop_sequence) == ("stop", spanning)


@pytest.mark.model
def test_a_stop_string_that_never_appears_changes_nothing(engine: LlamaCppEngine) -> None:
    plain = run(engine, PROMPT, max_tokens=24)
    stopped = run(engine, PROMPT, max_tokens=24, stop=["\u2603\u2603", "qqqq"])
    assert text(stopped) == text(plain)
    assert done(stopped).reason == done(plain).reason
    assert all(e.stop_sequence is None for e in stopped if isinstance(e, ChoiceDone))


@pytest.mark.model
@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("😀😀😀😀😀😀😀😀😀😀", "😀"),
        ("🎉🎉🎉 Party time! 🎉🎉", "🎉"),
        (chat("请用中文介绍一下北京。"), "中"),
        ("東京は日本の首都です。東京は", "の"),
    ],
)
def test_utf8_output_is_never_broken(engine: LlamaCppEngine, prompt: str, expected: str) -> None:
    events = run(engine, prompt, max_tokens=24, return_context=True)
    output = text(events)
    usage = done(events).usage
    assert expected in output
    assert "\ufffd" not in output
    deltas = [e for e in events if isinstance(e, TextDelta)]
    # characters spanned several tokens: fewer deltas than tokens, each delta whole text
    assert len(deltas) < usage.completion_tokens
    assert usage.context is not None
    decoded = engine.detokenize(usage.context[usage.prompt_tokens :])
    if done(events).reason == "length" and decoded.endswith("\ufffd"):
        # cut by max_tokens inside a character: the stream holds back its first bytes
        decoded = decoded.rstrip("\ufffd")
    assert decoded == output
