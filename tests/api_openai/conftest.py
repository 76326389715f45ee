"""Fixtures for the OpenAI surface: the official SDK, raw SSE reads, and a second server
with bearer keys, one sequence and a one-job queue (for auth, busy and disconnect tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest
from openai import OpenAI

from api_openai.wire_reading import KEYS, TokenId
from conftest import PowerServer, import_test_model


@pytest.fixture(scope="session")
def v1(power_server: PowerServer) -> str:
    """The base URL of the OpenAI surface."""
    return power_server.url + "/v1"


@pytest.fixture(scope="session")
def client(v1: str) -> OpenAI:
    """The official ``openai`` SDK, unchanged, pointed at A3S Power."""
    return OpenAI(base_url=v1, api_key="anything", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """A server that requires one of :data:`KEYS`, runs one sequence and queues one job."""
    home = tmp_path_factory.mktemp("keyed-home")
    server = PowerServer(
        home,
        api_keys=",".join(KEYS),
        num_parallel="1",
        max_queue="1",
        num_ctx="8192",
        max_body_bytes="4000",
    )
    import_test_model(server.env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_id(model_path: Path) -> TokenId:
    """``token_id(text)``: SmolLM2's id of the one token spelling ``text`` (GPT-2 style BPE,
    where a leading space is written ``Ġ``), read from the GGUF's vocabulary."""
    reader = gguf.GGUFReader(str(model_path))
    field = reader.fields["tokenizer.ggml.tokens"]
    ids = {bytes(field.parts[index]).decode("utf-8"): n for n, index in enumerate(field.data)}

    def lookup(text: str) -> int:
        return ids[text.replace(" ", "\u0120")]

    return lookup
