"""The core's own routes and rules on a real server process (no model needed)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import PowerServer
from power_core.server.json_body import parse_json_object


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    server = PowerServer(
        tmp_path_factory.mktemp("bare-home"),
        origins="https://trusted.example",
        ollama_version="0.14.2",
    )
    server.start()
    yield server
    server.stop()


def test_root_says_running_for_get_and_head(bare_server: PowerServer) -> None:
    response = requests.get(bare_server.url + "/", timeout=5)
    # Ollama's exact words: clients compare them to tell that the server is up
    assert response.status_code == 200 and response.text == "Ollama is running"
    head = requests.head(bare_server.url + "/", timeout=5)
    assert head.status_code == 200 and head.text == ""


def test_the_address_is_announced_once(bare_server: PowerServer) -> None:
    announced = [line for line in bare_server.log().splitlines() if "listening on" in line]
    assert announced == [f"A3S Power listening on {bare_server.url}"]


def test_health_reports_backends_and_api_surfaces(bare_server: PowerServer) -> None:
    body = requests.get(bare_server.url + "/health", timeout=5).json()
    assert body["status"] == "ok"
    assert isinstance(body["backends"], list)
    # the installed surfaces: `run` chats through a server that has Ollama's
    assert {"ollama", "openai"} <= set(body["apis"])
    assert body["loaded_models"] == []


def test_configured_ollama_version_is_reported(bare_server: PowerServer) -> None:
    response = requests.get(bare_server.url + "/api/version", timeout=5)
    assert response.json() == {"version": "0.14.2"}


def test_unknown_route_is_a_json_404(bare_server: PowerServer) -> None:
    response = requests.get(bare_server.url + "/no/such/route", timeout=5)
    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b"null", "must be a JSON object, not null"),  # was "not NoneType"
        (b'"x"', "must be a JSON object, not a string"),
        (b"[" * 50_000 + b"]" * 50_000, "nested"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper"),
        (b"", "empty"),
        (b'{"model": 5}', "'model' must be a string"),  # was "'model' is required"
    ],
)
def test_bad_bodies_are_400_not_500(bare_server: PowerServer, body: bytes, needle: str) -> None:
    response = requests.post(
        bare_server.url + "/power/unload",
        data=body,
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]


def test_files_beside_the_server_are_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flask's default static route served <working directory>/static/ to any client
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "notes.txt").write_text("private", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    server = PowerServer(tmp_path / "home").start()
    try:
        response = requests.get(server.url + "/static/notes.txt", timeout=5)
        assert response.status_code == 404
        assert "private" not in response.text and "error" in response.json()
    finally:
        server.stop()


def test_oversized_body_is_413(tmp_path: Path) -> None:
    server = PowerServer(tmp_path, max_body_bytes="1000").start()
    try:
        response = requests.post(server.url + "/power/unload", data=b"x" * 5000, timeout=5)
        assert response.status_code == 413
    finally:
        server.stop()


def test_cors_allows_localhost_and_configured_origins_only(bare_server: PowerServer) -> None:
    def allowed(origin: str) -> str | None:
        response = requests.options(
            bare_server.url + "/health",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
            timeout=5,
        )
        return response.headers.get("Access-Control-Allow-Origin")

    assert allowed("http://localhost:3000") == "http://localhost:3000"
    assert allowed("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert allowed("https://trusted.example") == "https://trusted.example"
    assert allowed("https://evil.example") is None


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    server = PowerServer(tmp_path).start()
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    assert "shutting down" in server.log()


def test_port_in_use_is_one_clear_line(bare_server: PowerServer, tmp_path: Path) -> None:
    server = PowerServer(tmp_path)
    server.port = bare_server.port
    server.env["A3S_POWER_PORT"] = str(bare_server.port)
    with pytest.raises(RuntimeError) as caught:
        server.start(timeout=20)
    assert "cannot listen on" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_invalid_config_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("port: lots\n")
    server = PowerServer(tmp_path)
    server.env.pop("A3S_POWER_PORT")
    with pytest.raises(RuntimeError) as caught:
        server.start(timeout=20)
    assert "'port' must be an integer" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_lone_surrogate_escapes_read_as_replacement_characters() -> None:
    body = parse_json_object(b'{"a\\ud800": ["x\\udc00y", {"k": "\\ud83d\\ude00"}]}')
    # a whole pair stays the character it spells
    assert body == {"a\ufffd": ["x\ufffdy", {"k": "\U0001f600"}]}
