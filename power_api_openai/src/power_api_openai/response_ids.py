"""Ids in the Responses API's style."""

from __future__ import annotations

import secrets


def item_id(prefix: str) -> str:
    """An id in the Responses API's style: ``resp_``, ``msg_``, ``fc_``, ``rs_`` and hex."""
    return f"{prefix}_{secrets.token_hex(24)}"
