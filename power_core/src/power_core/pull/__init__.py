"""Downloading models: the HTTP(S) ``url`` source and the sharing of concurrent pulls."""

from power_core.pull.inflight import InflightDownloads
from power_core.pull.naming import suggest_model_name
from power_core.pull.url import UrlSource

__all__ = ["InflightDownloads", "UrlSource", "suggest_model_name"]
