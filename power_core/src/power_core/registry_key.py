"""The key this machine signs in to registries with, as Ollama's ``~/.ollama/id_ed25519``.

Ollama's registry (ollama.com) knows a user by the public halves of Ed25519 keys added to
their account; a client proves it holds one by signing its token requests
(:mod:`power_core.pull.registry_auth`). The key is an OpenSSH private key file,
``<home>/id_ed25519`` with its public half beside it in ``id_ed25519.pub``, made on first
use. An Ollama key already added to an account serves as well: copy ``~/.ollama/id_ed25519``
over it.

``cryptography`` does the Ed25519 work; it is imported only when a key is read or made.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from power_core.config import power_home
from power_core.errors import PowerError

KEY_FILE_NAME = "id_ed25519"
#: where ollama.com users add public keys
OLLAMA_KEYS_PAGE = "https://ollama.com/settings/keys"
#: the page that adds a machine's key to the signed-in ollama.com account (``ollama signin``)
OLLAMA_CONNECT_PAGE = "https://ollama.com/connect"


class RegistryKeyError(PowerError):
    """The key file exists but cannot be used (it is never replaced)."""


def default_key_path() -> Path:
    """``<home>/id_ed25519``, ``<home>`` being ``A3S_POWER_HOME`` or ``~/.a3s/power``."""
    return power_home() / KEY_FILE_NAME


class RegistryKey:
    """An Ed25519 private key read from (or made at) ``path``."""

    def __init__(self, path: Path, private_key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self.path = path
        self._private_key = private_key
        #: the ``authorized_keys`` line: ``ssh-ed25519 AAAA...``
        self.public_line = (
            private_key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode("ascii")
        )

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> RegistryKey:
        """The key at ``path`` (default :func:`default_key_path`), made there if absent."""
        path = path if path is not None else default_key_path()
        try:
            key = cls._load(path)
        except FileNotFoundError:
            _write_new_key(path)  # a key another process wrote meanwhile is kept
            key = cls._load(path)
        key._write_public_half()
        return key

    def _write_public_half(self) -> None:
        """``<key>.pub``, unless it holds this key already: a key copied in (Ollama's)
        comes without one, or with another's."""
        public = Path(f"{self.path}.pub")
        line = self.public_line + "\n"
        try:
            if public.read_text() == line:
                return
        except (OSError, UnicodeDecodeError):
            pass
        with contextlib.suppress(OSError):  # a folder one may read but not write
            public.write_text(line)

    @classmethod
    def _load(cls, path: Path) -> RegistryKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        data = path.read_bytes()  # FileNotFoundError: the caller makes one
        try:
            key = serialization.load_ssh_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            # TypeError: a key protected by a passphrase, which no one is here to type
            raise RegistryKeyError(
                f"cannot use the registry key {path}: {exc} (it must be an unencrypted "
                "OpenSSH Ed25519 private key; move it away to have a new one made)"
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise RegistryKeyError(f"cannot use the registry key {path}: it is not an Ed25519 key")
        return cls(path, key)

    def connect_url(self, machine: str) -> str:
        """The ollama.com page that adds this key to the account signed in there, named
        ``machine``, as ``ollama signin`` opens it."""
        key = base64.urlsafe_b64encode(self.public_line.encode()).rstrip(b"=").decode()
        return f"{OLLAMA_CONNECT_PAGE}?name={quote(machine, safe='')}&key={key}"

    def sign(self, data: bytes) -> str:
        """``<public key>:<signature>`` for an ``Authorization`` header, as Ollama writes
        it: the key's SSH wire form and the raw Ed25519 signature, each in base64."""
        signature = self._private_key.sign(data)
        wire_form = self.public_line.split()[1]
        return f"{wire_form}:{base64.b64encode(signature).decode('ascii')}"


def _write_new_key(path: Path) -> None:
    """A new key at ``path`` (readable by its owner only); never replaces a file: linked
    into place, which fails when one is there."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".id_ed25519-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:  # mkstemp made it 0600
            out.write(private)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links (vfat, some network mounts)
            _create_exclusively(path, private)
    finally:
        os.unlink(temporary)


def _create_exclusively(path: Path, private: bytes) -> None:
    """Write ``private`` to a new file at ``path`` (0600); nothing if one is there."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(handle, "wb") as out:
        out.write(private)
        out.flush()
        os.fsync(out.fileno())
