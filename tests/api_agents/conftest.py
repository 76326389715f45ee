"""Fixtures for the OpenAI Agents SDK tests: the ``openai-agents`` package, unchanged,
with its model client pointed at A3S Power and its tracing (which would send traces to
OpenAI) turned off, as a user of a local server turns it off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agents import set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

from conftest import PowerServer


@pytest.fixture(autouse=True)
def agents_client(power_server: PowerServer) -> Iterator[AsyncOpenAI]:
    """The async ``openai`` client the agents of one test use. One per test: its pooled
    connections belong to the event loop that opened them, and each test runs one loop."""
    client = AsyncOpenAI(base_url=power_server.url + "/v1", api_key="local", max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)
    set_tracing_disabled(True)
    yield client
