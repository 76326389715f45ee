"""Plugin discovery through entry points, exactly as a third-party distribution registers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import power_cli, power_env
from power_core.errors import PluginError
from power_core.plugins import PluginRegistry


def make_distribution(site: Path, name: str, module_source: str, group_entries: str) -> None:
    """A minimal installed distribution: a module plus dist-info with entry points."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[a3s_power]\n{group_entries}\n")


GOOD_PLUGIN = """
    from power_core.hookspecs import hookimpl
    from cleo.commands.command import Command

    class HelloCommand(Command):
        name = "hello"
        description = "Say hello from a plugin."
        def handle(self):
            self.line("hello from a plugin")
            return 0

    @hookimpl
    def register_commands(register):
        register(HelloCommand)
"""


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"


def env_with(site: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = power_env(tmp_path / "home")
    env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def test_third_party_plugin_is_listed_and_its_command_runs(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "power_hello", GOOD_PLUGIN, "hello = power_hello")
    env = env_with(site, tmp_path)
    listing = power_cli(env, "plugins").stdout
    row = next(line for line in listing.splitlines() if line.startswith("hello "))
    assert "power_hello" in row and "1.2.3" in row and "register_commands" in row
    # the first-party defaults register through the same group
    assert "local_store" in listing and "url_source" in listing
    assert power_cli(env, "hello").stdout.strip() == "hello from a plugin"


def test_disabled_plugin_is_not_loaded(site: Path, tmp_path: Path) -> None:
    make_distribution(site, "power_hello", GOOD_PLUGIN, "hello = power_hello")
    env = env_with(site, tmp_path, A3S_POWER_DISABLE_PLUGINS="hello")
    assert "disabled" in power_cli(env, "plugins").stdout
    result = power_cli(env, "hello", check=False)
    assert result.returncode != 0


def test_broken_plugins_are_reported_by_name_and_do_not_take_the_cli_down(
    site: Path, tmp_path: Path
) -> None:
    make_distribution(
        site, "power_broken", "import no_such_module_anywhere\n", "broken = power_broken"
    )
    make_distribution(
        site,
        "power_misspelt",
        """
        from power_core.hookspecs import hookimpl
        @hookimpl
        def register_backendz(register):
            pass
        """,
        "misspelt = power_misspelt",
    )
    env = env_with(site, tmp_path)
    result = power_cli(env, "plugins")
    assert "broken" in result.stdout and "failed to load" in result.stdout
    assert "no_such_module_anywhere" in result.stderr
    assert "misspelt" in result.stdout and "register_backendz" in result.stderr
    assert power_cli(env, "version").stdout.startswith("a3s-power version")


def test_duplicate_names_are_rejected_naming_both_plugins() -> None:
    import types

    from power_core.hookspecs import hookimpl

    def backend_module(module_name: str) -> types.ModuleType:
        module = types.ModuleType(module_name)

        class Backend:
            name = "same"

            def supports(self, model_format: str) -> bool:
                return False

        @hookimpl
        def register_backends(register):  # type: ignore[no-untyped-def]
            register(Backend())

        module.register_backends = register_backends  # type: ignore[attr-defined]
        return module

    registry = PluginRegistry.discover(
        extra_modules=[backend_module("first_plugin"), backend_module("second_plugin")],
        autoload=False,
    )
    with pytest.raises(PluginError) as caught:
        registry.backends()
    assert "first_plugin" in caught.value.message and "second_plugin" in caught.value.message
