"""The base of every A3S Power command: settings, plugins and the library, loaded lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cleo.commands.command import Command
from cleo.formatters.formatter import Formatter
from cleo.io.io import IO

from power_core.config import Settings, load_settings
from power_core.errors import PowerError

if TYPE_CHECKING:
    from power_core.library import ModelLibrary
    from power_core.plugins import PluginRegistry
    from power_core.services import PowerServices


class PowerCommand(Command):
    """A cleo command that reports :class:`PowerError` as one clear line and exit status 1."""

    _settings: Settings | None = None
    _services: PowerServices | None = None
    _library: ModelLibrary | None = None

    def settings_overrides(self) -> dict[str, Any]:
        """CLI options that override configuration (``serve`` adds host and port)."""
        return {}

    @property
    def settings(self) -> Settings:
        """Configuration: CLI flag > environment > file > default."""
        if self._settings is None:
            self._settings = load_settings(self.settings_overrides())
        return self._settings

    @property
    def registry(self) -> PluginRegistry:
        """The process-wide plugin registry."""
        from power_core.plugins import get_registry

        return get_registry()

    @property
    def library(self) -> ModelLibrary:
        """The model library on the configured store (no inference engine loaded)."""
        if self._library is None:
            from power_core.stores import open_library

            self._library = open_library(self.settings, self.registry)
        return self._library

    @property
    def services(self) -> PowerServices:
        """Library, scheduler and generation, for commands that run models in-process."""
        if self._services is None:
            from power_core.services import PowerServices

            self._services = PowerServices(self.settings, self.registry)
        return self._services

    def execute(self, io: IO) -> int:
        # cleo's Command.execute turns Ctrl-C into exit status 1; the shell's is 130
        self._io = io
        try:
            return self.handle()
        except PowerError as exc:
            io.write_error_line(f"<error>Error: {Formatter.escape(exc.message)}</error>")
            return 1
        except BrokenPipeError:
            # stdout's reader left (``| head``): not a failure to report; cleo's
            # Application.run sends stdout to /dev/null and exits 0, as for its own commands
            raise
        except OSError as exc:  # the machine's refusal (a models_dir that is a file, a full
            # disk), not a bug: one line too
            io.write_error_line(f"<error>Error: {Formatter.escape(str(exc))}</error>")
            return 1
        except KeyboardInterrupt:
            io.write_error_line("")
            return 130
        finally:
            if self._services is not None:
                self._services.close()
