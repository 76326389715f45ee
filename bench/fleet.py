"""The servers of one run: started on first use, shared by the benchmarks, stopped together."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.noise import CpuMeter, settle
from bench.servers import (
    LCPP_PYTHON,
    LLAMA_SERVER_BUILT,
    BenchConfig,
    LlamaCppPythonServer,
    LlamaServer,
    PowerServer,
    ServerProcess,
    find_lcpp_python,
    find_llama_server,
)


@dataclass
class Fleet:
    """Servers started on first use and stopped together; shared by the benchmarks of one run."""

    config: BenchConfig
    started: dict[str, ServerProcess] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    _baseline: Any = None

    def _get(self, key: str, factory: Any, *, optional: bool = False) -> ServerProcess | None:
        """The server under ``key``, started on first use; an ``optional`` one that fails to
        start is recorded as missing instead of ending the run."""
        if key in self.started:
            return self.started[key]
        if key in self.missing:
            return None
        server = factory()
        if server is None:
            return None
        print(f"  starting {server.label} on {server.url} ...", flush=True)
        try:
            server.start()
        except RuntimeError as exc:
            if not optional:
                raise
            self.missing[key] = f"{server.label} did not start: {exc}"
            print(f"  {self.missing[key]}", flush=True)
            return None
        self.started[key] = server
        return server

    def power(self) -> PowerServer:
        server = self._get("power", lambda: PowerServer(self.config))
        assert isinstance(server, PowerServer)
        return server

    def power_flash_attention(self) -> PowerServer:
        """Ours with flash attention on, as ``llama-server`` runs by default on a CPU."""
        server = self._get(
            "power-flash-attention", lambda: PowerServer(self.config, flash_attention=True)
        )
        assert isinstance(server, PowerServer)
        return server

    def power_with_context(self, num_ctx: int) -> PowerServer:
        """Ours with ``num_ctx`` tokens of context a sequence (the run's server when it is
        the run's context)."""
        if num_ctx == self.config.num_ctx:
            return self.power()
        config = replace(self.config, num_ctx=num_ctx)
        server = self._get(f"power-ctx-{num_ctx}", lambda: PowerServer(config, tag=f"ctx{num_ctx}"))
        assert isinstance(server, PowerServer)
        return server

    def lcpp(self) -> LlamaCppPythonServer | None:
        def make() -> LlamaCppPythonServer | None:
            python = find_lcpp_python()
            if python is None:
                self.missing["lcpp"] = f"no llama-cpp-python[server] venv at {LCPP_PYTHON}"
                return None
            return LlamaCppPythonServer(self.config, python)

        server = self._get("lcpp", make)
        return server if isinstance(server, LlamaCppPythonServer) else None

    def llama_server(self) -> LlamaServer | None:
        def make() -> LlamaServer | None:
            binary = find_llama_server()
            if binary is None:
                self.missing["llama-server"] = (
                    f"no llama-server binary ($LLAMA_SERVER, PATH, {LLAMA_SERVER_BUILT})"
                )
                return None
            return LlamaServer(self.config, binary)

        server = self._get("llama-server", make)
        return server if isinstance(server, LlamaServer) else None

    def llama_server_without_flash_attention(self) -> LlamaServer | None:
        """``llama-server -fa off``: the attention kernels ours runs by default."""

        def make() -> LlamaServer | None:
            binary = find_llama_server()
            if binary is None:
                return None
            return LlamaServer(self.config, binary, flash_attention=False)

        # optional: a llama-server older than `-fa on|off|auto` refuses the flag
        server = self._get("llama-server-no-flash-attention", make, optional=True)
        return server if isinstance(server, LlamaServer) else None

    def llama_server_unified_cache(self) -> LlamaServer | None:
        """``llama-server --kv-unified``: one KV stream for all slots (its default, one per
        slot, decodes sequences that are not neighbours in separate passes)."""

        def make() -> LlamaServer | None:
            binary = find_llama_server()
            if binary is None:
                return None
            return LlamaServer(self.config, binary, unified_cache=True)

        # optional: a llama-server older than `--kv-unified` refuses the flag
        server = self._get("llama-server-kv-unified", make, optional=True)
        return server if isinstance(server, LlamaServer) else None

    def llama_server_reading_images(self, projector: Path) -> LlamaServer | None:
        """``llama-server -fa off --mmproj``: images read with ``projector``, attention
        kernels as ours."""

        def make() -> LlamaServer | None:
            binary = find_llama_server()
            if binary is None:
                return None
            return LlamaServer(self.config, binary, flash_attention=False, projector=projector)

        server = self._get("llama-server-mmproj", make, optional=True)
        return server if isinstance(server, LlamaServer) else None

    def llama_server_embeddings(self, num_ctx: int) -> LlamaServer | None:
        """``llama-server --embeddings --pooling mean``, ``num_ctx`` cells a slot."""

        def make() -> LlamaServer | None:
            binary = find_llama_server()
            if binary is None:
                return None
            config = replace(self.config, num_ctx=num_ctx)
            return LlamaServer(config, binary, embeddings=True, tag=f"ctx{num_ctx}")

        server = self._get(f"llama-server-embeddings-{num_ctx}", make, optional=True)
        return server if isinstance(server, LlamaServer) else None

    def llama_server_available(self) -> bool:
        """True when llama-server runs, or can be found to start."""
        return "llama-server" in self.started or (
            "llama-server" not in self.missing and find_llama_server() is not None
        )

    def baseline(self) -> Any:
        """The in-process llama-cpp-python worker (see :mod:`bench.inprocess`)."""
        if self._baseline is None:
            from bench.inprocess import InProcessBaseline

            print("  starting the in-process llama-cpp-python baseline ...", flush=True)
            self._baseline = InProcessBaseline(self.config)
        return self._baseline

    def pids(self) -> list[int]:
        """The processes under test: servers and the in-process worker."""
        pids = [pid for s in self.started.values() if (pid := s.pid()) is not None]
        if self._baseline is not None:
            pids.append(self._baseline.process.pid)
        return pids

    @property
    def meter(self) -> CpuMeter:
        """Measures how busy everything else on the machine was during a sample."""
        return CpuMeter(self.pids)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"config": self.config.as_dict(), "missing": dict(self.missing)}
        for key, server in self.started.items():
            entry: dict[str, Any] = {"url": server.url, "command": server.command()}
            if isinstance(server, LlamaServer):
                entry["version"] = server.version()
            info[key] = entry
        return info

    def close(self) -> None:
        if self._baseline is not None:
            self._baseline.close()
            self._baseline = None
        for server in reversed(list(self.started.values())):
            server.stop()
        self.started.clear()


def quiet_pause(fleet: Fleet | None = None, max_wait: float = 20.0) -> None:
    """Before a sample: let the previous target's threads go idle and, with a fleet, wait
    (bounded) for the rest of the machine to be quiet too."""
    if fleet is None:
        time.sleep(0.5)
    else:
        settle(fleet.pids, max_wait=max_wait)
