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

#: where a message's text places its next image (Ollama's, which a client may type)
IMAGE_SLOT = "[img]"
#: where a message's parts placed an image (OpenAI's content parts, Anthropic's blocks): a
#: private-use character, taken out of the parts' text, so typed text never moves an image
PLACED_IMAGE = "\ue000"


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
            if PLACED_IMAGE in content:
                content = content.replace(PLACED_IMAGE, tag, 1)
            elif IMAGE_SLOT in content:
                content = content.replace(IMAGE_SLOT, tag, 1)
            else:
                first += tag
        tagged.append(replace(message, content=first + content))
    return tagged, images


def tagged_prompt(prompt: str, images: list[bytes]) -> str:
    """A raw prompt showing every one of ``images``: those it has no tag for go first."""
    missing = "".join(image_tag(i) for i in range(len(images)) if image_tag(i) not in prompt)
    return missing + prompt


def placed_images(parts: list[str | bytes], separator: str) -> tuple[str, list[bytes]]:
    """A message's text and images from its parts in order (OpenAI's content parts,
    Anthropic's blocks): texts joined by ``separator``, and each image placed where it came,
    by a :data:`PLACED_IMAGE` before the text that followed it. Images before any text go
    first, as Ollama places a message's images: "Compare", image, "with", image give
    "Compare", newline, marker, "with", newline, marker.
    """
    parts = [p.replace(PLACED_IMAGE, "") if isinstance(p, str) else p for p in parts]
    images = [part for part in parts if isinstance(part, bytes)]
    texts = [part for part in parts if isinstance(part, str)]
    first_text = next((i for i, part in enumerate(parts) if isinstance(part, str)), len(parts))
    if all(isinstance(part, str) for part in parts[first_text:]):
        return separator.join(texts), images  # none after text: they go first, untagged
    text = ""
    after_text = False
    for part in parts:
        if isinstance(part, bytes):
            text += (separator if after_text else "") + PLACED_IMAGE
            after_text = False
        else:
            text += (separator if after_text else "") + part
            after_text = True
    return text, images


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
