"""Joining a split model's parts into one blob of the store, off the server's thread.

Copying gigabytes would hold up every request the server's greenlets serve, so the parts
are joined on a native thread into a scratch file of the store (on the blobs' disk), which
then becomes the blob by a rename (:meth:`~power_core.store.base.ModelStore.keep_scratch`).
Progress is reported as ``joining 3 parts`` with the tensor bytes written, as Ollama reports
its own long steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from power_core.concurrency import EventChannel, run_on_native_thread, start_native_thread
from power_core.errors import UnsupportedFeature
from power_core.gguf import GGUFInfo
from power_core.quantize import PROGRESS_DIGEST
from power_core.sources import ProgressCallback, PullProgress
from power_core.split_models import join_parts
from power_core.store.base import ModelStore, StoredBlob
from power_core.store.local import disk_error


def join_into_store(
    store: ModelStore, paths: Sequence[Path], infos: Sequence[GGUFInfo], progress: ProgressCallback
) -> StoredBlob:
    """Join the checked parts ``paths`` (headers ``infos``) into a new blob of ``store``."""
    scratch_file = getattr(store, "scratch_file", None)
    if scratch_file is None:  # a store plugin written before scratch files existed
        raise UnsupportedFeature(
            f"the {type(store).__name__} store has no scratch files to join a split model in",
            param="from",
        )
    status = f"joining {len(paths)} parts"
    with scratch_file("join") as scratch:
        _join_on_native_thread(paths, infos, scratch, status, progress)
        # hashed, synced and renamed into the blobs off the server's thread: gigabytes
        return run_on_native_thread(lambda: store.keep_scratch(scratch), "a3s-power-keep")


def _join_on_native_thread(
    paths: Sequence[Path],
    infos: Sequence[GGUFInfo],
    destination: Path,
    status: str,
    progress: ProgressCallback,
) -> None:
    # made here, on the side that reads it: its waker belongs to this thread's hub
    reports: EventChannel[tuple[int, int]] = EventChannel()

    def work() -> None:
        try:
            with open(destination, "wb", buffering=0) as handle:
                join_parts(paths, infos, handle, lambda done, total: reports.put((done, total)))
        except BaseException as exc:  # re-raised on the waiting side
            reports.close(exc)
        else:
            reports.close()

    progress(PullProgress(status, digest=PROGRESS_DIGEST, total=0, completed=0))
    start_native_thread(work, "a3s-power-join")
    try:
        for done, total in reports:
            progress(PullProgress(status, digest=PROGRESS_DIGEST, total=total, completed=done))
    except OSError as exc:
        raise disk_error(exc, destination.parent) from exc
