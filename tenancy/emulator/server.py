"""The HTTP layer of the emulator: a threading server on loopback and its request handler.

The handler only moves bytes; :class:`tenancy.emulator.Emulator` decides every answer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

__all__ = ["Reply", "Request", "Server"]

log = logging.getLogger("tenancy.emulator")


@dataclass(frozen=True)
class Request:
    """One HTTP request as the emulator sees it (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; ``drop`` closes the connection without one (after ``delay`` seconds)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class _App(Protocol):
    def handle(self, request: Request) -> Reply: ...


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer tuned for tests: daemon threads, reusable port, a deep backlog."""

    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler sleeping in a "timeout" fault
    allow_reuse_address = True
    request_queue_size = 256  # dozens of threads connect at once; the default 5 resets them

    def __init__(self, address: tuple[str, int], app: _App) -> None:
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that time out or vanish are normal here; no tracebacks on stderr.
        log.debug("emulator: connection from %s ended abruptly", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = self.server.app.handle(request)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        log.debug("emulator: %s " + format, self.address_string(), *args)
