"""Fixtures for the Ollama surface: the official client, raw NDJSON reads, GGUF files served
over HTTP from a local threaded server."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import ollama
import pytest
import requests

from conftest import PowerServer, real_model_path


@pytest.fixture(scope="session")
def client(power_server: PowerServer) -> ollama.Client:
    """The official Ollama client, unchanged, pointed at A3S Power."""
    return ollama.Client(host=power_server.url, timeout=300)


@pytest.fixture(scope="session")
def url(power_server: PowerServer) -> str:
    return power_server.url


NdjsonPost = Callable[[str, dict[str, Any]], tuple[requests.Response, list[dict[str, Any]]]]


def _post_ndjson(url: str, body: dict[str, Any]) -> tuple[requests.Response, list[dict[str, Any]]]:
    response = requests.post(url, json=body, stream=True, timeout=300)
    lines = []
    for raw in response.iter_lines():
        assert raw, "NDJSON streams have no blank lines"
        value = json.loads(raw)
        assert isinstance(value, dict), raw
        lines.append(value)
    return response, lines


@pytest.fixture(scope="session")
def post_ndjson() -> NdjsonPost:
    """``post_ndjson(url, body)``: POST, then read the NDJSON stream (each line one object)."""
    return _post_ndjson


def _write_tiny_gguf(path: Path, *, pooling_type: int | None = None) -> Path:
    """A complete (if useless) GGUF: enough for the store to accept it as a model; with a
    ``pooling_type``, an embedding model's."""
    writer = gguf.GGUFWriter(str(path), "llama")
    if pooling_type is not None:
        writer.add_pooling_type(gguf.PoolingType(pooling_type))
    writer.add_context_length(256)
    writer.add_embedding_length(16)
    writer.add_block_count(1)
    writer.add_file_type(1)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(32)])
    writer.add_token_types([1] * 32)
    writer.add_tensor("token_embd.weight", np.ones((32, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class GGUFServer:
    """A threaded ``http.server`` on 127.0.0.1 serving one folder; counts GETs per path.

    ``hold(path)`` makes downloads of ``path`` stop after their first bytes until
    ``release()``, so a test can start a second pull while the first is in flight.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.gets: dict[str, int] = {}
        self.held: set[str] = set()
        self.gate = threading.Event()
        self.lock = threading.Lock()
        handler = partial(_Handler, self, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def hold(self, name: str) -> None:
        self.held.add("/" + name)

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, server_state: GGUFServer, *args: Any, **kwargs: Any) -> None:
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.state.lock:
            self.state.gets[self.path] = self.state.gets.get(self.path, 0) + 1
        if self.path not in self.state.held:
            super().do_GET()
            return
        data = (self.state.folder / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:64])
        self.wfile.flush()
        self.state.gate.wait(60)
        self.wfile.write(data[64:])


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    return _write_tiny_gguf(tmp_path / "tiny.gguf")


@pytest.fixture
def tiny_embedding_gguf(tmp_path: Path) -> Path:
    return _write_tiny_gguf(tmp_path / "tiny-embedder.gguf", pooling_type=1)


@pytest.fixture
def gguf_server(tmp_path: Path) -> Iterator[GGUFServer]:
    folder = tmp_path / "served"
    folder.mkdir()
    server = GGUFServer(folder)
    yield server
    server.close()


@pytest.fixture(scope="session")
def real_gguf_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2 GGUF copied under a name of our own (never the cached original)."""
    target = tmp_path_factory.mktemp("gguf") / "ollama-pull-test.Q4_1.gguf"
    shutil.copyfile(real_model_path(), target)
    return target
