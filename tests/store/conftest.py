"""Fixtures for the store tests: tiny real GGUF files, stores, libraries and a file server."""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from power_core.library import ModelLibrary
from power_core.pull.registry import RegistrySource
from power_core.pull.url import UrlSource
from power_core.store.local import LocalStore
from power_core.store.manifest import Manifest
from registry_server import QuietHTTPServer, RegistryServer

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TOOLS_TEMPLATE = "{% if tools %}{{ tools | tojson }}{% endif %}" + CHATML


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    file_type: int | None = 3,
    template: str | None = CHATML,
    vocab: int = 300,
    fim: bool = False,
    pooling: bool = False,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, tuple[int, ...]] | None = None,
) -> Path:
    """A small but complete GGUF file written by the ``gguf`` package."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(2048)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    if file_type is not None:
        writer.add_file_type(file_type)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_token_types([1] * vocab)
    if fim:
        writer.add_uint32("tokenizer.ggml.fim_pre_token_id", 5)
        writer.add_uint32("tokenizer.ggml.fim_suf_token_id", 6)
        writer.add_uint32("tokenizer.ggml.fim_mid_token_id", 7)
    if pooling:
        writer.add_uint32(f"{arch}.pooling_type", 1)
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_uint32(key, value)
    for name, shape in (tensors or {"token_embd.weight": (16, 8), "output.weight": (4, 8)}).items():
        writer.add_tensor(name, np.ones(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def make_gguf(tmp_path: Path) -> Callable[..., Path]:
    """``make_gguf(name="x.gguf", **options)`` writes a tiny GGUF in a temp folder."""
    counter = iter(range(1_000_000))

    def make(name: str | None = None, **options: Any) -> Path:
        folder = tmp_path / "ggufs"
        folder.mkdir(exist_ok=True)
        return write_gguf(folder / (name or f"model{next(counter)}.gguf"), **options)

    return make


@pytest.fixture
def tiny_gguf(make_gguf: Callable[..., Path]) -> Path:
    return make_gguf("tiny.gguf")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "models")


@pytest.fixture
def library(store: LocalStore) -> ModelLibrary:
    return ModelLibrary(store, [UrlSource()])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def assert_store_valid(root: Path) -> None:
    """Every manifest parses and points at present blobs whose bytes match their digests;
    every blob file's bytes match its name."""
    blobs = root / "blobs"
    for blob in blobs.iterdir() if blobs.is_dir() else []:
        assert re.fullmatch(r"sha256-[0-9a-f]{64}", blob.name), blob
        assert sha256_file(blob) == blob.name[7:], f"blob {blob.name} does not match its bytes"
    manifests = root / "manifests"
    for path in manifests.rglob("*") if manifests.is_dir() else []:
        if path.is_file():
            manifest = Manifest.from_bytes(path.read_bytes(), str(path))
            for layer in [manifest.config, *manifest.layers]:
                blob = blobs / ("sha256-" + layer.digest[7:])
                assert blob.is_file(), f"{path} references missing {layer.digest}"
                assert blob.stat().st_size == layer.size


@pytest.fixture
def check_store() -> Callable[[Path], None]:
    """``check_store(models_dir)`` asserts the store is valid (see :func:`assert_store_valid`)."""
    return assert_store_valid


# ----------------------------------------------------------------------------- file server


@dataclass
class ServedFile:
    data: bytes
    ranges: bool = True
    etag: str = '"v1"'
    #: bytes per write, and a pause after each (to make a download slow)
    chunk: int = 64 << 10
    delay: float = 0.0
    #: the next ``drops`` responses stop after ``drop_after`` bytes of the file
    drop_after: int | None = None
    drops: int = 0
    content_type: str = "application/octet-stream"
    #: once ``gate_after`` bytes are sent, wait for ``gate`` to be set before the rest
    gate: threading.Event | None = None
    gate_after: int = 0
    #: send the body gzip-compressed (``Content-Encoding: gzip``), ignoring Range
    gzip: bool = False
    #: send the body with ``Transfer-Encoding: chunked`` and no ``Content-Length``
    chunked: bool = False
    #: answer a Range request with a range even when If-Range names another version
    ignores_if_range: bool = False
    #: answer every request with a 302 to this address
    redirect_to: str | None = None
    #: send the ETag with a 206 too (a server may send it only with the whole file)
    etag_on_partial: bool = True


@dataclass
class FileServer:
    """A threaded HTTP server on 127.0.0.1 serving in-memory files, logging requests."""

    files: dict[str, ServedFile] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    #: the paths asked for with HEAD (not in :attr:`requests`, which are the GETs)
    heads: list[str] = field(default_factory=list)
    port: int = 0

    def add(self, path: str, data: bytes, **options: Any) -> ServedFile:
        """Serve ``data`` at ``path`` (options: see :class:`ServedFile`)."""
        served = ServedFile(data=data, **options)
        self.files[path] = served
        return served

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> list[tuple[dict[str, str], int]]:
        return [(headers, status) for p, headers, status in self.requests if p == path]


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            served = server.files.get(self.path)
            server.heads.append(self.path)
            self.send_response(404 if served is None else 200)
            if served is not None:
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(served.data)))
                if served.etag:
                    self.send_header("ETag", served.etag)
            else:
                self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            served = server.files.get(self.path)
            headers = {k: v for k, v in self.headers.items()}
            if served is None:
                server.requests.append((self.path, headers, 404))
                body = b"not found"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if served.redirect_to is not None:
                server.requests.append((self.path, headers, 302))
                self.send_response(302)
                self.send_header("Location", served.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if served.gzip or served.chunked:
                self._send_encoded(served, headers)
                return
            data, start, status = served.data, 0, 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if (
                wanted
                and served.ranges
                and (if_range is None or if_range == served.etag or served.ignores_if_range)
            ):
                match = re.fullmatch(r"bytes=(\d+)-", wanted)
                assert match is not None
                start = int(match.group(1))
                if start >= len(data):
                    server.requests.append((self.path, headers, 416))
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            server.requests.append((self.path, headers, status))
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Type", served.content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 200 or served.etag_on_partial:
                self.send_header("ETag", served.etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            limit = len(body)
            if served.drops > 0 and served.drop_after is not None:
                served.drops -= 1
                limit = max(0, served.drop_after - start)
            sent = 0
            try:
                while sent < limit:
                    if served.gate is not None and sent >= served.gate_after:
                        served.gate.wait(60)
                    piece = body[sent : min(limit, sent + served.chunk)]
                    self.wfile.write(piece)
                    self.wfile.flush()
                    sent += len(piece)
                    if served.delay:
                        time.sleep(served.delay)
            except (BrokenPipeError, ConnectionResetError):
                return
            if limit < len(body):
                # Break the transfer mid-body: the client sees a short read.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def _send_encoded(self, served: ServedFile, headers: dict[str, str]) -> None:
            server.requests.append((self.path, headers, 200))
            body = gzip.compress(served.data) if served.gzip else served.data
            self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            if served.gzip:
                self.send_header("Content-Encoding", "gzip")
            if served.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for start in range(0, len(body), served.chunk):
                piece = body[start : start + served.chunk]
                if served.chunked:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
            if served.chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    # a pull that refuses a download hangs up: not an error to print
    httpd = QuietHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------- registry


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    """A local registry speaking Ollama's (Docker registry v2) protocol, pulls and pushes."""
    server = RegistryServer()
    yield server
    server.close()


@pytest.fixture
def puller(store: LocalStore) -> ModelLibrary:
    """A library that pulls (and pushes) by URL and by model name."""
    return ModelLibrary(store, [UrlSource(), RegistrySource()])
