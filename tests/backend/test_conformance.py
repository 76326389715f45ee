"""The llama.cpp backend passes the generic backend conformance suite."""

from __future__ import annotations

import pytest

from power_backend_llamacpp import LlamaCppBackend
from power_core.testing import BackendConformance

pytestmark = pytest.mark.model


class TestLlamaCppConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> LlamaCppBackend:
        return LlamaCppBackend()
