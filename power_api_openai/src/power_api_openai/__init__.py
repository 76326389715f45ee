"""The OpenAI API surface of A3S Power: ``/v1/chat/completions``, ``/v1/responses``,
``/v1/completions``, ``/v1/models`` and ``/v1/embeddings``, wire-compatible with the
official ``openai`` SDK.

Importing this package (which the plugin loader does at every CLI start) must not import
Flask: :func:`power_api_openai.plugin.register_api_surfaces` registers a factory that
imports it when the server builds its blueprint.
"""

from __future__ import annotations

__all__ = ["URL_PREFIX"]

#: where every route of this surface lives
URL_PREFIX = "/v1"
