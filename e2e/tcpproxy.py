"""A loopback TCP forwarder that a test can take down and bring back on the same port.

Outage tests need an upstream (Prometheus, a broker's HTTP API) to refuse connections and
then come back at the same address, which a restarted server on a fresh port cannot do. The
real server keeps running behind this proxy: ``down()`` closes the listener and every open
connection (callers see "connection refused"), ``up()`` listens on the same port again.

``blackhole()`` is the other outage, a host that vanished from the network: connections are
still accepted but nothing is ever answered, and open connections stall (bytes read, never
passed on), so only a client's own timeouts notice. ``forward()`` ends it: stalled connections
flow again and the ones accepted meanwhile are connected to the target then.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from e2e import procs


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = procs.free_port(host)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._held: set[socket.socket] = set()  # accepted while black-holed, not connected yet
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{procs.url_host(self.host)}:{self.port}"

    def up(self) -> TcpProxy:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        self._listener = sock
        self._thread = threading.Thread(target=self._accept, args=(sock,), name="e2e-tcpproxy", daemon=True)
        self._thread.start()
        return self

    @property
    def blackholed(self) -> bool:
        return not self._flowing.is_set()

    def blackhole(self) -> None:
        """Accept but never answer: new connections are held, open ones stall."""
        self._flowing.clear()

    def forward(self) -> None:
        """End a black hole: stalled connections flow again, held ones are connected now."""
        with self._lock:
            held, self._held = self._held, set()
        self._flowing.set()
        for client in held:
            self._connect(client, self._listener)

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns | self._held, set()
            self._held = set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._flowing.set()  # stalled pumps wake on their closed sockets and end; up() forwards again
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self._flowing.is_set():
                with self._lock:
                    if self._listener is not listener:
                        client.close()
                        return
                    self._held.add(client)
                continue
            if not self._connect(client, listener):
                return

    def _connect(self, client: socket.socket, listener: socket.socket | None) -> bool:
        """Connect ``client`` to the target and start pumping; False once the proxy is down."""
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return True
        with self._lock:
            if listener is None or self._listener is not listener:
                client.close()
                upstream.close()
                return False
            self._conns |= {client, upstream}
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()
        return True

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)
