"""Model names: ``[host/][namespace/]model[:tag]``, as Ollama spells them.

A name is also a path in the store (``manifests/<host>/<namespace>/<model>/<tag>``), so
parsing is strict: every part is checked against a small alphabet, ``..`` never passes,
and nothing that could climb out of the manifests folder survives. Names are matched
case-insensitively by normalising them to lower case once, here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from power_core.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

#: longest model, namespace or tag part; keeps every path part well under 255 bytes
MAX_PART_LENGTH = 128
MAX_HOST_LENGTH = 253

# A part starts with a letter, digit or underscore so that ``.``, ``..`` and ``-flag``
# never name a part; dots and dashes may follow.
_PART = re.compile(r"[a-z0-9_][a-z0-9_.\-]*")
# Ollama forbids dots in namespaces (they would be confused with hosts).
_NAMESPACE = re.compile(r"[a-z0-9_][a-z0-9_\-]*")
_HOST = re.compile(r"[a-z0-9_][a-z0-9_.\-]*(:[0-9]{1,5})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def spelled_parts(name: str) -> tuple[str, str, str, str]:
    """Host, namespace, model and tag of ``name`` as written, Ollama's defaults for the
    parts left out; only the shape is checked (:meth:`ModelRef.parse` checks the rest).

    The tag is after the last ``:`` that comes after the last ``/``; a ``:`` before the
    last ``/`` belongs to a host's port.
    """
    tag, path = DEFAULT_TAG, name
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        path, tag = name[:colon], name[colon + 1 :]
    parts = path.split("/")
    if len(parts) > 3:
        raise InvalidModelName(
            f"invalid model name {name!r}: expected [host/][namespace/]model[:tag]",
            param="model",
        )
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        (model,) = parts
    return host, namespace, model, tag


@dataclass(frozen=True)
class ModelRef:
    """A fully qualified, lower-case model name.

    Build one with :meth:`parse`; the fields are always complete (defaults filled in).
    """

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, name: str) -> ModelRef:
        """Parse ``[host/][namespace/]model[:tag]``, filling in Ollama's defaults.

        Raises :class:`~power_core.errors.InvalidModelName` with the reason when the name
        is empty, too long, has empty parts or characters outside ``[a-z0-9_.-]``
        (case-insensitive), contains ``..``, backslashes, control characters or a URL
        scheme, or has more than three slash-separated parts.
        """
        if not isinstance(name, str):
            raise InvalidModelName("model name must be a string", param="model")
        text = name.strip()
        if not text:
            raise InvalidModelName("model name is empty", param="model")
        if len(text) > MAX_HOST_LENGTH + 3 * (MAX_PART_LENGTH + 1):
            raise InvalidModelName("model name is too long", param="model")
        if _CONTROL.search(text):
            raise InvalidModelName(
                f"invalid model name {text!r}: control characters", param="model"
            )
        if "\\" in text:
            raise InvalidModelName(f"invalid model name {text!r}: backslash", param="model")
        if "://" in text:
            raise InvalidModelName(
                f"invalid model name {text!r}: a URL is not a model name", param="model"
            )
        host, namespace, model, tag = spelled_parts(text.lower())
        _check_part(text, "tag", tag, _PART, MAX_PART_LENGTH)
        _check_part(text, "host", host, _HOST, MAX_HOST_LENGTH)
        _check_part(text, "namespace", namespace, _NAMESPACE, MAX_PART_LENGTH)
        _check_part(text, "model", model, _PART, MAX_PART_LENGTH)
        return cls(host=host, namespace=namespace, model=model, tag=tag)

    @property
    def display(self) -> str:
        """The short name people type: ``smollm2:135m``, ``me/mine:latest``, ``h/ns/m:t``.

        Host and namespace appear only when they are not the defaults; a non-default host
        always brings its namespace along so the name parses back to the same reference.
        """
        if self.host != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        """Every part spelled out: ``registry.ollama.ai/library/smollm2:135m``."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def manifest_parts(self) -> tuple[str, str, str, str]:
        """Path parts of this model's manifest below ``manifests/``."""
        return (self.host, self.namespace, self.model, self.tag)

    def __str__(self) -> str:
        return self.display


def _check_part(name: str, kind: str, part: str, pattern: re.Pattern[str], max_length: int) -> None:
    if not part:
        raise InvalidModelName(f"invalid model name {name!r}: empty {kind}", param="model")
    if len(part) > max_length:
        raise InvalidModelName(
            f"invalid model name {name!r}: {kind} longer than {max_length} characters",
            param="model",
        )
    if ".." in part or not pattern.fullmatch(part):
        raise InvalidModelName(
            f"invalid model name {name!r}: {kind} {part!r} may only use letters, digits, "
            "'_', '-' and '.' (not first, never '..')",
            param="model",
        )


def is_model_name(name: str) -> bool:
    """Whether ``name`` parses as a model name (no exception)."""
    try:
        ModelRef.parse(name)
    except InvalidModelName:
        return False
    return True
