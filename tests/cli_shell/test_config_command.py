"""``a3s-power config`` prints a config.yaml that loads back to the settings it shows."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import power_cli, power_env
from power_core.config import Settings, load_settings


def test_its_output_pasted_into_config_yaml_gives_the_same_settings(tmp_path: Path) -> None:
    env = power_env(
        tmp_path,
        host="https://[::1]:9100/",
        keep_alive="90m",
        origins="*,https://example.org",
        api_keys="k1",
        log_level="debug",
    )
    shown = power_cli(env, "config").stdout
    assert shown.splitlines()[0] == (
        f"# {tmp_path / 'config.yaml'} (not present: defaults and environment)"
    )
    lines = shown.splitlines()
    assert "keep_alive: 1h30m" in lines
    assert "host: https://[::1]" in lines
    assert "# num_thread: (all cores)" in lines
    assert f"# home: {tmp_path}  (A3S_POWER_HOME; the folder of this file)" in lines
    assert "None" not in shown

    (tmp_path / "config.yaml").write_text(shown, encoding="utf-8")
    from_file = load_settings(environ={"A3S_POWER_HOME": str(tmp_path)})
    assert from_file == load_settings(environ=env)
    assert (from_file.host, from_file.port, from_file.keep_alive) == ("::1", 9100, 5400)
    assert power_cli(env, "config").stdout.splitlines()[0] == (
        f"# {tmp_path / 'config.yaml'} (then the environment)"
    )


def test_the_defaults_read_back_as_defaults(tmp_path: Path) -> None:
    shown = power_cli(power_env(tmp_path), "config").stdout
    written = yaml.safe_load(shown)
    assert "home" not in written and "num_thread" not in written
    (tmp_path / "config.yaml").write_text(shown, encoding="utf-8")
    assert load_settings(environ={"A3S_POWER_HOME": str(tmp_path)}) == Settings(home=tmp_path)
