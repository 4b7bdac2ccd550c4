"""The systemd notify protocol (sd_notify), spoken directly: READY, WATCHDOG, STATUS, STOPPING.

A no-op outside systemd (no NOTIFY_SOCKET), so the daemon runs the same from a terminal.
"""

from __future__ import annotations

import os
import socket

from inspectd.logs import get_logger

log = get_logger("systemd")


class Notifier:
    """Sends datagrams to $NOTIFY_SOCKET; reads the watchdog interval from $WATCHDOG_USEC."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        if self.address.startswith("@"):
            self.address = "\0" + self.address[1:]
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        valid = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_s: float | None = int(usec) / 1e6 if valid else None
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # never block the daemon on a slow listener: a full queue drops the datagram (logged)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Whether systemd (or a test) listens."""
        return self._sock is not None

    def send(self, *fields: str) -> None:
        """Send one notification; a failure is logged, never raised (the daemon must keep inspecting)."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("notify_failed", error=str(exc), socket=self.address.replace("\0", "@"))

    def ready(self, status: str) -> None:
        """Models are loaded and warmed: the service is up."""
        self.send("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """I am alive and making progress."""
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line summary shown by `systemctl status`."""
        self.send(f"STATUS={text}")

    def stopping(self, status: str = "draining") -> None:
        """Shutdown has begun."""
        self.send("STOPPING=1", f"STATUS={status}")

    def reloading(self) -> None:
        """SIGHUP reload under way."""
        self.send("RELOADING=1")

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
