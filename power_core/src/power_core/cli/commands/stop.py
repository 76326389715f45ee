"""``a3s-power stop MODEL``: unload a model from the running server."""

from __future__ import annotations

from typing import ClassVar

from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.cli.server_client import call_server


class StopCommand(PowerCommand):
    name = "stop"
    description = "Unload a model from the running server (once the requests it answers end)."
    arguments: ClassVar[list[Argument]] = [Argument("model", description="Model to unload.")]

    def handle(self) -> int:
        # the server unloads the model once the requests it is answering end: wait for them
        body = {"model": self.argument("model")}
        call_server(self.settings, "POST", "/power/unload", body, wait=None)
        return 0
