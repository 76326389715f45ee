"""``a3s-power stop MODEL``: unload a model from the running server."""

from __future__ import annotations

from typing import ClassVar

from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.cli.server_client import call_server


class StopCommand(PowerCommand):
    name = "stop"
    description = "Unload a model from the running server."
    arguments: ClassVar[list[Argument]] = [Argument("model", description="Model to unload.")]

    def handle(self) -> int:
        call_server(self.settings, "POST", "/power/unload", {"model": self.argument("model")})
        return 0
