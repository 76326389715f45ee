"""What a new user types first: ``a3s-power``, ``--help``, ``help``, and help on a command."""

from __future__ import annotations

import pytest
from cleo.testers.application_tester import ApplicationTester

from power_core.cli.application import create_application


def output_of(command: str) -> str:
    tester = ApplicationTester(create_application())
    assert tester.execute(command) == 0, tester.io.fetch_error()
    return tester.io.fetch_output()


@pytest.mark.parametrize("asked", ["--help", "-h", "help", "-v --help"])
def test_asking_for_help_lists_the_commands_as_a_bare_call_does(asked: str) -> None:
    listing = output_of("")
    assert "Available commands:" in listing
    assert "pull " in listing and "serve " in listing
    assert output_of(asked) == listing


@pytest.mark.parametrize("asked", ["help run", "run --help", "run -h"])
def test_help_on_a_command_explains_that_command(asked: str) -> None:
    shown = output_of(asked)
    assert "run [options] [--] <model> [<prompt>...]" in shown
    assert "Available commands:" not in shown


@pytest.mark.parametrize(
    ("alias", "command"), [("ls", "list"), ("rm", "delete"), ("start", "serve")]
)
def test_ollama_s_short_names_explain_the_same_commands(alias: str, command: str) -> None:
    assert output_of(f"help {alias}") == output_of(f"help {command}")
