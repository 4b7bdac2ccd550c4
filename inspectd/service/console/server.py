"""The console's HTTP server: uvicorn on its own thread and event loop, with no signal handlers of its own
(the daemon owns signals). The listening socket is bound in ``start`` so a bad host or port is a start error."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

from inspectd.config import ConsoleConfig
from inspectd.errors import ConfigError
from inspectd.logs import get_logger

log = get_logger("console.server")


class ConsoleServer:
    """One uvicorn server on a thread; ``restart`` binds the same port again after a crash."""

    def __init__(self, app: Any, cfg: ConsoleConfig) -> None:
        self.app = app
        self.cfg = cfg
        self.port = cfg.port  # the bound port once started (console.port 0 lets the kernel pick one)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.crashed: BaseException | None = None
        self.cpu_s_done = 0.0
        self._native_id: int | None = None

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit a fixed send buffer (no autotuning to megabytes), so a page that stops
        # reading fills it within seconds of pushes and the per-send timeout can drop it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.cfg.send_buffer_kib * 1024)
        try:
            sock.bind((self.cfg.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"console.host/console.port {self.cfg.host}:{self.port}: {exc.strerror}; pick a free port"
            ) from exc
        sock.listen(128)
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        return sock

    def start(self) -> None:
        """Bind and serve on a new thread."""
        import uvicorn

        sock = self._bind()
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=2,
            limit_concurrency=self.cfg.max_clients + 32,
            h11_max_incomplete_event_size=16 * 1024,
        )
        self._server = uvicorn.Server(config)
        self.crashed = None
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="console-http", daemon=True)
        self._thread.start()

    def _serve(self, sock: socket.socket) -> None:
        self._native_id = threading.get_native_id()
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:
            self.crashed = exc
            log.exception("console_server_failed", error=str(exc))
        finally:
            self.cpu_s_done = self.cpu_s()
            self._native_id = None
            sock.close()

    def cpu_s(self) -> float:
        """CPU seconds the server's event-loop thread(s) used so far (Linux /proc; 0 elsewhere)."""
        total = self.cpu_s_done
        tid = self._native_id
        if tid is not None:
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                total = self.cpu_s_done + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass  # the thread ended between the check and the read: its time is in cpu_s_done
        return total

    def started(self) -> bool:
        """Whether uvicorn is listening."""
        return self._server is not None and bool(self._server.started)

    def alive(self) -> bool:
        """Whether the server's thread runs (the health check reads it)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to finish and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
