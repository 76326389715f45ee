"""The Anthropic Messages API surface of A3S Power: ``POST /v1/messages`` and ``POST
/v1/messages/count_tokens``, wire-compatible with the official ``anthropic`` SDK and with
programs built on it (Claude Code among them), as Ollama serves them.

Importing this package (which the plugin loader does at every CLI start) must not import
Flask: :func:`power_api_anthropic.plugin.register_api_surfaces` registers a factory that
imports it when the server builds its blueprint.
"""

from __future__ import annotations

__all__ = ["URL_PREFIX"]

#: where every route of this surface lives (beside the OpenAI surface's ``/v1`` routes)
URL_PREFIX = "/v1/messages"
