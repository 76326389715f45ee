"""Routes that move model data: ``/api/pull``, ``/api/push``, ``/api/create``,
``/api/blobs/:digest``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, request

from power_api_ollama.errors import error_line, log_stream_failure
from power_api_ollama.progress import ProgressRun, progress_json
from power_api_ollama.wire import (
    json_line,
    json_response,
    model_name,
    ndjson_response,
    opt_bool,
    opt_list,
    opt_object,
    opt_str,
    wants_stream,
    wrong_type,
)
from power_core.errors import BlobNotFound, InvalidRequest
from power_core.modelfile import parse_modelfile
from power_core.server.json_body import parse_json_object
from power_core.services import PowerServices
from power_core.sources import ProgressCallback, PullProgress

#: bytes read from an upload at a time (the body is never held whole in memory)
UPLOAD_CHUNK = 1 << 20


def _progress_lines(first: PullProgress, rest: Iterator[PullProgress]) -> Iterator[bytes]:
    yield json_line(progress_json(first))
    try:
        for progress in rest:
            yield json_line(progress_json(progress))
    except Exception as exc:  # the status line is already out: report in-band, logged
        log_stream_failure(exc)
        yield error_line(exc)


def progress_response(work: Callable[[ProgressCallback], object], streaming: bool) -> Response:
    """Run ``work`` and answer with its progress: NDJSON, or only the last report.

    The first report is awaited before answering, so a request the library refuses at
    once (bad name, unknown source) gets its own status code instead of a 200 stream.
    """
    reports = iter(ProgressRun(work))
    first = next(reports, None)
    if first is None:
        first = PullProgress(status="success")
    if not streaming:
        last = first
        for report in reports:
            last = report
        return json_response(progress_json(last))
    return ndjson_response(_progress_lines(first, reports))


def _create_arguments(body: dict[str, Any]) -> dict[str, Any]:
    license_value = body.get("license")
    if license_value is not None and not (
        isinstance(license_value, str)
        or (isinstance(license_value, list) and all(isinstance(v, str) for v in license_value))
    ):
        raise wrong_type("license", "a string or strings", license_value)
    files = opt_object(body, "files")
    arguments: dict[str, Any] = {
        "from_": opt_str(body, "from") or None,
        "files": files or None,
        "template": opt_str(body, "template"),
        "system": opt_str(body, "system"),
        "parameters": opt_object(body, "parameters"),
        "license": license_value,
        "messages": opt_list(body, "messages"),
        # "quantization" is Ollama's older name for it
        "quantize": opt_str(body, "quantize") or opt_str(body, "quantization") or None,
        "adapters": opt_object(body, "adapters") or None,
    }
    modelfile = opt_str(body, "modelfile")
    if modelfile and arguments["from_"] is None and arguments["files"] is None:
        arguments.update(_legacy_modelfile(modelfile))
    return arguments


def _legacy_modelfile(text: str) -> dict[str, Any]:
    # Older clients send a Modelfile whose FROM names a model or an uploaded blob
    # (``@sha256:...``); reading files on the server's disk is not offered to clients.
    parsed = parse_modelfile(text)
    arguments: dict[str, Any] = {
        "template": parsed.template,
        "system": parsed.system,
        "parameters": parsed.parameters or None,
        "license": parsed.licenses or None,
        "messages": [{"role": r, "content": c} for r, c in parsed.messages] or None,
        "adapters": {_uploaded(text, "ADAPTER"): text[1:] for text, _ in parsed.adapters} or None,
    }
    if parsed.from_.startswith("@"):
        arguments["files"] = {"model.gguf": parsed.from_[1:]}
    elif parsed.from_.startswith(("/", ".", "~")) or parsed.from_.lower().endswith(".gguf"):
        raise _file_path_refusal("FROM", "files")
    else:
        arguments["from_"] = parsed.from_
    return arguments


def _uploaded(text: str, command: str) -> str:
    """The file name a legacy Modelfile's ``@sha256:...`` blob gets in ``adapters``."""
    if not text.startswith("@"):
        raise _file_path_refusal(command, "adapters")
    return f"{text[1:].replace(':', '-')}.gguf"


def _file_path_refusal(command: str, field: str) -> InvalidRequest:
    return InvalidRequest(
        f"{command} a file path is not supported over the API: upload the file to "
        f"/api/blobs/<digest> and create with '{field}'",
        param="modelfile",
    )


def add_transfer_routes(blueprint: Blueprint, services: PowerServices) -> None:
    """Register pull, push, create and the blob routes on ``blueprint``."""
    library = services.library

    @blueprint.post("/api/pull")
    def pull() -> Response:
        services.refuse_if_shutting_down()
        body = parse_json_object(request.get_data())
        reference = model_name(body)
        insecure = opt_bool(body, "insecure", False)
        return progress_response(
            lambda progress: library.pull(reference, progress=progress, insecure=insecure),
            wants_stream(body),
        )

    @blueprint.post("/api/push")
    def push() -> Response:
        services.refuse_if_shutting_down()
        body = parse_json_object(request.get_data())
        name = model_name(body)
        insecure = opt_bool(body, "insecure", False)
        return progress_response(
            lambda progress: library.push(name, progress=progress, insecure=insecure),
            wants_stream(body),
        )

    @blueprint.post("/api/create")
    def create() -> Response:
        services.refuse_if_shutting_down()
        body = parse_json_object(request.get_data())
        name = model_name(body)
        arguments = _create_arguments(body)
        return progress_response(
            lambda progress: library.create(name, progress=progress, **arguments),
            wants_stream(body),
        )

    @blueprint.route("/api/blobs/<digest>", methods=["HEAD"])
    def blob_exists(digest: str) -> Response:
        if not library.has_blob(digest):
            raise BlobNotFound(f"blob {digest} not found", param="digest")
        return Response(status=200)

    @blueprint.post("/api/blobs/<digest>")
    def blob_upload(digest: str) -> Response:
        if library.has_blob(digest):
            return Response(status=200)
        services.refuse_if_shutting_down()
        # A model file is far larger than any JSON body; it is streamed to disk in chunks,
        # so the server's body limit does not apply here.
        request.max_content_length = sys.maxsize
        stream = request.stream
        chunks = iter(lambda: stream.read(UPLOAD_CHUNK), b"")
        library.put_blob_stream(chunks, digest, request.content_length)
        return Response(status=201)
