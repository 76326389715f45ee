"""``a3s-power ps``'s PROCESSOR column, as ``ollama ps`` writes it, from ``size`` and
``size_vram`` (the rest of ``ps`` runs against a real server: tests/api_ollama/test_wire.py)."""

from __future__ import annotations

import pytest

from power_core.cli.commands.ps import processor


@pytest.mark.parametrize(
    ("size", "size_vram", "shown"),
    [
        (1000, 0, "100% CPU"),
        (1000, 1000, "100% GPU"),
        (1000, 730, "27%/73% CPU/GPU"),
        (1000, 1, "100%/0% CPU/GPU"),
        (1000, 999, "0%/100% CPU/GPU"),
        (1000, 995, "1%/99% CPU/GPU"),  # a half rounds away from zero, as in Go
        (1000, 5, "100%/0% CPU/GPU"),
        (0, 0, "100% CPU"),
    ],
)
def test_where_the_model_is(size: int, size_vram: int, shown: str) -> None:
    assert processor(size, size_vram) == shown
