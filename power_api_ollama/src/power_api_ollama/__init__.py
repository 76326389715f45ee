"""A3S Power's Ollama API surface: Ollama's native ``/api`` routes on the core services."""
