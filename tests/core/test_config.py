"""Settings precedence and one-line errors for bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from power_core.config import format_duration, load_settings, parse_duration
from power_core.errors import ConfigError
from power_core.scheduler import load_options_from


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"A3S_POWER_HOME": str(home), **extra}


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(environ=env_for(tmp_path))
    assert (settings.host, settings.port) == ("127.0.0.1", 11435)
    assert settings.keep_alive == 300
    assert settings.models_path == tmp_path / "models"


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("port: 9000\nhost: 0.0.0.0\nnum_ctx: 1024\n")
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_PORT="9100"))
    assert (settings.host, settings.port, settings.num_ctx) == ("0.0.0.0", 9100, 1024)
    settings = load_settings({"port": "9200"}, environ=env_for(tmp_path, A3S_POWER_PORT="9100"))
    assert settings.port == 9200


def test_host_variable_may_carry_the_port(tmp_path: Path) -> None:
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_HOST="0.0.0.0:8080"))
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("value", "host", "port", "scheme"),
    [
        ("example.org", "example.org", 11435, "http"),
        ("0.0.0.0:8080", "0.0.0.0", 8080, "http"),
        (":11501", "127.0.0.1", 11501, "http"),
        ("http://127.0.0.1:11501", "127.0.0.1", 11501, "http"),
        ("https://proxy.example/", "proxy.example", 11435, "https"),
        ("[::1]:11501", "::1", 11501, "http"),
        ("[::1]", "::1", 11435, "http"),
        ("::1", "::1", 11435, "http"),
        ("http://[0:0::1]:9/", "::1", 9, "http"),
    ],
)
def test_host_takes_the_forms_of_ollama_host(
    tmp_path: Path, value: str, host: str, port: int, scheme: str
) -> None:
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_HOST=value))
    assert (settings.host, settings.port, settings.scheme) == (host, port, scheme)
    (tmp_path / "config.yaml").write_text(f"host: '{value}'\n")
    settings = load_settings(environ=env_for(tmp_path))
    assert (settings.host, settings.port, settings.scheme) == (host, port, scheme)


def test_a_port_set_apart_wins_over_one_in_host(tmp_path: Path) -> None:
    environ = env_for(tmp_path, A3S_POWER_HOST="[::1]:8080", A3S_POWER_PORT="9090")
    assert load_settings(environ=environ).port == 9090
    (tmp_path / "config.yaml").write_text("port: 9090\nhost: 0.0.0.0:8080\n")
    assert load_settings(environ=env_for(tmp_path)).port == 9090
    assert load_settings({"host": ":7070"}, environ=env_for(tmp_path)).port == 7070


@pytest.mark.parametrize(
    "value", ["ftp://x", "http://", "[::1", "[::1]x", "[nope]:1", "h:", "h:0", "h:65536", "a b"]
)
def test_a_bad_host_names_the_forms_accepted(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"A3S_POWER_HOST: 'host' must be a host like"):
        load_settings(environ=env_for(tmp_path, A3S_POWER_HOST=value))


def test_all_documented_fields_parse(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "models_dir: ~/elsewhere\nmax_loaded_models: 3\nkeep_alive: 1h30m\nnum_parallel: 2\n"
        "max_queue: 8\norigins: ['https://example.org']\nuse_mmap: false\n"
    )
    settings = load_settings(environ=env_for(tmp_path))
    assert settings.models_path == Path.home() / "elsewhere"
    assert settings.keep_alive == 5400
    assert settings.origins == ("https://example.org",)
    assert settings.use_mmap is False


def test_num_gpu_is_as_many_layers_as_fit_unless_configured(tmp_path: Path) -> None:
    assert load_settings(environ=env_for(tmp_path)).num_gpu == -1
    for text, layers in (("0", 0), ("12", 12), ("-1", -1), (" -5 ", -1)):
        settings = load_settings(environ=env_for(tmp_path, A3S_POWER_NUM_GPU=text))
        assert settings.num_gpu == layers
        assert load_options_from(settings, {}).num_gpu == layers
        # a request's (or a model's) own num_gpu wins
        assert load_options_from(settings, {"num_gpu": 3}).num_gpu == 3
    (tmp_path / "config.yaml").write_text("num_gpu: 20\n")
    assert load_settings(environ=env_for(tmp_path)).num_gpu == 20
    for bad in ("all", "true", "1.5", "--5"):
        (tmp_path / "config.yaml").write_text(f"num_gpu: '{bad}'\n")
        with pytest.raises(ConfigError, match="'num_gpu' must be an integer: -1 for as many"):
            load_settings(environ=env_for(tmp_path))
        (tmp_path / "config.yaml").unlink()
        with pytest.raises(ConfigError, match="variable A3S_POWER_NUM_GPU: 'num_gpu' must be an"):
            load_settings(environ=env_for(tmp_path, A3S_POWER_NUM_GPU=bad))


def test_flash_attention_is_off_unless_configured(tmp_path: Path) -> None:
    assert load_settings(environ=env_for(tmp_path)).flash_attention is False
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_FLASH_ATTENTION="true"))
    assert settings.flash_attention is True
    assert load_options_from(settings, {}).flash_attention is True
    (tmp_path / "config.yaml").write_text("flash_attention: yes please\n")
    with pytest.raises(ConfigError, match="'flash_attention' must be true or false"):
        load_settings(environ=env_for(tmp_path))


@pytest.mark.parametrize("port", ["\u00b2", "8080\u00b2", "1" * 5000])
def test_a_port_of_digits_int_cannot_read_is_explained(tmp_path: Path, port: str) -> None:
    with pytest.raises(ConfigError, match="'port' must be an integer from 1 to 65535"):
        load_settings(environ=env_for(tmp_path, A3S_POWER_PORT=port))


def test_rust_tool_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('host = "0.0.0.0"\nport = 8088\nmax_loaded_models = 5\n')
    settings = load_settings(environ=env_for(tmp_path))
    assert (settings.host, settings.port, settings.max_loaded_models) == ("0.0.0.0", 8088, 5)


def test_rust_tool_keys_without_a_counterpart_are_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "config.toml").write_text(
        'keep_alive = "1h"\nnum_thread = 3\ntee_mode = true\napi_keys = ["9f86d0"]\n'
        "[gpu]\ngpu_layers = 12\ntensor_split = [1, 1]\n"
    )
    # its api_keys are hashes: the server needs the keys themselves, or it does not start
    with pytest.raises(ConfigError, match="api_keys holds hashes of keys") as refused:
        load_settings(environ=env_for(tmp_path))
    assert "A3S_POWER_API_KEYS" in str(refused.value)
    caplog.clear()
    keyed = {**env_for(tmp_path), "A3S_POWER_API_KEYS": "secret"}
    settings = load_settings(environ=keyed)
    assert (settings.keep_alive, settings.num_thread, settings.api_keys) == (3600, 3, ("secret",))
    assert settings.num_gpu == 12  # its [gpu] gpu_layers
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert str(tmp_path / "config.toml") in warning
    assert "ignoring 'tee_mode', 'api_keys', 'gpu.tensor_split'" in warning
    assert "config.yaml" in warning
    (tmp_path / "config.toml").write_text("num_thread = 0\n")  # read keys are checked
    with pytest.raises(ConfigError, match=r"config\.toml: 'num_thread' must be a positive"):
        load_settings(environ=env_for(tmp_path))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("colour: blue\n", "unknown key 'colour'"),
        ("port: eighty\n", "'port' must be an integer from 1 to 65535"),
        ("port: 70000\n", "'port' must be an integer"),
        ("keep_alive: soon\n", "'keep_alive' must be a duration"),
        ("port: [1\n", "invalid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_file_names_file_key_and_expectation(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env_for(tmp_path))
    message = caught.value.message
    assert str(tmp_path / "config.yaml") in message
    assert needle in message
    assert "\n" not in message


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="A3S_POWER_NUM_CTX"):
        load_settings(environ=env_for(tmp_path, A3S_POWER_NUM_CTX="-5"))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300),
        ("30s", 30),
        ("1h", 3600),
        ("-1", -1),
        (120, 120),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("0", 0),
        # beyond what a Go duration (or a date) holds: forever, as a negative value
        (1e30, -1),
        (float("inf"), -1),
        (2**70, -1),
        ("9999999999999999999999999999999999d", -1),
        (9_000_000_000, 9_000_000_000),  # 285 years
        (10**400, -1),  # an int no float holds
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300.0, "5m"),
        (5400.0, "1h30m"),
        (3601.0, "1h1s"),
        (45.0, "45s"),
        (0.0, "0"),
        (0.5, "0.5s"),
        (1e-5, "0.00001s"),
        (-1.0, "-1"),
        (-5.0, "-5"),
        (9e9, "2500000h"),
    ],
)
def test_durations_are_written_as_people_write_them_and_read_back(
    seconds: float, text: str
) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["soon", "", True, None, "5 minutes", float("nan")])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_kv_cache_type_takes_ollamas_names(tmp_path: Path) -> None:
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_KV_CACHE_TYPE="Q8_0"))
    assert settings.kv_cache_type == "q8_0"
    assert load_options_from(settings, {}).kv_cache_type == "q8_0"
    assert load_settings(environ=env_for(tmp_path)).kv_cache_type == "f16"
    with pytest.raises(ConfigError, match=r"A3S_POWER_KV_CACHE_TYPE.*one of f16, q8_0, q4_0"):
        load_settings(environ=env_for(tmp_path, A3S_POWER_KV_CACHE_TYPE="q5_1"))


def test_ollama_version_is_a_release_number(tmp_path: Path) -> None:
    assert load_settings(environ=env_for(tmp_path)).ollama_version is None
    settings = load_settings(environ=env_for(tmp_path, A3S_POWER_OLLAMA_VERSION=" 0.14.2 "))
    assert settings.ollama_version == "0.14.2"
    for bad in ("latest", "0.13.0-rc1", "13", "0.13", "1.2.3.4", "\u0661.\u0662.\u0663", ""):
        with pytest.raises(ConfigError, match=r"A3S_POWER_OLLAMA_VERSION.*like 0\.13\.0"):
            load_settings(environ=env_for(tmp_path, A3S_POWER_OLLAMA_VERSION=bad))


def test_a_config_file_nested_too_deep_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(environ=env_for(tmp_path))


def test_a_models_dir_with_a_nul_character_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'models_dir' must be a path"):
        load_settings(environ=env_for(tmp_path, A3S_POWER_MODELS_DIR="/tmp/a\0b"))


def test_a_negative_int_beyond_any_float_is_forever_too() -> None:
    # -1, so that a3s-power config writes it back as a duration the file takes
    for endless in (-(10**400), float("-inf"), -1e30):
        assert parse_duration(endless) == -1.0
        assert parse_duration(format_duration(parse_duration(endless))) == -1.0


def test_a_rust_config_nested_too_deep_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("port = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(environ=env_for(tmp_path))
