"""The server process entry point: ``python -m power_core.server.run [--host H] [--port P]``.

gevent's monkey-patching must happen before anything else imports ``socket``, ``ssl`` or
``threading``, so this module patches first and imports the rest afterwards; ``a3s-power
serve`` execs it in a fresh interpreter.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402

from power_core.errors import PowerError  # noqa: E402
from power_core.host_address import url_host  # noqa: E402
from power_core.server.direct import DIRECT_WRITER, DirectWriter  # noqa: E402
from power_core.server.disconnect import CLIENT_SOCKET  # noqa: E402
from power_core.server.sending import ClientStalled, send_all  # noqa: E402

if TYPE_CHECKING:
    from power_core.services import PowerServices

log = logging.getLogger("power_core.server")


class PowerHandler(WSGIHandler):
    """pywsgi's handler, with TCP_NODELAY, and the client's socket and a direct writer in
    the environment.

    pywsgi sends headers and body in separate writes; with Nagle's algorithm on, a
    keep-alive client then waits ~40 ms for each body (delayed ACK). Streams suffer too.
    The socket lets a non-streamed generation notice that its client left (see
    :mod:`power_core.server.disconnect`); the writer lets the engine thread send streamed
    tokens itself (:mod:`power_core.server.direct`), and whatever it left unsent goes out
    here before pywsgi's next write.
    """

    _direct: DirectWriter | None = None

    def handle(self) -> None:
        # not a TCP socket (a Unix socket, say): nothing to tune
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def handle_one_response(self) -> None:
        # counted so that a shutdown lets the requests under way finish (idle keep-alive
        # connections are not requests: a shutdown does not wait for them)
        server = self.server
        server.requests_under_way += 1
        try:
            if server.closed:  # shutting down: this connection ends after this answer
                self.close_connection = True
            super().handle_one_response()
        finally:
            server.requests_under_way -= 1
            if server.closed or _upgraded(self.environ):
                # a WebSocket ran on this connection: nothing HTTP follows on it
                self.close_connection = True

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        if self.close_connection and not any(k.lower() == "connection" for k, _ in headers):
            # HTTP/1.1 keeps a connection unless told: say this one ends (a shutdown)
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[CLIENT_SOCKET] = self.socket
        # raw writes would bypass TLS, should anyone serve this handler over it
        self._direct = None if hasattr(self.socket, "cipher") else DirectWriter(self)
        environ[DIRECT_WRITER] = self._direct
        return environ

    def log_request(self) -> None:
        # after the whole response (a stream's last chunk), so the time is the request's;
        # Flask's after_request would log when the headers go out
        super().log_request()
        # bytes once a response started; a str on a socket error; none after a WebSocket,
        # whose 101 went out through the socket itself
        status = self.status or ("101" if _upgraded(self.environ) else "-")
        if isinstance(status, bytes):
            status = status.decode("latin-1")
        code = status.split(maxsplit=1)[0]
        status = code if code.isdigit() else status  # "200", or "socket error: ..."
        elapsed_ms = (self.time_finish - self.time_start) * 1000
        path = (self.path or "").partition("?")[0]
        log.info("%s %s %s %.1fms", self.command, path, status, elapsed_ms)
        # this request's writer, never the last one's (a bad request line has no environ)
        direct, self._direct = self._direct, None
        if direct is not None and direct.written:
            log.debug(
                "%s %s: %d chunks sent by the engine thread (%d finished by the server's)",
                self.command,
                self.path,
                direct.written,
                direct.deferred,
            )

    #: a write that times out (a client that stopped reading) ends the connection quietly,
    #: as a reset does
    ignored_socket_errors = (*WSGIHandler.ignored_socket_errors, errno.ETIMEDOUT)

    def _sendall(self, data: bytes) -> None:
        # pywsgi sends every header, chunk and terminator through here
        if self._direct is not None and self._direct.pending:
            self._send(self._direct.take_pending())
        self._send(data)

    def _send(self, data: bytes) -> None:
        """pywsgi's ``_sendall``, giving up on a client that reads nothing for the
        server's ``send_timeout`` (:mod:`power_core.server.sending`)."""
        try:
            send_all(self.socket, data, self.server.send_timeout)
        except OSError as exc:
            if isinstance(exc, ClientStalled):
                log.info("%s %s: %s, so its connection is closed", self.command, self.path, exc)
            self.status = f"socket error: {exc}"
            code = int(getattr(self, "code", 0))  # negative: how pywsgi logs a failed write
            if code > 0:
                self.code = -code
            raise
        self.response_length += len(data)


def _upgraded(environ: dict[str, Any] | None) -> bool:
    """Whether the request asked to become a WebSocket (the route answered it, or not)."""
    return environ is not None and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


class PowerWSGIServer(WSGIServer):
    """pywsgi's server, counting the requests its handlers are answering."""

    requests_under_way = 0
    #: seconds a write may wait for a client that reads nothing (the ``send_timeout`` setting)
    send_timeout = 60.0


#: seconds a shutdown (SIGTERM, Ctrl-C) gives the requests under way to finish; a second
#: signal stops at once
SHUTDOWN_GRACE = 10.0


def _shut_down(
    server: PowerWSGIServer, services: "PowerServices", stopped: gevent.event.Event
) -> None:
    """Take no new connections and start no new generations (a kept-alive connection
    gets a 503 and is closed), let the requests under way finish (at most
    :data:`SHUTDOWN_GRACE` seconds), then let ``main`` unload the models and exit."""
    services.shutting_down = True
    server.close()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    if server.requests_under_way:
        log.info("shutting down: waiting for %d request(s) to finish", server.requests_under_way)
    while server.requests_under_way and time.monotonic() < deadline and not stopped.is_set():
        gevent.sleep(0.05)
    if server.requests_under_way:
        log.warning("shutting down with %d request(s) cut short", server.requests_under_way)
    stopped.set()


def _reap_forever(services: object) -> None:
    from power_core.services import PowerServices

    assert isinstance(services, PowerServices)
    while True:
        gevent.sleep(1.0)
        try:
            services.scheduler.reap_expired()
        except PowerError as exc:  # keep reaping; one failed unload is logged, not fatal
            log.warning("unloading an idle model failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    parser = argparse.ArgumentParser(prog="a3s-power serve")
    parser.add_argument("--host")
    parser.add_argument("--port")
    args = parser.parse_args(argv)

    from power_core.config import load_settings
    from power_core.server.app import create_app
    from power_core.services import PowerServices

    try:
        settings = load_settings({"host": args.host, "port": args.port})
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        services = PowerServices.create(settings)
        app = create_app(services)
    except PowerError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return 1
    for info in services.registry.infos:
        if info.error:
            log.warning("plugin %s (%s) not loaded: %s", info.name, info.distribution, info.error)
    if not services.registry.backends():
        log.warning(
            "no backend installed: inference routes answer 503 (install a3s-power-llamacpp)"
        )

    try:
        server = PowerWSGIServer(
            (settings.host, settings.port),
            app,
            log=None,
            error_log=log,
            handler_class=PowerHandler,
        )
        server.init_socket()
        server.send_timeout = settings.send_timeout
    except OSError as exc:
        print(
            f"Error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1

    stopped = gevent.event.Event()
    shutting_down: list[gevent.Greenlet] = []

    def stop() -> None:
        if shutting_down:  # a second signal: stop now
            log.info("shutting down now")
            stopped.set()
            return
        log.info("shutting down")
        shutting_down.append(gevent.spawn(_shut_down, server, services, stopped))

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    reaper = gevent.spawn(_reap_forever, services)
    host, port = server.address[:2]
    # printed, not logged: shown at any log_level, once (it was logged too, so shown twice)
    print(f"A3S Power listening on http://{url_host(host)}:{port}", flush=True)
    try:
        server.start()
        stopped.wait()
    finally:
        reaper.kill()
        server.stop(timeout=0)
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
