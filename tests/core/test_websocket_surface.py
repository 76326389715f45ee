"""An API surface plugin can add WebSocket routes through ``context.sock`` (flask-sock),
and they work on the gevent server."""

from __future__ import annotations

from pathlib import Path

import simple_websocket

from conftest import PowerServer
from core.test_plugins import make_distribution

WS_PLUGIN = """
    from power_core.hookspecs import hookimpl
    from power_core.server.surface import ApiSurface

    def create_blueprint(context):
        from flask import Blueprint

        blueprint = Blueprint("wsdemo", __name__)

        @context.sock.route("/ws/echo", bp=blueprint)
        def echo(ws):
            while True:
                ws.send("echo:" + ws.receive())

        return blueprint

    @hookimpl
    def register_api_surfaces(register):
        register(ApiSurface(name="wsdemo", create_blueprint=create_blueprint))
"""


def test_websocket_route_from_a_surface_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    make_distribution(site, "power_wsdemo", WS_PLUGIN, "wsdemo = power_wsdemo")
    server = PowerServer(tmp_path / "home", disable_plugins="llamacpp")
    server.env["PYTHONPATH"] = str(site)
    server.start()
    try:
        ws = simple_websocket.Client.connect(f"ws://127.0.0.1:{server.port}/ws/echo")
        try:
            for word in ("one", "two"):
                ws.send(word)
                assert ws.receive(timeout=10) == f"echo:{word}"
        finally:
            ws.close()
    finally:
        server.stop()
