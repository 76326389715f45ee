"""``a3s-power delete NAME...`` (``rm``): remove models and the blobs only they used."""

from __future__ import annotations

from typing import ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import argument
from cleo.io.inputs.argument import Argument

from power_core.cli.base import PowerCommand
from power_core.cli.server_client import ServerNotRunning, ServerRefused, call_server
from power_core.errors import PowerError

#: seconds to wait for the server's unload: one waits for the requests on the model to end,
#: and goes on without us after this
UNLOAD_WAIT = 5.0


class DeleteCommand(PowerCommand):
    name = "delete"
    aliases: ClassVar[list[str]] = ["rm"]
    description = "Delete models (and the files no other model uses)."
    arguments: ClassVar[list[Argument]] = [
        argument("models", description="Models to delete", multiple=True)
    ]

    def handle(self) -> int:
        status = 0
        for name in self.argument("models"):
            try:
                self.library.delete(name)
            except PowerError as exc:
                # Keep going: one missing name should not keep the others on disk.
                self.line_error(f"<error>Error: {Formatter.escape(exc.message)}</error>")
                status = 1
                continue
            self._unload_from_server(name)
            self.line(f"deleted '{name}'")
        return status

    def _unload_from_server(self, name: str) -> None:
        """As ``ollama rm`` does: a running server that has the model loaded unloads it
        (once the requests it is answering end), rather than keep a model that is gone."""
        try:
            call_server(self.settings, "POST", "/power/unload", {"model": name}, wait=UNLOAD_WAIT)
        except ServerNotRunning:
            return  # nothing loaded anywhere
        except ServerRefused as exc:
            if exc.status != 404:  # 404: the server never had it loaded
                warning = f"Warning: unable to stop model '{name}': {exc.message}"
                self.line_error(Formatter.escape(warning))
        except PowerError:
            return  # still answering a request on it: the model goes when that ends
