"""Fixtures for the Anthropic surface: the official ``anthropic`` SDK, unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from conftest import PowerServer

MODEL = "smollm2:135m"


@pytest.fixture(scope="session")
def client(power_server: PowerServer) -> anthropic.Anthropic:
    """The official ``anthropic`` SDK pointed at A3S Power (no retries: a failure shows)."""
    return anthropic.Anthropic(
        base_url=power_server.url, api_key="anything", max_retries=0, timeout=300
    )


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """A server (no model) that wants the key ``k1``."""
    server = PowerServer(Path(tmp_path_factory.mktemp("keyed")), api_keys="k1").start()
    try:
        yield server
    finally:
        server.stop()
