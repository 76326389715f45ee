"""An upload's bytes go straight into the files store's folder: no temporary file is made
for them (``/tmp`` may be memory), so a 500 MB upload is written once, to the disk."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from flask import Flask

from power_core.config import load_settings
from power_core.plugins import get_registry
from power_core.server.app import create_app
from power_core.services import PowerServices


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The server's app on a home of its own (no model needed: files only)."""
    monkeypatch.setenv("A3S_POWER_HOME", str(tmp_path))
    return create_app(PowerServices(load_settings(), get_registry()))


def test_an_upload_makes_no_temporary_file(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

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


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
            "multipart/form-data; boundary=x",
            "not valid multipart",
        ),
        (b"garbage", "multipart/form-data; boundary=x", "not valid multipart"),
        (b"garbage", "multipart/form-data", "not valid multipart"),
        (b'{"purpose": "user_data"}', "application/json", "'file' is required"),
    ],
    ids=["cut-short", "no-parts", "no-boundary", "json"],
)
def test_a_broken_upload_is_a_400_that_leaves_nothing(
    app: Flask, tmp_path: Path, body: bytes, content_type: str, says: str
) -> None:
    reply = app.test_client().post("/v1/files", data=body, content_type=content_type)
    assert reply.status_code == 400
    error = reply.get_json()["error"]
    assert says in error["message"] and error["param"] == "file"
    files = tmp_path / "files"
    assert not files.exists() or list(files.iterdir()) == []
