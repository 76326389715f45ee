"""The one error hierarchy of A3S Power.

Every layer raises these; each API plugin maps them to its own wire shape in one place
(``http_status`` is the status an HTTP surface should answer with).
"""

from __future__ import annotations


class PowerError(Exception):
    """Base of every error A3S Power raises on purpose."""

    http_status = 500
    #: a short machine-readable code (OpenAI's ``error.code``)
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: the request field the error is about, when there is one
        self.param = param


class InvalidRequest(PowerError):
    """The client sent something malformed or contradictory."""

    http_status = 400
    code = "invalid_request"


class InvalidModelName(InvalidRequest):
    """A model name does not follow ``[host/][namespace/]model[:tag]``."""

    code = "invalid_model_name"


class InvalidDigest(InvalidRequest):
    """A blob digest is not ``sha256:`` or ``sha256-`` followed by 64 hex digits."""

    code = "invalid_digest"


class DigestMismatch(InvalidRequest):
    """Content did not hash to the digest it was announced with."""

    code = "digest_mismatch"


class InvalidModelFile(InvalidRequest):
    """A model file (GGUF) is malformed, truncated or unsupported."""

    code = "invalid_model_file"


class ContextLengthExceeded(InvalidRequest):
    """The input does not fit the model's context window."""

    code = "context_length_exceeded"


class UnsupportedFeature(InvalidRequest):
    """The request asks for something this model or server cannot do."""

    code = "unsupported"


class NotFound(PowerError):
    """Something named by the client does not exist."""

    http_status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    """No model of that name is in the store."""

    code = "model_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' not found", param="model")
        self.name = name


class BlobNotFound(NotFound):
    """No blob with that digest is in the store."""

    code = "blob_not_found"


class Unauthorized(PowerError):
    """A request without one of the configured bearer keys (``api_keys``)."""

    http_status = 401
    code = "invalid_api_key"


class ServerBusy(PowerError):
    """The request queue is full; the client should retry later."""

    http_status = 503
    code = "server_busy"

    def __init__(self, message: str = "server busy, please try again", retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(PowerError):
    """No installed backend can run this model."""

    http_status = 503
    code = "backend_unavailable"


class ModelLoadFailed(PowerError):
    """A backend failed to load a model (bad file, out of memory, ...)."""

    http_status = 500
    code = "model_load_failed"


class QuantizeFailed(PowerError):
    """A backend failed to quantize a model file it had accepted (a bad tensor, a full
    disk), or wrote a file that is not what was asked for."""

    http_status = 500
    code = "quantize_failed"


class PullFailed(PowerError):
    """A download failed: HTTP error, wrong content, full disk."""

    http_status = 502
    code = "pull_failed"


class PushFailed(PowerError):
    """An upload to a registry failed: refused, HTTP error, network failure."""

    http_status = 502
    code = "push_failed"


class StoreUnavailable(PowerError):
    """The machine refused the model store a file: a ``models_dir`` that is not a folder,
    a read-only disk, a full one."""

    code = "store_unavailable"


class ConfigError(PowerError):
    """The configuration file or environment is invalid."""

    code = "config_error"


class PluginError(PowerError):
    """A plugin broke a rule: duplicate name, bad hook, failed import."""

    code = "plugin_error"


class Cancelled(PowerError):
    """A generation was cancelled (client went away)."""

    http_status = 499
    code = "cancelled"


class InsufficientStorage(PowerError):
    """The disk holding the store is full."""

    http_status = 507
    code = "insufficient_storage"
