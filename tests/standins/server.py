"""Run a WSGI application on 127.0.0.1 in a background thread, over HTTP or HTTPS.

The stand-ins are real HTTP servers so the product reaches them exactly as it reaches
Microsoft: through its HTTP client, base URLs from settings, TLS verification and all. The
port is chosen by the OS (port 0), so parallel test workers never collide.
"""

from __future__ import annotations

import ssl
import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["BackgroundServer"]

LOOPBACK = "127.0.0.1"


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log line (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class BackgroundServer:
    """A threaded werkzeug server for ``app`` on 127.0.0.1 and an OS-chosen port.

    Use as a context manager, or call ``start()`` and ``stop()``. ``base_url`` is
    ``http://127.0.0.1:<port>`` or, with an ``ssl_context``, ``https://localhost:<port>``:
    a TLS client checks the host name against the certificate, and ``localhost`` is the name
    in its SAN that every client resolves to loopback (``127.0.0.1`` is in the SAN too).
    """

    def __init__(
        self,
        app: Any,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host_name: str | None = None,
    ) -> None:
        self._app = app
        self._ssl_context = ssl_context
        self._host_name = host_name or ("localhost" if ssl_context else LOOPBACK)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None  # kept after stop(), so URLs stay printable
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """Scheme, host and port, without a trailing slash."""
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host_name}:{self.port}"

    def start(self) -> BackgroundServer:
        if self._server is not None:
            return self
        # Bound to the loopback address only: nothing outside this machine can reach it.
        self._server = make_server(
            LOOPBACK,
            0,
            self._counted,
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=self._ssl_context,
        )
        self._port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _counted(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._idle:
            self._in_flight += 1
        try:
            return self._app(environ, start_response)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for the requests under way: request threads are daemons nobody joins.

        A request still running when a test closes its database engine would open a
        connection that nothing closes.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout):
                raise RuntimeError(f"{self._in_flight} requests still running after {timeout} s")

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self.wait_idle()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
