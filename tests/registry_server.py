"""A local Ollama-style registry for pull and push tests: the Docker registry v2 routes
that Ollama's registry serves, with its habit of redirecting blob requests to separate
storage, and the upload routes a push uses (``HEAD`` a blob, ``POST`` an upload, ``PUT``
its bytes with their digest, ``PUT`` the manifest). With ``require_token`` it also wants
signing in as ollama.com does: a ``401`` with a bearer challenge, and a token service
(``/token``) that checks the Ed25519 signature of a key it knows (:class:`TokenService`)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: the media types of Docker's model artifacts (``docker model package``)
DOCKER_CONFIG_TYPE = "application/vnd.docker.ai.model.config.v0.1+json"
DOCKER_GGUF = "application/vnd.docker.ai.gguf.v3"
DOCKER_PROJECTOR = "application/vnd.docker.ai.mmproj"
DOCKER_LICENSE = "application/vnd.docker.ai.license"
DOCKER_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
_MANIFEST = re.compile(r"/v2/([^/]+)/([^/]+)/manifests/([^/]+)")
_BLOB = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})")
_STORAGE = re.compile(r"/storage/(sha256:[0-9a-f]{64})")
_UPLOADS = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/uploads/")
_UPLOAD = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/uploads/([0-9a-f]{32})\?_state=x&digest=(.*)")


_REPOSITORY = re.compile(r"/v2/([^/]+)/([^/]+)/")
_EMPTY_BODY_HASH = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()


def _media_type(manifest: bytes | None) -> str:
    """A manifest's own media type, which registries answer with (Ollama's by default)."""
    try:
        kind = json.loads(manifest or b"").get("mediaType")
    except (ValueError, AttributeError):
        kind = None
    return kind if isinstance(kind, str) else MANIFEST_TYPE


def basic_pair_allowed(authorization: str, passwords: dict[str, str]) -> bool:
    """Whether an HTTP Basic ``Authorization`` header holds a known user's password."""
    try:
        pair = base64.b64decode(authorization.removeprefix("Basic "), validate=True).decode()
    except ValueError:
        return False
    user, _, password = pair.partition(":")
    return user in passwords and passwords[user] == password


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class TokenService:
    """Ollama's sign-in, as the registry side sees it: tokens for the scopes asked, given
    to a request signed by a known key (``known_keys``: the base64 wire form, the second
    field of a ``.pub`` line), or for pulling only, unsigned, when ``anonymous_pull``."""

    known_keys: set[str] = field(default_factory=set)
    anonymous_pull: bool = False
    #: user name -> password, for token requests with HTTP Basic authentication (Docker's)
    passwords: dict[str, str] = field(default_factory=dict)
    #: the realm's ``host:port`` (default: the registry's own)
    realm_host: str | None = None
    #: every token request: its path and its ``Authorization`` header ("" when none)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: token -> the (repository, action) pairs it grants
    tokens: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def grant(self, host: str, path: str, authorization: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer to ``GET path`` (a token request) sent to ``host``."""
        self.requests.append((path, authorization))
        query = parse_qs(urlsplit(path).query)
        wanted = set()
        for scope in query.get("scope", []):
            _, repository, actions = scope.split(":")
            wanted |= {(repository, action) for action in actions.split(",")}
        if authorization.startswith("Basic "):
            if not basic_pair_allowed(authorization, self.passwords):
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad password"}]}
        elif authorization:
            problem = self._check_signature(host, path, authorization, query)
            if problem:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": problem}]}
        elif not self.anonymous_pull:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "sign in"}]}
        else:
            wanted = {(repository, action) for repository, action in wanted if action == "pull"}
        token = uuid.uuid4().hex
        self.tokens[token] = wanted
        return 200, {"token": token}

    def _check_signature(
        self, host: str, path: str, authorization: str, query: dict[str, list[str]]
    ) -> str | None:
        wire_form, _, signature = authorization.partition(":")
        if wire_form not in self.known_keys:
            return "unknown key"
        stamp = query.get("ts", ["0"])[0]
        if not query.get("nonce") or not stamp.isdecimal() or abs(time.time() - int(stamp)) > 60:
            return "stale or replayed"
        key = load_ssh_public_key(b"ssh-ed25519 " + wire_form.encode())
        assert isinstance(key, Ed25519PublicKey)
        signed = f"GET,http://{host}{path},{_EMPTY_BODY_HASH}".encode()
        try:
            key.verify(base64.b64decode(signature), signed)
        except InvalidSignature:
            return "bad signature"
        return None

    def allows(self, authorization: str, repository: str, action: str) -> bool:
        token = authorization.removeprefix("Bearer ")
        return (repository, action) in self.tokens.get(token, set())


class QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up (as one does after a refusal) is not an error to print."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


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
        #: with a token service, every /v2/ request needs one of its tokens
        self.require_token: TokenService | None = None
        #: user name -> password: every /v2/ request needs HTTP Basic authentication, as
        #: ``registry:2`` with htpasswd wants it
        self.require_password: dict[str, str] | None = None
        #: the ``Authorization`` header of every /v2/ request ("" when none)
        self.authorizations: list[str] = []
        #: forget every token just before the next blob upload, as when one expires
        self.expire_tokens_before_upload = False
        #: send blob requests on to storage on this ``host:port`` (default: this one)
        self.storage_host: str | None = None
        #: the ``Authorization`` header of every storage request ("" when none)
        self.storage_authorizations: list[str] = []
        self._uploads: set[str] = set()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _signed_in(self, action: str) -> bool:
                """Whether the request holds a token for ``action`` on its repository;
                answers the challenge when not."""
                service = registry.require_token
                match = _REPOSITORY.match(self.path)
                if match is not None:
                    registry.authorizations.append(self.headers.get("Authorization", ""))
                passwords = registry.require_password
                if passwords is not None and match is not None:
                    if basic_pair_allowed(self.headers.get("Authorization", ""), passwords):
                        return True
                    challenge = 'Basic realm="Registry Realm"'
                    self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge=challenge)
                    return False
                if service is None or match is None:
                    return True
                repository = "/".join(match.groups())
                if service.allows(self.headers.get("Authorization", ""), repository, action):
                    return True
                realm = f"http://{service.realm_host or registry.host}/token"
                actions = "pull" if action == "pull" else "push,pull"
                challenge = (
                    f'Bearer realm="{realm}",service="test-registry",'
                    f'scope="repository:{repository}:{actions}"'
                )
                self._answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge=challenge)
                return False

            def do_GET(self) -> None:
                registry.requests[self.path] += 1
                if self.path.startswith("/token?") and registry.require_token is not None:
                    status, answer = registry.require_token.grant(
                        self.headers.get("Host", ""),
                        self.path,
                        self.headers.get("Authorization", ""),
                    )
                    self._answer(status, json.dumps(answer).encode())
                    return
                if not self._signed_in("pull"):
                    return
                if match := _MANIFEST.fullmatch(self.path):
                    registry.accept_headers.append(self.headers.get("Accept", ""))
                    body = registry.manifests.get(match.groups())  # type: ignore[call-overload]
                    self._send(body, _media_type(body))
                elif match := _BLOB.fullmatch(self.path):
                    # like registry.ollama.ai: a redirect to where the bytes live
                    self.send_response(307)
                    where = f"http://{registry.storage_host}" if registry.storage_host else ""
                    self.send_header("Location", f"{where}/storage/{match.group(3)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif match := _STORAGE.fullmatch(self.path):
                    registry.storage_authorizations.append(self.headers.get("Authorization", ""))
                    self._send(registry.blobs.get(match.group(1)), "application/octet-stream")
                else:
                    self._send(None, "text/plain")

            def do_HEAD(self) -> None:
                registry.writes.append(("HEAD", self.path))
                if not self._signed_in("pull"):
                    return
                match = _BLOB.fullmatch(self.path)
                blob = registry.blobs.get(match.group(3)) if match else None
                self.send_response(404 if blob is None else 200)
                self.send_header("Content-Length", str(0 if blob is None else len(blob)))
                self.end_headers()

            def do_POST(self) -> None:
                registry.writes.append(("POST", self.path))
                if not self._signed_in("push"):
                    return
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
                expire = registry.expire_tokens_before_upload and _UPLOAD.fullmatch(self.path)
                if expire and registry.require_token is not None:
                    registry.expire_tokens_before_upload = False
                    registry.require_token.tokens.clear()
                if not self._signed_in("push"):
                    return
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

            def _answer(
                self,
                status: int,
                body: bytes,
                location: str | None = None,
                challenge: str | None = None,
            ) -> None:
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                if challenge is not None:
                    self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has no body, whatever its length
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

        self._httpd = QuietHTTPServer((address, 0), Handler)
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
        config_type = "application/vnd.docker.container.image.v1+json"
        return self._publish((namespace, name, tag), MANIFEST_TYPE, (config_type, config), layers)

    def add_docker_model(
        self,
        name: str,
        tag: str,
        layers: list[tuple[str, bytes]],
        context_size: int | None = None,
        namespace: str = "ai",
    ) -> dict[str, Any]:
        """Publish a Docker model artifact (an OCI manifest with Docker's model config and
        media types, as ``docker model package`` pushes it); returns the manifest."""
        settings: dict[str, Any] = {"format": "gguf", "quantization": "Q4_1"}
        if context_size is not None:
            settings["context_size"] = context_size
        diff_ids = [digest_of(data) for _, data in layers]
        rootfs = {"type": "rootfs", "diff_ids": diff_ids}
        config = json.dumps({"config": settings, "descriptor": {}, "rootfs": rootfs}).encode()
        where = (namespace, name, tag)
        return self._publish(where, OCI_MANIFEST_TYPE, (DOCKER_CONFIG_TYPE, config), layers)

    def _publish(
        self,
        where: tuple[str, str, str],
        media_type: str,
        config: tuple[str, bytes],
        layers: list[tuple[str, bytes]],
    ) -> dict[str, Any]:
        """Store every blob and the manifest listing them at (namespace, model, tag)."""
        for _, data in [*layers, config]:
            self.blobs[digest_of(data)] = data

        def described(kind: str, data: bytes) -> dict[str, Any]:
            return {"mediaType": kind, "digest": digest_of(data), "size": len(data)}

        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": described(*config),
            "layers": [described(kind, data) for kind, data in layers],
        }
        self.manifests[where] = json.dumps(manifest).encode()
        return manifest

    def name(self, model: str, tag: str, namespace: str = "library") -> str:
        """The model name that pulls from this registry."""
        return f"{self.host}/{namespace}/{model}:{tag}"

    def storage_gets(self) -> int:
        return sum(n for path, n in self.requests.items() if path.startswith("/storage/"))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
