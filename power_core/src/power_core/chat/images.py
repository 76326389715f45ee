"""Images in prompts: where a rendered prompt shows each image, as Ollama's prompts do.

A message's images become tags in its text (``[img-0]``, numbered across the whole
conversation): each ``[img]`` the text holds takes the next one, and the rest go before the
text. The backend reads an image where its tag is (:data:`power_core.engine.IMAGE_TAG`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from power_core.engine import IMAGE_TAG, image_tag
from power_core.types import ChatMessage

if TYPE_CHECKING:
    from power_core.engine import Engine

#: where a message's text places its next image
IMAGE_SLOT = "[img]"


def tagged_images(messages: list[ChatMessage]) -> tuple[list[ChatMessage], list[bytes]]:
    """``messages`` with their images shown by tags in their text, and every image in the
    order of the tags' numbers."""
    images: list[bytes] = []
    tagged: list[ChatMessage] = []
    for message in messages:
        if not message.images:
            tagged.append(message)
            continue
        content, first = message.content, ""
        for image in message.images:
            tag = image_tag(len(images))
            images.append(image)
            if IMAGE_SLOT in content:
                content = content.replace(IMAGE_SLOT, tag, 1)
            else:
                first += tag
        tagged.append(replace(message, content=first + content))
    return tagged, images


def tagged_prompt(prompt: str, images: list[bytes]) -> str:
    """A raw prompt showing every one of ``images``: those it has no tag for go first."""
    missing = "".join(image_tag(i) for i in range(len(images)) if image_tag(i) not in prompt)
    return missing + prompt


def split_at_tags(text: str, count: int) -> tuple[list[str], list[int]]:
    """``text`` cut at the tags of images ``0 .. count-1`` (other tags stay text): the
    pieces between them (one more than the tags), and which image each tag shows."""
    pieces: list[str] = []
    shown: list[int] = []
    last = 0
    for match in IMAGE_TAG.finditer(text):
        index = int(match.group(1))
        if index < count:
            pieces.append(text[last : match.start()])
            shown.append(index)
            last = match.end()
    pieces.append(text[last:])
    return pieces, shown


def prompt_token_count(engine: Engine, text: str, images: list[bytes], *, add_bos: bool) -> int:
    """The tokens a prompt showing ``images`` takes: its text as the engine tokenizes it
    between the images (each piece alone, as libmtmd does), and for each image the tokens a
    photo takes there (:attr:`EngineInfo.image_tokens`: exact for most projectors)."""
    if not images:
        return len(engine.tokenize(text, add_bos=add_bos))
    pieces, shown = split_at_tags(text, len(images))
    count = len(shown) * engine.info.image_tokens
    for number, piece in enumerate(pieces):
        if piece or (number == 0 and add_bos):
            count += len(engine.tokenize(piece, add_bos=add_bos and number == 0))
    return count
