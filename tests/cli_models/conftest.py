"""Fixtures for the model-management CLI tests: a temporary home and cleo's testers."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from cleo.testers.application_tester import ApplicationTester

from power_core.cli.application import create_application

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n'}}{% endfor %}"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh A3S_POWER_HOME (its store is ``home/models``)."""
    path = tmp_path / "home"
    for key in [k for k in os.environ if k.startswith("A3S_POWER_")]:
        if key != "A3S_POWER_TEST_MODEL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("A3S_POWER_HOME", str(path))
    return path


@pytest.fixture
def run(home: Path) -> Callable[..., tuple[int, str, str]]:
    """``run("list")`` -> (exit status, stdout, stderr), through cleo's ApplicationTester."""

    def execute(command: str) -> tuple[int, str, str]:
        tester = ApplicationTester(create_application())
        status = tester.execute(command)
        return status, tester.io.fetch_output(), tester.io.fetch_error()

    return execute


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Path:
    """A small, complete GGUF written by the ``gguf`` package."""
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(1024)
    writer.add_embedding_length(32)
    writer.add_file_type(7)
    writer.add_chat_template(CHATML)
    writer.add_token_list([f"t{i}" for i in range(300)])
    writer.add_tensor("token_embd.weight", np.ones((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def served_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1: (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
