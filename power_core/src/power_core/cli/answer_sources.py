"""Where ``a3s-power run`` gets its answers: a running server, or this process.

As ``ollama run`` chats through ``ollama serve``, a server that answers at the configured
address streams the answers from its ``/api/chat`` (Ollama's API): the model it holds is
used, stays loaded for the next run and for every other client, and is never loaded a
second time in this process. With no server, :class:`InProcess` generates here. Either way
the model is found in the local store (which a server on this machine shares) and checked
here, so both refuse the same things in the same words.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from power_core.cli.server_client import call_server, key_header, refusal, server_url
from power_core.config import Settings
from power_core.errors import PowerError
from power_core.types import (
    ChatMessage,
    EmbeddingRequest,
    GenerationDone,
    GenerationEvent,
    TextDelta,
    ThinkingDelta,
    Usage,
)

if TYPE_CHECKING:
    import requests

    from power_core.cli.chat_session import SessionOptions
    from power_core.services import PowerServices

#: how long to wait for a server to say it is there: one on this machine answers at once
_PROBE_SECONDS = 2.0


class ServerLost(PowerError):
    """The server went away (stopped, killed, unreachable) while ``run`` used it: the chat
    ends, as ``ollama run``'s does."""


class AnswerStream(Protocol):
    """The events of one answer, iterated once; :meth:`cancel` stops it early."""

    def __iter__(self) -> Iterator[GenerationEvent]: ...

    def cancel(self) -> None: ...


class AnswerSource(Protocol):
    """What a chat session needs to have a model answer."""

    def load(self, model: str, options: SessionOptions) -> None:
        """Load ``model`` as ``options`` ask (their load parameters and keep-alive)."""
        ...

    def answer(
        self, model: str, options: SessionOptions, messages: list[ChatMessage]
    ) -> AnswerStream:
        """Start streaming the answer to ``messages``."""
        ...

    def embed(self, model: str, options: SessionOptions, request: EmbeddingRequest) -> list[float]:
        """The vector of ``request``'s one input."""
        ...


class InProcess:
    """Answers generated in this process, by the CLI's own services."""

    def __init__(self, services: PowerServices) -> None:
        self._services = services

    def load(self, model: str, options: SessionOptions) -> None:
        load = options.request(model, []).load
        self._services.load_model(model, options.keep_alive, load)

    def answer(
        self, model: str, options: SessionOptions, messages: list[ChatMessage]
    ) -> AnswerStream:
        return self._services.generate(options.request(model, messages))

    def embed(self, model: str, options: SessionOptions, request: EmbeddingRequest) -> list[float]:
        return self._services.embed(request).vectors[0]


class OnServer:
    """Answers streamed from a running server's Ollama API."""

    def __init__(self, settings: Settings) -> None:
        self.url = server_url(settings)
        self._headers = key_header(settings)

    @classmethod
    def find(cls, settings: Settings) -> OnServer | None:
        """The server at the configured address, if one answers there with Ollama's API
        (a server without that plugin, or none at all, leaves the answers to this process)."""
        import requests

        try:
            health = call_server(settings, "GET", "/health", wait=_PROBE_SECONDS)
        except (PowerError, requests.RequestException):
            return None
        apis = health.get("apis") if isinstance(health, dict) else None
        return cls(settings) if isinstance(apis, list) and "ollama" in apis else None

    def load(self, model: str, options: SessionOptions) -> None:
        # no messages at all (not even the session's system message): only a load
        body = {**chat_body(model, options, []), "messages": [], "stream": False}
        self._post("/api/chat", body).close()

    def answer(
        self, model: str, options: SessionOptions, messages: list[ChatMessage]
    ) -> AnswerStream:
        return _ServerAnswer(self._post("/api/chat", chat_body(model, options, messages)), self.url)

    def embed(self, model: str, options: SessionOptions, request: EmbeddingRequest) -> list[float]:
        body: dict[str, Any] = {
            "model": model,
            "input": request.inputs[0],
            "truncate": request.truncate,
            "options": dict(options.parameters),
        }
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if options.keep_alive is not None:
            body["keep_alive"] = options.keep_alive
        with self._post("/api/embed", body) as response:
            return [float(value) for value in response.json()["embeddings"][0]]

    def _post(self, path: str, body: dict[str, Any]) -> requests.Response:
        """POST ``body``; the response streams. A refusal raises in the server's words."""
        import requests

        try:
            response = requests.post(
                self.url + path, json=body, headers=self._headers, stream=True, timeout=(10, None)
            )
        except requests.RequestException as exc:
            raise _lost(self.url, exc) from None
        if response.status_code >= 400:
            with response:
                raise refusal(response)
        return response


def chat_body(model: str, options: SessionOptions, messages: list[ChatMessage]) -> dict[str, Any]:
    """The ``/api/chat`` request ``ollama run`` would send for this session: its
    parameters as ``options``, its system message first."""
    shown = list(messages)
    if options.system is not None:
        shown.insert(0, ChatMessage(role="system", content=options.system))
    body: dict[str, Any] = {
        "model": model,
        "messages": [_wire_message(message) for message in shown],
        "options": dict(options.parameters),
        "stream": True,
    }
    if options.keep_alive is not None:
        body["keep_alive"] = options.keep_alive
    if options.response_format is not None:
        schema = options.response_format.schema
        body["format"] = "json" if schema is None else schema
    if options.think is not None:
        body["think"] = (
            options.think_level if options.think and options.think_level else options.think
        )
    return body


def _wire_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.thinking:
        wire["thinking"] = message.thinking
    if message.images:
        wire["images"] = [base64.b64encode(image).decode("ascii") for image in message.images]
    return wire


def _lost(url: str, exc: Exception) -> ServerLost:
    import requests

    cut = isinstance(exc, ValueError | requests.exceptions.ChunkedEncodingError)
    happened = "closed the connection mid-answer" if cut else "cannot be reached"
    return ServerLost(f"the server at {url} {happened}")


class _ServerAnswer:
    """One answer's NDJSON chunks as generation events."""

    def __init__(self, response: requests.Response, url: str) -> None:
        self._response = response
        self._url = url

    def __iter__(self) -> Iterator[GenerationEvent]:
        import requests

        with self._response as response:
            try:
                yield from self._events(response)
            except (requests.RequestException, ValueError) as exc:  # cut off mid-answer
                raise _lost(self._url, exc) from None

    @staticmethod
    def _events(response: requests.Response) -> Iterator[GenerationEvent]:
        for line in response.iter_lines():
            if not line:
                continue
            chunk = json.loads(line)
            if "error" in chunk:  # a failure after the answer began
                raise PowerError(str(chunk["error"]))
            message = chunk.get("message") or {}
            if message.get("thinking"):
                yield ThinkingDelta(0, message["thinking"])
            if message.get("content"):
                yield TextDelta(0, message["content"])
            if chunk.get("done"):
                cut = chunk.get("done_reason") == "length"
                yield GenerationDone(_usage(chunk), "length" if cut else "stop")

    def cancel(self) -> None:
        """Close the connection: the server stops generating for a client that left."""
        self._response.close()


def _usage(chunk: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=int(chunk.get("prompt_eval_count") or 0),
        completion_tokens=int(chunk.get("eval_count") or 0),
        load_ns=int(chunk.get("load_duration") or 0),
        prompt_eval_ns=int(chunk.get("prompt_eval_duration") or 0),
        eval_ns=int(chunk.get("eval_duration") or 0),
        total_ns=int(chunk.get("total_duration") or 0),
    )
