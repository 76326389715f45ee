"""Run ``llama_cpp.server`` with llama.cpp's extra CPU weight buffers on or off.

Run by the peer venv's Python as a plain script (it imports nothing from ``bench``):
``python lcpp_server_shim.py --no-extra-buffers -- <llama_cpp.server arguments>``.
llama-cpp-python has no switch for ``use_extra_bufts``; where our backend runs without
them (a llama.cpp whose AMX kernels failed its trial), every peer must run the same way.
"""

from __future__ import annotations

import runpy
import sys


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--") if "--" in args else len(args)
    flags, server_args = args[:split], args[split + 1 :]
    if "--no-extra-buffers" in flags:
        import llama_cpp.llama_cpp as native

        default_params = native.llama_model_default_params

        def without_extra_buffers():  # type: ignore[no-untyped-def]
            params = default_params()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers
    sys.argv = ["llama_cpp.server", *server_args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
