"""``a3s-power config``: the resolved configuration, as a config.yaml that reads back."""

from __future__ import annotations

from cleo.io.outputs.output import Type as OutputType

from power_core.cli.base import PowerCommand
from power_core.config_text import settings_as_yaml


class ConfigCommand(PowerCommand):
    name = "config"
    description = "Show the resolved configuration (file, environment and defaults)."

    def handle(self) -> int:
        # raw: a value such as an origin "<...>" is not cleo markup
        self.io.write(settings_as_yaml(self.settings), type=OutputType.RAW)
        return 0
