"""``a3s-power llamacpp``, the llama.cpp plugin's command: the build, the CPU, and whether
weights go to the AMX buffers and why, through the real CLI."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from conftest import power_cli, power_env
from power_backend_llamacpp.extra_buffers import cpu_has_amx


def extra_buffers_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("extra buffers")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("extra buffers").strip()


def test_it_shows_the_build_and_the_cpu(tmp_path: Path) -> None:
    env = dict(power_env(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    output = power_cli(env, "llamacpp").stdout
    version = importlib.metadata.version("llama-cpp-python")
    assert f"llama-cpp-python    {version} (" in output
    assert "CPU :" in output  # llama.cpp's own system info
    assert ("AMX                 yes" in output) == cpu_has_amx()


def test_it_tells_whether_weights_go_to_the_amx_buffers(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = dict(power_env(tmp_path / "home"), XDG_CACHE_HOME=str(cache))
    verdicts = cache / "a3s-power" / "llamacpp-extra-buffers.json"
    if not cpu_has_amx():
        assert extra_buffers_line(power_cli(env, "llamacpp").stdout) == (
            "on: no AMX on this CPU, nothing to try"
        )
        return
    # this project's VM has AMX; dev.py's build passes the trial
    assert extra_buffers_line(power_cli(env, "llamacpp").stdout) == (
        "undecided: not tried yet for this build: the first model load tries them"
    )
    assert not verdicts.exists()  # looking does not try
    assert extra_buffers_line(power_cli(env, "llamacpp", "--retry").stdout) == (
        "on: same logits with and without them (tried now, recorded)"
    )
    (recorded,) = json.loads(verdicts.read_text()).values()
    assert recorded["works"] is True
    shown = extra_buffers_line(power_cli(env, "llamacpp").stdout)
    assert shown.startswith("on: same logits with and without them (tried ")
    assert shown.endswith(f"; {verdicts})")


def test_the_environment_setting_is_shown(tmp_path: Path) -> None:
    env = dict(
        power_env(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        A3S_POWER_LLAMACPP_EXTRA_BUFFERS="0",
    )
    assert extra_buffers_line(power_cli(env, "llamacpp").stdout) == (
        "off: A3S_POWER_LLAMACPP_EXTRA_BUFFERS=0"
    )
    assert extra_buffers_line(power_cli(env, "llamacpp", "--retry").stdout) == (
        "off: A3S_POWER_LLAMACPP_EXTRA_BUFFERS=0 (no trial: nothing to retry)"
    )


def test_it_shows_the_configured_threads(tmp_path: Path) -> None:
    env = dict(power_env(tmp_path / "home", num_thread="3"), XDG_CACHE_HOME=str(tmp_path))
    assert "threads             3 (num_thread;" in power_cli(env, "llamacpp").stdout
