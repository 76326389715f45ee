"""The HTTP server: a Flask app factory served by gevent. Importing this package is cheap;
:mod:`power_core.server.run` does the monkey-patching and must be the process entry point."""
