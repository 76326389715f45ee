"""``a3s-power config``: the resolved configuration and where it came from."""

from __future__ import annotations

from power_core.cli.base import PowerCommand
from power_core.config import settings_as_dict


class ConfigCommand(PowerCommand):
    name = "config"
    description = "Show the resolved configuration (file, environment and defaults)."

    def handle(self) -> int:
        self.line(f"# {self.settings.config_path}")
        for key, value in settings_as_dict(self.settings).items():
            if isinstance(value, tuple):
                value = list(value)
            self.line(f"{key}: {value}")
        return 0
