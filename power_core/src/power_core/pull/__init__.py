"""Downloading models: the HTTP(S) ``url`` source (:mod:`power_core.pull.url`), model
names from file names (:mod:`power_core.pull.naming`) and the sharing of concurrent pulls
(:mod:`power_core.pull.inflight`). Import the submodules; this package imports nothing so
that commands which never download stay fast to start.
"""
