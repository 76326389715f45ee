"""Blob digests: ``sha256:<64 lowercase hex>`` on the wire, ``sha256-<hex>`` on disk.

A digest becomes a file name, so it is validated here, strictly, every time.
"""

from __future__ import annotations

import re

from power_core.errors import InvalidDigest

_DIGEST = re.compile(r"sha256[:\-]([0-9a-f]{64})")
_HEX = re.compile(r"[0-9a-f]{64}")


def digest_hex(digest: str) -> str:
    """The 64 hex digits of ``sha256:<hex>`` or ``sha256-<hex>``; raises InvalidDigest."""
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        shown = digest[:80] if isinstance(digest, str) else type(digest).__name__
        raise InvalidDigest(
            f"invalid digest {shown!r}: expected 'sha256:' followed by 64 lowercase hex digits",
            param="digest",
        )
    return match.group(1)


def normalize_digest(digest: str) -> str:
    """``sha256:<hex>``, the spelling used in manifests and APIs."""
    return "sha256:" + digest_hex(digest)


def blob_file_name(digest: str) -> str:
    """``sha256-<hex>``, the blob's file name (Ollama's layout)."""
    return "sha256-" + digest_hex(digest)


def digest_from_hex(hex_digest: str) -> str:
    """``sha256:<hex>`` from bare hex (as ``hashlib`` gives it); raises InvalidDigest."""
    if not _HEX.fullmatch(hex_digest):
        raise InvalidDigest(f"invalid sha256 hex {hex_digest[:80]!r}", param="digest")
    return "sha256:" + hex_digest


def is_digest(digest: str) -> bool:
    """Whether ``digest`` is a valid ``sha256:``/``sha256-`` digest."""
    return isinstance(digest, str) and _DIGEST.fullmatch(digest) is not None
