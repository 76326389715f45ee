"""A local Ollama-style registry for pull and push tests: the Docker registry v2 routes
that Ollama's registry serves, with its habit of redirecting blob requests to separate
storage, and the upload routes a push uses (``HEAD`` a blob, ``POST`` an upload, ``PUT``
its bytes with their digest, ``PUT`` the manifest)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_MANIFEST = re.compile(r"/v2/([^/]+)/([^/]+)/manifests/([^/]+)")
_BLOB = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})")
_STORAGE = re.compile(r"/storage/(sha256:[0-9a-f]{64})")
_UPLOADS = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/uploads/")
_UPLOAD = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/uploads/([0-9a-f]{32})\?_state=x&digest=(.*)")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryServer:
    """Serves models added with :meth:`add_model`; counts requests per path."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.manifests: dict[tuple[str, str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.accept_headers: list[str] = []
        #: (method, path) of every HEAD, POST and PUT, in order
        self.writes: list[tuple[str, str]] = []
        #: answer uploads with 401, as a registry that wants signing in does
        self.refuse_uploads = False
        self._uploads: set[str] = set()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests[self.path] += 1
                if match := _MANIFEST.fullmatch(self.path):
                    registry.accept_headers.append(self.headers.get("Accept", ""))
                    body = registry.manifests.get(match.groups())  # type: ignore[call-overload]
                    self._send(body, MANIFEST_TYPE)
                elif match := _BLOB.fullmatch(self.path):
                    # like registry.ollama.ai: a redirect to where the bytes live
                    self.send_response(307)
                    self.send_header("Location", f"/storage/{match.group(3)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif match := _STORAGE.fullmatch(self.path):
                    self._send(registry.blobs.get(match.group(1)), "application/octet-stream")
                else:
                    self._send(None, "text/plain")

            def do_HEAD(self) -> None:
                registry.writes.append(("HEAD", self.path))
                match = _BLOB.fullmatch(self.path)
                blob = registry.blobs.get(match.group(3)) if match else None
                self.send_response(404 if blob is None else 200)
                self.send_header("Content-Length", str(0 if blob is None else len(blob)))
                self.end_headers()

            def do_POST(self) -> None:
                registry.writes.append(("POST", self.path))
                if registry.refuse_uploads:
                    self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                elif _UPLOADS.fullmatch(self.path):
                    upload = uuid.uuid4().hex
                    registry._uploads.add(upload)
                    location = f"{self.path}{upload}?_state=x"
                    self._answer(202, b"", location=location)
                else:
                    self._answer(404, b"")

            def do_PUT(self) -> None:
                registry.writes.append(("PUT", self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if match := _UPLOAD.fullmatch(self.path):
                    upload, digest = match.group(3), match.group(4).replace("%3A", ":")
                    if upload not in registry._uploads or digest_of(body) != digest:
                        self._answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                        return
                    registry._uploads.discard(upload)
                    registry.blobs[digest] = body
                    self._answer(201, b"")
                elif match := _MANIFEST.fullmatch(self.path):
                    manifest = json.loads(body)
                    listed = [manifest["config"], *manifest["layers"]]
                    if any(layer["digest"] not in registry.blobs for layer in listed):
                        self._answer(400, b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}')
                        return
                    registry.manifests[match.groups()] = body  # type: ignore[index]
                    self._answer(201, b"")
                else:
                    self._answer(404, b"")

            def _answer(self, status: int, body: bytes, location: str | None = None) -> None:
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send(self, body: bytes | None, content_type: str) -> None:
                if body is None:
                    body, content_type = b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "text/plain"
                    self.send_response(404)
                else:
                    self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((address, 0), Handler)
        self._httpd.daemon_threads = True
        self.host = f"{address}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add_model(
        self,
        name: str,
        tag: str,
        gguf: bytes,
        texts: dict[str, bytes] | None = None,
        namespace: str = "library",
    ) -> dict[str, Any]:
        """Publish ``gguf`` plus text layers (``template``, ``params``, ...); returns the
        manifest as JSON."""
        config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
        layers = [("application/vnd.ollama.image.model", gguf)]
        layers += [(f"application/vnd.ollama.image.{k}", v) for k, v in (texts or {}).items()]
        for _, data in [*layers, ("config", config)]:
            self.blobs[digest_of(data)] = data
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": kind, "digest": digest_of(data), "size": len(data)}
                for kind, data in layers
            ],
        }
        self.manifests[(namespace, name, tag)] = json.dumps(manifest).encode()
        return manifest

    def name(self, model: str, tag: str, namespace: str = "library") -> str:
        """The model name that pulls from this registry."""
        return f"{self.host}/{namespace}/{model}:{tag}"

    def storage_gets(self) -> int:
        return sum(n for path, n in self.requests.items() if path.startswith("/storage/"))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
