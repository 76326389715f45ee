"""Fixtures for the LangChain tests: where the official integrations find A3S Power.

The integrations (``langchain-ollama``, ``langchain-openai``) are used unchanged; each test
builds its own model object with the settings it exercises, as a LangChain user would.
"""

from __future__ import annotations

import pytest

from conftest import PowerServer


@pytest.fixture(scope="session")
def ollama_url(power_server: PowerServer) -> str:
    """The ``base_url`` that ``ChatOllama``, ``OllamaLLM`` and ``OllamaEmbeddings`` take."""
    return power_server.url


@pytest.fixture(scope="session")
def openai_url(power_server: PowerServer) -> str:
    """The ``base_url`` that ``ChatOpenAI``, ``OpenAI`` and ``OpenAIEmbeddings`` take."""
    return power_server.url + "/v1"
