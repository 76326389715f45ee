"""The fields every OpenAI response object shares: ``id``, ``object``, ``created``, ``model``."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from power_core.models import ResolvedModel
from power_core.types import Usage


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: a prefix and random characters."""
    return f"{prefix}-{secrets.token_hex(14)}"


def system_fingerprint(model: ResolvedModel) -> str:
    """Identifies the model build behind a response (changes when the model changes)."""
    return "fp_" + model.digest.removeprefix("sha256:")[:12]


@dataclass
class Envelope:
    """One response's identity, the same on every chunk of a stream."""

    id: str
    model: str
    system_fingerprint: str
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def for_model(cls, prefix: str, model: ResolvedModel) -> Envelope:
        return cls(new_id(prefix), model.name, system_fingerprint(model))

    def object(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A response object of ``kind`` with the shared fields first."""
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            **fields,
        }


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object; ``cached_tokens``: prompt tokens reused from the cache."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def finish_reason(reason: str) -> str:
    """OpenAI's ``finish_reason``: ``stop``, ``length`` or ``tool_calls``."""
    return reason if reason in ("length", "tool_calls") else "stop"
