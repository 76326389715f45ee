"""``a3s-power version``."""

from __future__ import annotations

from power_core import __version__
from power_core.cli.base import PowerCommand


class VersionCommand(PowerCommand):
    name = "version"
    description = "Show the A3S Power version."

    def handle(self) -> int:
        self.line(f"a3s-power version {__version__}")
        return 0
