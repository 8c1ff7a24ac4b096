"""A loopback TCP proxy that counts network round trips between a client and PostgreSQL.

A round trip is counted each time the client sends after the server last spoke on that
connection (or first sends at all): a synchronous client such as psycopg cannot send its
next request before it has read the previous answer, so these "turns" are exactly the
request/response exchanges on the wire, however TCP splits the bytes. Used by the tests
(``tests/test_fast_begin.py``) and the benchmark (figure 3).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class RoundTripProxy:
    """Forward ``127.0.0.1:<port>`` to *target* and count client turns; a context manager."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._round_trips = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="round-trip-proxy", daemon=True)

    @property
    def round_trips(self) -> int:
        """Client turns counted since the start or the last :meth:`reset`."""
        with self._lock:
            return self._round_trips

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._round_trips = 0

    def __enter__(self) -> RoundTripProxy:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(key.fileobj, *key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        server = socket.create_connection(self.target)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # state[0]: who spoke last on this connection ("client" / "server" / None)
        state: list[str | None] = [None]
        self._selector.register(client, selectors.EVENT_READ, (server, "client", state))
        self._selector.register(server, selectors.EVENT_READ, (client, "server", state))

    def _forward(self, src: socket.socket, dst: socket.socket, side: str, state: list[str | None]) -> None:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            for s in (src, dst):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(s)
                s.close()
            return
        if side == "client" and state[0] != "client":
            with self._lock:
                self._round_trips += 1
        state[0] = side
        dst.sendall(data)
