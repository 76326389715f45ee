"""``a3s-power plugins``: installed plugins, their versions and hooks."""

from __future__ import annotations

from power_core.cli.base import PowerCommand


class PluginsCommand(PowerCommand):
    name = "plugins"
    description = "List installed plugins: distribution, version and hooks implemented."

    def handle(self) -> int:
        rows = [["PLUGIN", "DISTRIBUTION", "VERSION", "HOOKS"]]
        problems = []
        for info in self.registry.infos:
            hooks = ", ".join(info.hooks) if info.hooks else "-"
            if info.disabled:
                hooks = "(disabled by A3S_POWER_DISABLE_PLUGINS)"
            elif info.error:
                hooks = "(failed to load)"
                problems.append(f"{info.name}: {info.error}")
            rows.append([info.name, info.distribution, info.version, hooks])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.line("    ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for problem in problems:
            self.line_error(f"<warning>{problem}</warning>")
        return 0
