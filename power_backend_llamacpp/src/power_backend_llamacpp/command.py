"""``a3s-power llamacpp``: how llama.cpp runs here, for when a model is slower than it
should be: the llama-cpp-python build, the CPU features llama.cpp uses, the default
threads, and whether weights go to the AMX buffers, and why (``--retry`` tries them again).

Imports nothing heavy at module level: every CLI start loads the plugin that registers it.
"""

from __future__ import annotations

from cleo.helpers import option

from power_core.cli.base import PowerCommand


class LlamaCppCommand(PowerCommand):
    name = "llamacpp"
    description = (
        "Show how llama.cpp runs here: its build, the CPU features it uses, its devices, "
        "and whether weights go to its AMX buffers."
    )
    options = [  # noqa: RUF012 - cleo reads this class attribute
        option(
            "retry",
            None,
            "Try llama.cpp's AMX buffers again in a child process and record the verdict.",
        )
    ]

    def handle(self) -> int:
        import importlib.metadata
        from pathlib import Path

        from power_core.errors import PowerError

        try:
            import llama_cpp
        except (ImportError, OSError, RuntimeError) as exc:  # a build that cannot load
            raise PowerError(f"llama-cpp-python cannot be imported: {exc}") from exc

        from power_backend_llamacpp import extra_buffers
        from power_backend_llamacpp.backend import default_threads

        try:
            version = importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        uses, why = extra_buffers.explain(retry=bool(self.option("retry")))
        state = {True: "on", False: "off", None: "undecided"}[uses]
        system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")
        rows = [
            ("llama-cpp-python", f"{version} ({Path(llama_cpp.__file__).parent})"),
            ("llama.cpp", " ".join(system.split())),
            ("threads", self._threads(default_threads())),
            ("AMX", "yes" if extra_buffers.cpu_has_amx() else "no"),
            ("extra buffers", f"{state}: {why}"),
            *self._devices(),
        ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.line(f"{label.ljust(width)}    {value}")
        return 0

    def _devices(self) -> list[tuple[str, str]]:
        from power_backend_llamacpp.devices import DevicesUnknown, describe, list_devices, list_gpus

        try:
            devices = "; ".join(describe(device) for device in list_devices())
            gpus = list_gpus()
        except DevicesUnknown as exc:
            return [("devices", str(exc))]
        return [("devices", devices), ("GPU offload", self._offload(bool(gpus)))]

    def _offload(self, has_gpus: bool) -> str:
        if not has_gpus:
            return "none: this llama.cpp build has no GPU backend (or sees no GPU)"
        layers = self.settings.num_gpu
        if layers < 0:
            return "as many layers as fit in the GPUs' free memory (num_gpu -1)"
        return f"{layers} layers a model (num_gpu {layers}; a model's own option can change it)"

    def _threads(self, default: int) -> str:
        configured = self.settings.num_thread
        if configured is not None:
            return f"{configured} (num_thread; a model's own option can change it)"
        return f"{default}, the usable cores (num_thread unset)"
