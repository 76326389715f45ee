r"""Images named in a chat message, as ``ollama run`` finds them for a model that reads images:
a path to an existing image file (``./cat.png``, ``/tmp/a b.jpg`` quoted or ``/tmp/a\ b.jpg``
escaped, ``~/x.webp``) is read and taken out of the text."""

from __future__ import annotations

import re
from pathlib import Path

_EXTENSIONS = r"\.(?:png|jpe?g|gif|bmp|webp)"
#: a path that starts a word like one (``/``, ``./``, ``../``, ``~/``) and ends with an
#: image's extension: in quotes it may hold spaces, bare only escaped ones (``a\ b.png``);
#: a word is tried once (never from inside an escaped path), so a long line is read in
#: linear time
_IMAGE_PATH = re.compile(
    rf"""(?P<quote>['"])(?P<quoted>(?:~|\.{{1,2}})?/[^'"\n]*?{_EXTENSIONS})(?P=quote)"""
    rf"""|(?<!\S)(?<!\\\s)(?P<bare>(?:~|\.{{1,2}})?/(?:[^\s'"\\]|\\.)*?{_EXTENSIONS})"""
    rf"""(?=[\s,;:!?)\]]|\.?$|\.\s)""",
    re.IGNORECASE,
)
#: a character escaped with a backslash, as a terminal writes a dropped file's path
#: (``cat\ pic.png``)
_ESCAPED = re.compile(r"\\(.)")


def images_in(message: str) -> tuple[str, list[tuple[str, bytes]]]:
    """``message`` without the image files it names, and each file's path and bytes, in
    order; paths of missing files stay in the text."""
    images: list[tuple[str, bytes]] = []

    def take(match: re.Match[str]) -> str:
        name = _name(match)
        path = Path(name).expanduser()
        if not path.is_file():
            return match.group(0)
        try:
            images.append((name, path.read_bytes()))
        except OSError:
            return match.group(0)
        return ""

    text = _IMAGE_PATH.sub(take, message)
    return (re.sub(r"[ \t]{2,}", " ", text).strip() if images else message), images


def starts_with_image(message: str) -> bool:
    """Whether ``message`` begins with the path of an existing image file (a chat line
    that does is a message, not a ``/command``)."""
    match = _IMAGE_PATH.match(message)
    return match is not None and Path(_name(match)).expanduser().is_file()


def _name(match: re.Match[str]) -> str:
    """The path a match names, its escapes undone."""
    return match.group("quoted") or _ESCAPED.sub(r"\1", match.group("bare"))
