"""Shared fixtures: the real SmolLM2 model, temporary homes, and a real server process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tool_templates import TOOLS_TEMPLATE

DEFAULT_TEST_MODEL = Path.home() / ".cache/a3s-power/models/SmolLM2-135M-Instruct.Q4_1.gguf"
TEST_MODEL_NAME = "smollm2:135m"
# A raw prompt SmolLM2 continues greedily (temperature 0) without ever choosing its end token:
# it counts on until num_predict or the context runs out (4000 of 4000 tokens, measured). Tests
# that need a generation still running seconds later use it; prose prompts end within ~100.
ENDLESS_RAW_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


_CACHE_FOLDER = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Per-machine caches (the verdicts of llama.cpp's AMX trial) go to a folder of this
    session, inherited by every server the tests start, never to the user's; so does
    Docker's config (registry credentials), which starts empty."""
    folder = tempfile.mkdtemp(prefix="a3s-power-test-cache-")
    config.stash[_CACHE_FOLDER] = folder
    os.environ["XDG_CACHE_HOME"] = folder
    os.environ["DOCKER_CONFIG"] = os.path.join(folder, "docker")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_CACHE_FOLDER, ""), ignore_errors=True)


def raw_post(host: str, path: str, body: dict, *, close: bool = False) -> bytes:
    """The bytes of an HTTP/1.1 POST of ``body`` as JSON, for tests that drive a socket."""
    data = json.dumps(body).encode()
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        *(["Connection: close"] if close else []),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + data


def real_model_path() -> Path:
    """The real GGUF used by inference tests; the test command fetches it before pytest."""
    path = Path(os.environ.get("A3S_POWER_TEST_MODEL", str(DEFAULT_TEST_MODEL)))
    if not path.is_file():
        raise RuntimeError(
            f"test model missing at {path}: run `python3 dev.py test`, which fetches it"
        )
    return path


@pytest.fixture(scope="session")
def model_path() -> Path:
    return real_model_path()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def power_env(home: Path, **settings: str) -> dict[str, str]:
    """An environment for a3s-power subprocesses using ``home`` and the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
    env["A3S_POWER_HOME"] = str(home)
    if "A3S_POWER_TEST_MODEL" in os.environ:
        env["A3S_POWER_TEST_MODEL"] = os.environ["A3S_POWER_TEST_MODEL"]
    for key, value in settings.items():
        env[f"A3S_POWER_{key.upper()}"] = value
    return env


def power_cli(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``a3s-power ARGS`` in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "power_core.cli.application", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"a3s-power {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def import_test_model(env: dict[str, str], name: str = TEST_MODEL_NAME) -> None:
    """Import the real GGUF into the store at ``env``'s home through the CLI."""
    modelfile = Path(env["A3S_POWER_HOME"]) / f"Modelfile.{name.replace(':', '_')}"
    modelfile.parent.mkdir(parents=True, exist_ok=True)
    modelfile.write_text(f"FROM {real_model_path()}\n", encoding="utf-8")
    power_cli(env, "create", name, "-f", str(modelfile))


class PowerServer:
    """A real ``a3s-power`` server process on a free loopback port."""

    def __init__(self, home: Path, **settings: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = power_env(home, port=str(self.port), **settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> PowerServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "power_core.server.run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def active_requests(self, key: str | None = None) -> int:
        """Requests holding a loaded model now (``/power/loaded``), sent with ``key``."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        reply = requests.get(self.url + "/power/loaded", headers=headers, timeout=60)
        return sum(model["active"] for model in reply.json()["models"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serving_test_model(home: Path, **settings: str) -> Iterator[PowerServer]:
    """A started server with the SmolLM2 model imported as smollm2:135m (for fixtures)."""
    server = PowerServer(home, **settings)
    import_test_model(server.env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def power_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerServer]:
    """One real server for the API suites, with the SmolLM2 model imported as smollm2:135m."""
    home = tmp_path_factory.mktemp("power-home")
    yield from serving_test_model(home, num_ctx="2048", num_parallel="4", keep_alive="10m")


def write_f16_copy(source: Path, destination: Path) -> Path:
    """``source`` (a quantized GGUF) dequantized to an F16 GGUF at ``destination``: every
    metadata pair copied (tokenizer and chat template too), 2-D weights as F16 and the
    norms as F32, as convert_hf_to_gguf.py writes an F16 model."""
    import gguf
    import numpy as np
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(destination, str(reader.fields["general.architecture"].contents()))
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        if field.name == "general.file_type":
            writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        shape = [int(n) for n in reversed(tensor.shape)]
        values = dequantize(tensor.data, tensor.tensor_type).reshape(shape)
        writer.add_tensor(tensor.name, values.astype(np.float16 if len(shape) > 1 else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return destination


@pytest.fixture(scope="session")
def f16_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SmolLM2 test model as F16 weights (what ``create --quantize`` takes), built from
    the cached Q4_1 file in a temp folder, checked to load in llama.cpp."""
    import llama_cpp

    path = write_f16_copy(real_model_path(), tmp_path_factory.mktemp("f16") / "smollm2-f16.gguf")
    params = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    assert model, f"llama.cpp cannot load the F16 copy at {path}"
    llama_cpp.llama_model_free(model)
    return path


@pytest.fixture(scope="session")
def seeing_model(
    power_server: PowerServer, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """SmolLM2 with a tiny random projector (``tiny_projector``) on :func:`power_server`: a
    model that reads images."""
    from tiny_projector import create_seeing_model

    folder = tmp_path_factory.mktemp("projector")
    return create_seeing_model(power_server.url, model_path, folder, "seeing:latest")


@contextmanager
def model_with_template(server: PowerServer, name: str, template: str) -> Iterator[str]:
    """The test model under another chat template, as ``name``: created through the Ollama
    API, deleted afterwards."""
    created = requests.post(
        server.url + "/api/create",
        json={"model": name, "from": TEST_MODEL_NAME, "template": template, "stream": False},
        timeout=120,
    )
    assert created.status_code == 200, created.text
    try:
        yield name
    finally:
        requests.delete(server.url + "/api/delete", json={"model": name}, timeout=60)


@pytest.fixture(scope="module")
def tools_model(power_server: PowerServer) -> Iterator[str]:
    """The test model under a template that shows it tools, for the module."""
    with model_with_template(power_server, "test-tools:1", TOOLS_TEMPLATE) as name:
        yield name
