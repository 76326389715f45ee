"""The plugins.md example backend, installed as a third party would, serves through the core;
without any backend the server still manages models and inference answers 503."""

from __future__ import annotations

from pathlib import Path

import requests

from conftest import PowerServer, power_cli
from lora_files import write_lora
from store.conftest import write_gguf

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "power_backend_echo" / "src"


def install_example(site: Path) -> None:
    info = site / "power_backend_echo-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: power-backend-echo\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[a3s_power]\necho = power_backend_echo\n")


def server_with_tiny_model(tmp_path: Path, disabled: str, pythonpath: str = "") -> PowerServer:
    server = PowerServer(tmp_path / "home", disable_plugins=disabled)
    if pythonpath:
        server.env["PYTHONPATH"] = pythonpath
    gguf = write_gguf(tmp_path / "tiny.gguf")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {gguf}\n")
    power_cli(server.env, "create", "tiny", "-f", str(modelfile))
    return server.start()


def test_example_backend_plugin_serves_generate(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_example(site)
    server = server_with_tiny_model(tmp_path, "llamacpp", f"{site}:{EXAMPLE_SRC}")
    try:
        assert "echo" in requests.get(server.url + "/health", timeout=5).json()["backends"]
        response = requests.post(
            server.url + "/api/generate",
            json={"model": "tiny", "prompt": "hello plugin world", "raw": True, "stream": False},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["response"] == "hello plugin world"
        assert body["done"] is True and body["eval_count"] == 3
    finally:
        server.stop()


def test_a_backend_that_cannot_apply_adapters_refuses_a_model_with_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_example(site)
    server = server_with_tiny_model(tmp_path, "llamacpp", f"{site}:{EXAMPLE_SRC}")
    try:
        model = write_gguf(tmp_path / "model.gguf", tensors={"output.weight": (4, 8)})
        lora = write_lora(tmp_path / "lora.gguf", model, targets=("output.weight",))
        (tmp_path / "Adapted").write_text(f"FROM {model}\nADAPTER {lora}\n")
        power_cli(server.env, "create", "adapted", "-f", str(tmp_path / "Adapted"))
        body = {"model": "adapted", "prompt": "hello", "raw": True, "stream": False}
        response = requests.post(server.url + "/api/generate", json=body, timeout=30)
        # run without its adapter, the model would answer as another model
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "model 'adapted:latest' has LoRA adapters, which the echo backend cannot apply"
        )
        body["model"] = "tiny"
        assert requests.post(server.url + "/api/generate", json=body, timeout=30).ok
    finally:
        server.stop()


def test_without_a_backend_models_are_managed_and_inference_is_503(tmp_path: Path) -> None:
    server = server_with_tiny_model(tmp_path, "llamacpp")
    try:
        tags = requests.get(server.url + "/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["tiny:latest"]
        response = requests.post(
            server.url + "/api/generate", json={"model": "tiny", "prompt": "hi"}, timeout=30
        )
        assert response.status_code == 503
        assert "no backend available" in response.json()["error"]
        assert "a3s-power-llamacpp" in response.json()["error"]
        response = requests.post(
            server.url + "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert response.status_code == 503
        assert "no backend available" in response.json()["error"]["message"]
    finally:
        server.stop()


def test_core_with_only_an_api_plugin_never_imports_llama_cpp(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from gevent import monkey; monkey.patch_all()\n"
        "from power_core.config import load_settings\n"
        "from power_core.plugins import get_registry\n"
        "from power_core.server.app import create_app\n"
        "from power_core.services import PowerServices\n"
        "app = create_app(PowerServices(load_settings(), get_registry()))\n"
        "assert any(r.rule.startswith('/api/') for r in app.url_map.iter_rules())\n"
        "print('llama_cpp' in sys.modules, 'power_backend_llamacpp' in sys.modules)\n"
    )
    env = PowerServer(tmp_path, disable_plugins="llamacpp,openai").env
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["False", "False"], result.stderr
