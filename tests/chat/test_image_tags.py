"""Where prompts show images (Ollama's tags), and where a message's parts place them."""

from __future__ import annotations

from power_core.chat.images import (
    PLACED_IMAGE,
    placed_images,
    split_at_tags,
    tagged_images,
    tagged_prompt,
)
from power_core.types import ChatMessage


def test_images_become_tags_numbered_across_the_conversation() -> None:
    messages = [
        ChatMessage(role="system", content="Look closely."),
        ChatMessage(role="user", content="What is this?", images=[b"a"]),
        ChatMessage(role="assistant", content="A cat."),
        ChatMessage(role="user", content="Is [img] bigger than [img]?", images=[b"b", b"c", b"d"]),
    ]
    tagged, images = tagged_images(messages)
    assert [m.content for m in tagged] == [
        "Look closely.",
        "[img-0]What is this?",
        "A cat.",
        "[img-3]Is [img-1] bigger than [img-2]?",  # slots in order, the rest before the text
    ]
    assert images == [b"a", b"b", b"c", b"d"]
    assert messages[1].content == "What is this?"  # the caller's messages are left as they were


def test_a_raw_prompt_shows_the_images_it_has_no_tag_for_first() -> None:
    assert tagged_prompt("A [img-1] B", [b"a", b"b", b"c"]) == "[img-0][img-2]A [img-1] B"
    assert tagged_prompt("plain", []) == "plain"


def test_tags_split_the_text_only_for_images_there_are() -> None:
    assert split_at_tags("a[img-0]b[img-7]c[img-1]", 2) == (["a", "b[img-7]c", ""], [0, 1])


def test_parts_place_images_where_they_came_unless_all_come_first() -> None:
    mark = PLACED_IMAGE
    assert placed_images(["Compare", b"a", "with", b"b"], "\n") == (
        f"Compare\n{mark}with\n{mark}",
        [b"a", b"b"],
    )
    assert placed_images([b"a", "What?", "More."], "\n\n") == ("What?\n\nMore.", [b"a"])
    assert placed_images([b"a", "x", b"b"], "\n") == (f"{mark}x\n{mark}", [b"a", b"b"])
    assert placed_images([b"a", b"b"], "\n") == ("", [b"a", b"b"])


def test_text_a_client_typed_never_moves_a_placed_image() -> None:
    text, images = placed_images(
        ["What does [img] do? Look:", b"a", f"and{PLACED_IMAGE} then", b"b", "thanks"], "\n"
    )
    message = ChatMessage(role="user", content=text, images=images)
    assert tagged_images([message])[0][0].content == (
        "What does [img] do? Look:\n[img-0]and then\n[img-1]thanks"
    )
