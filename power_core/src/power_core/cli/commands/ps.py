"""``a3s-power ps``: models loaded in the running server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from cleo.helpers import argument
from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.cli.format import human_size, human_until
from power_core.cli.server_client import call_server


class PsCommand(PowerCommand):
    name = "ps"
    description = "List the models loaded in the running server."
    arguments: ClassVar[list[Argument]] = [
        argument("prefix", "Only the models whose name starts with this.", optional=True)
    ]

    def handle(self) -> int:
        body = call_server(self.settings, "GET", "/power/loaded")
        rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
        now = datetime.now(UTC)
        prefix = self.argument("prefix") or ""
        for model in body.get("models", []):
            if not model["name"].startswith(prefix):
                continue
            expires = model.get("expires_at")
            until = human_until(datetime.fromisoformat(expires), now) if expires else "Forever"
            rows.append(
                [
                    model["name"],
                    model["digest"][:12],
                    human_size(model["size"]),
                    processor(model["size"], model.get("size_vram", 0)),
                    str(model["context_length"]),
                    until,
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.line("    ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return 0


def processor(size: int, size_vram: int) -> str:
    """Where a loaded model is, as ``ollama ps`` says it: ``100% CPU``, ``100% GPU`` or
    ``27%/73% CPU/GPU`` (shares of its bytes)."""
    if size_vram <= 0 or size <= 0:
        return "100% CPU"
    if size_vram >= size:
        return "100% GPU"
    on_cpu = int(100 * (size - size_vram) / size + 0.5)  # half away from zero, as Go rounds
    on_gpu = 100 - on_cpu
    return f"{on_cpu}%/{on_gpu}% CPU/GPU"
