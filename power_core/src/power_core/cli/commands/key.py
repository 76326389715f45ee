"""``a3s-power key``: the public key this machine signs in to registries with."""

from __future__ import annotations

import socket

from cleo.io.outputs.output import Type as OutputType

from power_core.cli.base import PowerCommand
from power_core.registry_key import OLLAMA_KEYS_PAGE, RegistryKey, default_key_path


class KeyCommand(PowerCommand):
    name = "key"
    description = (
        "Show the public key that signs pulls and pushes in to registries (made on first "
        f"use); add it to your account to push there ({OLLAMA_KEYS_PAGE} for ollama.com)."
    )

    def handle(self) -> int:
        path = default_key_path()
        key = RegistryKey.load_or_create(path)
        # the line alone on stdout, for `a3s-power key | pbcopy`; the rest on stderr
        self.io.write_line(key.public_line, type=OutputType.RAW)
        self.io.write_error_line(
            f"The private key is {path}, its public half {path}.pub.\n"
            f"To push to ollama.com, add the key at {OLLAMA_KEYS_PAGE}, or open\n"
            f"  {key.connect_url(socket.gethostname())}\n"
            "while signed in there.",
            type=OutputType.RAW,
        )
        return 0
