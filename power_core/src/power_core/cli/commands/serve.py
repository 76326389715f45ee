"""``a3s-power serve``: start the HTTP server."""

from __future__ import annotations

import os
import sys
from typing import Any, ClassVar

from cleo.io.inputs.option import Option

from power_core.cli.base import PowerCommand


class ServeCommand(PowerCommand):
    name = "serve"
    aliases: ClassVar[list[str]] = ["start"]  # as Ollama's
    description = "Start the A3S Power HTTP server (Ollama API under /api, OpenAI under /v1)."
    options: ClassVar[list[Option]] = [
        Option("host", description="Address to listen on.", flag=False, requires_value=True),
        Option("port", description="Port to listen on.", flag=False, requires_value=True),
    ]

    def settings_overrides(self) -> dict[str, Any]:
        return {"host": self.option("host"), "port": self.option("port")}

    def handle(self) -> int:
        settings = self.settings  # validate configuration before replacing the process
        argv = [
            sys.executable,
            "-m",
            "power_core.server.run",
            "--host",
            settings.host,
            "--port",
            str(settings.port),
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        # the server monkey-patches the standard library first thing, which only works in a
        # fresh interpreter, so this process becomes the server
        os.execv(sys.executable, argv)
        return 0  # not reached
