"""What a model's layers say: parameters, messages, details and capabilities.

The library reads layers as text; these functions turn that text (and the GGUF header)
into the values :class:`~power_core.models.ResolvedModel` carries.
"""

from __future__ import annotations

import json
from typing import Any

from power_core.chat.template_syntax import template_thinks
from power_core.errors import InvalidModelFile, InvalidRequest
from power_core.gguf import GGUFInfo
from power_core.modelfile import MESSAGE_ROLES, PARAMETER_NAMES, coerce_parameter
from power_core.models import ModelDetails
from power_core.store.manifest import Manifest, ModelConfig
from power_core.types import ChatMessage


def looks_like_path(value: str) -> bool:
    """Whether a Modelfile ``FROM`` value is meant as a file (not a model name)."""
    return value.startswith(("/", "./", "../", "~")) or value.lower().endswith(".gguf")


def details_for(config: ModelConfig, info: GGUFInfo | None) -> ModelDetails:
    """Ollama's details: from the config blob, filled in from the GGUF header."""
    family = config.model_family or (info.family if info else "")
    return ModelDetails(
        format=config.model_format or "gguf",
        family=family,
        families=config.model_families or ([family] if family else []),
        parameter_size=config.model_type or (info.parameter_size if info else ""),
        quantization_level=config.file_type or (info.quantization if info else ""),
    )


def capabilities_for(info: GGUFInfo, template: str | None, manifest: Manifest) -> list[str]:
    """Capabilities as Ollama derives them (see :meth:`ModelLibrary.resolve`), from the
    template prompts use: with none of its own, a completion model's prompts use the
    built-in ChatML template (``power_core.chat.template``), which shows tools."""
    text = template or ""
    caps = ["embedding" if info.is_embedding_model else "completion"]
    if "tools" in text or ".Tools" in text or not (text or info.is_embedding_model):
        caps.append("tools")
    if info.has_fim_tokens or ".Suffix" in text:
        caps.append("insert")
    if manifest.layer("projector") is not None or info.arch_value("vision.block_count"):
        caps.append("vision")
    if template_thinks(text):
        caps.append("thinking")
    return caps


def load_parameters(display: str, texts: list[str]) -> dict[str, Any]:
    """Parameters from ``params`` layers (JSON objects), each typed as a Modelfile's
    ``PARAMETER`` is (``stop`` always a list of strings); raises InvalidModelFile for a
    layer that is no JSON or a known parameter of another type (``"stop": 5``, a NaN
    ``num_keep``: a registry's or a hand-edited store's), which would fail every request.
    Parameters this server does not know are kept as they are (it reads none of them)."""
    parameters: dict[str, Any] = {}
    for text in texts:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidModelFile(f"model '{display}' has a damaged params layer") from exc
        if isinstance(data, dict):
            parameters.update(data)
    for name, value in parameters.items():
        if isinstance(name, str) and name.lower() in PARAMETER_NAMES:
            try:
                parameters[name] = coerce_parameter(name, value)
            except InvalidRequest as exc:
                raise InvalidModelFile(
                    f"model '{display}' has a params layer whose {exc.message}"
                ) from None
    return parameters


def load_messages(display: str, texts: list[str]) -> list[tuple[str, str]]:
    """(role, content) pairs from ``messages`` layers (JSON lists)."""
    pairs: list[tuple[str, str]] = []
    for text in texts:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidModelFile(f"model '{display}' has a damaged messages layer") from exc
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and item.get("role") in MESSAGE_ROLES:
                pairs.append((item["role"], str(item.get("content", ""))))
    return pairs


def message_pairs(messages: list[ChatMessage] | list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, content) pairs from API messages; raises InvalidRequest for bad ones."""
    pairs = []
    for message in messages:
        role: object
        content: object
        if isinstance(message, ChatMessage):
            role, content = message.role, message.content
        elif isinstance(message, dict):
            role, content = message.get("role"), message.get("content")
        else:  # a number, a string, null: a client's mistake
            role = content = None
        if role not in MESSAGE_ROLES or not isinstance(content, str):
            raise InvalidRequest(
                "each message needs a role (system, user or assistant) and text content",
                param="messages",
            )
        pairs.append((str(role), content))
    return pairs
