"""``A3S_POWER_HOST`` in the forms Ollama users give ``OLLAMA_HOST``: where ``serve`` listens
and where ``ps``, ``stop`` and the others connect."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import free_port, power_cli, power_env


@pytest.fixture(scope="module")
def served_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``a3s-power serve`` with ``A3S_POWER_HOST=[::]:PORT``: every address, both families."""
    port = free_port()
    home = tmp_path_factory.mktemp("host-home")
    env = power_env(home, host=f"[::]:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "power_core.cli.application", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"http://[::1]:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"a3s-power serve did not listen on [::]:{port}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:{port}",
        "http://127.0.0.1:{port}/",
        "127.0.0.1:{port}",
        "localhost:{port}",
        ":{port}",
        "[::1]:{port}",
        "http://[::1]:{port}",
    ],
)
def test_client_commands_connect_where_the_variable_says(
    served_port: int, tmp_path: Path, host: str
) -> None:
    env = power_env(tmp_path, host=host.format(port=served_port))
    result = power_cli(env, "ps", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["NAME", "ID"]


@pytest.mark.parametrize("host", ["ftp://127.0.0.1:1", "[::1", "127.0.0.1:port", "a host"])
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path: Path, host: str) -> None:
    result = power_cli(power_env(tmp_path, host=host), "ps", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: environment variable A3S_POWER_HOST: ")
    assert repr(host) in result.stderr
