"""Pins keep blobs that no model references from the collector while work uses them,
from any process; a holder that is gone pins nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from power_core.store.local import LocalStore
from power_core.store.pins import pinned_digests


def test_a_pinned_blob_survives_collections_until_it_is_let_go(store: LocalStore) -> None:
    kept = store.put_blob_bytes(b"kept while pinned")
    other = store.put_blob_bytes(b"not pinned")
    with store.pinning() as pin:
        pin(kept.digest)
        assert store.gc([kept.digest, other.digest]) == [other.digest]
        hours_ago = time.time() - 2 * store.stale_seconds
        os.utime(store.blob_path(kept.digest), (hours_ago, hours_ago))
        assert store.gc() == []  # stale, but pinned
        assert store.has_blob(kept.digest)
    assert store.gc() == [kept.digest]
    assert list((store.root / "pins").iterdir()) == []


def test_a_pin_file_whose_holder_is_gone_pins_nothing(store: LocalStore) -> None:
    blob = store.put_blob_bytes(b"left by a crash")
    pins = store.root / "pins"
    pins.mkdir(parents=True)
    (pins / "dead.pin").write_text(f"{blob.digest}\n")  # nobody holds its lock
    assert pinned_digests(pins) == set()
    assert not (pins / "dead.pin").exists()
    assert store.gc([blob.digest]) == [blob.digest]


def test_another_process_sees_the_pins(store: LocalStore, tmp_path: Path) -> None:
    blob = store.put_blob_bytes(b"pinned by another process")
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from power_core.store.local import LocalStore
        store = LocalStore(Path({str(store.root)!r}))
        with store.pinning() as pin:
            pin({blob.digest!r})
            print("pinned", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "pinned"
        assert store.gc([blob.digest]) == []
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    assert store.gc([blob.digest]) == [blob.digest]
