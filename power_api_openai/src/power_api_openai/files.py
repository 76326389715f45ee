"""OpenAI's Files API: ``/v1/files`` (upload, list), ``/v1/files/{id}`` (retrieve, delete)
and ``/v1/files/{id}/content``, kept by :class:`~power_api_openai.file_store.FileStore`;
and the text of a file a request names by ``file_id`` (a chat's ``file`` part, a
response's ``input_file``): a PDF's text, or a UTF-8 text file as it is.
"""

from __future__ import annotations

import contextlib
import time
import unicodedata
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, current_app, has_app_context, request, send_file
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from power_api_openai.file_store import MAX_FILE_BYTES, FileStore, StoredFile, check_purpose
from power_api_openai.item_pages import item_page
from power_api_openai.validation import Fields
from power_core.concurrency import run_on_native_thread
from power_core.documents import pdf_text
from power_core.errors import InvalidRequest, NotFound, UnsupportedFeature

#: where the app keeps its FileStore, for requests that name files by id
EXTENSION = "power_api_openai.files"
#: the most bytes of a file a request reads by its id (OpenAI's limit on a file input)
MAX_ATTACHED_BYTES = 32 << 20
#: what ``expires_after[seconds]`` may be: an hour to 30 days (OpenAI's range)
EXPIRY_SECONDS = (3600, 2_592_000)
#: room for the multipart framing and the other fields of an upload
_FORM_OVERHEAD = 1 << 20
_MAX_LIST = 10_000


def register(blueprint: Blueprint, files: FileStore) -> None:
    """Make ``files`` the store the app's requests find files in by id."""
    blueprint.record_once(lambda state: state.app.extensions.setdefault(EXTENSION, files))


def create(files: FileStore) -> dict[str, Any]:
    """``POST /v1/files``: a ``multipart/form-data`` upload of ``file`` with ``purpose``
    (and ``expires_after[anchor]``, ``expires_after[seconds]``). The file's bytes are
    written once, aside in the store's own folder (not in a temporary file first)."""
    written: dict[int, Path] = {}  # id of each part's handle -> where it is written
    handles: list[IO[bytes]] = []

    def into_store(*_: Any, **__: Any) -> IO[bytes]:
        path, handle = files.new_upload()
        written[id(handle)] = path
        handles.append(handle)
        return handle

    try:
        try:
            _, form, uploads = parse_form_data(
                request.environ,
                stream_factory=into_store,
                max_content_length=MAX_FILE_BYTES + _FORM_OVERHEAD,
                silent=False,
            )
        except ValueError as exc:  # a body that breaks the multipart rules
            raise InvalidRequest(
                f"the upload is not valid multipart/form-data ({exc}).", param="file"
            ) from None
        for handle in handles:
            handle.close()
        return _keep_upload(files, form, uploads, written)
    finally:
        for handle in handles:
            handle.close()
        for path in written.values():  # what was not kept (a refusal, a second part)
            with contextlib.suppress(OSError):
                path.unlink()


def _keep_upload(
    files: FileStore,
    form: MultiDict[str, str],
    uploads: MultiDict[str, FileStorage],
    written: dict[int, Path],
) -> dict[str, Any]:
    upload = uploads.get("file")
    if upload is None:
        raise InvalidRequest(
            "'file' is required: upload it as multipart/form-data with a 'purpose'.",
            param="file",
        )
    purpose = check_purpose(form.get("purpose"))
    expires_at = _expires_at(form)
    filename = _file_name(upload.filename)
    aside = written.pop(id(upload.stream))
    stored = run_on_native_thread(
        lambda: files.keep(aside, filename, purpose, expires_at), "a3s-power-upload"
    )
    if stored.bytes > MAX_FILE_BYTES:  # a body without a length, read to its end
        files.delete(stored.id)
        raise RequestEntityTooLarge(
            f"The file has {stored.bytes} bytes; a file may have at most {MAX_FILE_BYTES}."
        )
    if not stored.bytes:
        files.delete(stored.id)
        raise InvalidRequest("The file is empty.", param="file")
    return stored.as_json()


def listing(files: FileStore, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/files``: ``purpose``, ``order`` (``desc``, the default, or ``asc``),
    ``after`` (a file id) and ``limit`` (1 to 10,000, all by default)."""
    purpose = Fields(query).string("purpose")
    kept = [f.as_json() for f in files.all() if purpose is None or f.purpose == purpose]
    return item_page(kept, query, "the files", most=_MAX_LIST, default_limit=_MAX_LIST)


def retrieve(files: FileStore, file_id: str) -> dict[str, Any]:
    """``GET /v1/files/{id}``."""
    return files.get(file_id).as_json()


def delete(files: FileStore, file_id: str) -> dict[str, Any]:
    """``DELETE /v1/files/{id}``."""
    files.delete(file_id)
    return {"id": file_id, "object": "file", "deleted": True}


def content(files: FileStore, file_id: str) -> Response:
    """``GET /v1/files/{id}/content``: the bytes as uploaded."""
    stored = files.get(file_id)
    try:
        handle = open(files.content_path(file_id), "rb")  # noqa: SIM115 - the response closes it
    except FileNotFoundError:  # deleted just now (another server on this home)
        raise NotFound(f"No such File object: {file_id}", param="id") from None
    return send_file(
        handle,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=stored.filename,
        max_age=0,
    )


def attached_text(file_id: str, param: str) -> str:
    """The text of the uploaded file ``file_id``, which a request attached (``param`` names
    it in errors): a PDF's text, or a UTF-8 text file's; either headed by its name."""
    stored, data = _attached(file_id, param)
    if data.startswith(b"%PDF-"):
        return pdf_text(data, param, stored.filename)
    return _plain_text(stored, data, param)


def attached_bytes(file_id: str, param: str) -> bytes:
    """The bytes of the uploaded file ``file_id`` (an image a request attached)."""
    return _attached(file_id, param)[1]


def _attached(file_id: str, param: str) -> tuple[StoredFile, bytes]:
    files = current_app.extensions.get(EXTENSION) if has_app_context() else None
    if not isinstance(files, FileStore):
        raise UnsupportedFeature("files by 'file_id' are not supported here.", param=param)
    try:
        stored = files.get(file_id)
    except NotFound:  # named in a request's body: a bad value there, as any other
        raise InvalidRequest(
            f"no file with id {file_id!r}: upload it to /v1/files first, then send its 'file_id'.",
            param=param,
        ) from None
    if stored.bytes > MAX_ATTACHED_BYTES:
        raise InvalidRequest(
            f"the file {file_id} has {stored.bytes} bytes; a request reads files of at most "
            f"{MAX_ATTACHED_BYTES}.",
            param=param,
        )
    return run_on_native_thread(lambda: files.read(file_id), "a3s-power-attached-file")


def _plain_text(stored: StoredFile, data: bytes, param: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text.strip() or "\x00" in text:
        raise UnsupportedFeature(
            f"the file {stored.id} ({stored.filename}) is neither a PDF nor UTF-8 text; "
            "those are the files a model here can read.",
            param=param,
        )
    return f"{stored.filename}\n\n{text}"


def _expires_at(form: MultiDict[str, str]) -> int | None:
    anchor = form.get("expires_after[anchor]")
    seconds = form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            "'expires_after[anchor]' must be 'created_at'.", param="expires_after.anchor"
        )
    low, high = EXPIRY_SECONDS
    if seconds is None or not seconds.isdecimal() or not low <= int(seconds) <= high:
        raise InvalidRequest(
            f"'expires_after[seconds]' must be a whole number from {low} to {high}.",
            param="expires_after.seconds",
        )
    return int(time.time()) + int(seconds)


def _file_name(name: str | None) -> str:
    """The upload's file name without any folder or control characters (a line break
    would break the header a download names it in), at most 255 characters."""
    printable = "".join(c for c in name or "" if unicodedata.category(c) != "Cc")
    base = printable.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:255] or "upload"
