"""Traffic for the demo app: real HTTP requests at a steady rate the story turns up and down."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from urllib.parse import urlsplit


class Load:
    """Send ``rps`` GET requests per second to ``url`` from a background thread (one keep-alive connection)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rps = 0.0
        self.sent = 0
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        due = time.monotonic()
        while not self._stop.is_set():
            rps = self.rps
            if rps <= 0:
                self._stop.wait(0.1)
                due = time.monotonic()
                continue
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                self.sent += 1
                self.answered += resp.status == 200
            except (OSError, http.client.HTTPException):
                with contextlib.suppress(OSError):
                    conn.close()
                conn = None
                self._stop.wait(0.2)
            due = max(due + 1.0 / rps, time.monotonic() - 1.0)  # catch up a little, never in a burst
            self._stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            conn.close()
