"""An upload's bytes go straight into the files store's folder: no temporary file is made
for them (``/tmp`` may be memory), so a 500 MB upload is written once, to the disk."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest

from power_core.config import load_settings
from power_core.plugins import get_registry
from power_core.server.app import create_app
from power_core.services import PowerServices


def test_an_upload_makes_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A3S_POWER_HOME", str(tmp_path))
    app = create_app(PowerServices(load_settings(), get_registry()))

    def refused(*_: object, **__: object) -> None:
        raise AssertionError("a temporary file was made for the upload")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", refused)
    data = bytes(range(256)) * 8192  # 2 MiB: past what a form parser keeps in memory
    reply = app.test_client().post(
        "/v1/files",
        data={"purpose": "user_data", "file": (io.BytesIO(data), "big.bin")},
        content_type="multipart/form-data",
    )
    assert reply.status_code == 200, reply.get_data(as_text=True)
    kept = reply.get_json()
    assert (tmp_path / "files" / kept["id"]).read_bytes() == data
