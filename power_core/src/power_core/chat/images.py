"""Images in prompts: where a rendered prompt shows each image, as Ollama's prompts do.

A message's images become tags in its text (``[img-0]``, numbered across the whole
conversation): each ``[img]`` the text holds takes the next one, and the rest go before the
text. The backend reads an image where its tag is (:data:`power_core.engine.IMAGE_TAG`).
"""

from __future__ import annotations

from dataclasses import replace

from power_core.engine import image_tag
from power_core.types import ChatMessage

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
