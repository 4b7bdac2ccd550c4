"""A throwaway Mosquitto broker on a free loopback port, for the demo, benchmarks and tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from inspectd.errors import InspectdError

INSTALL_HINT = "install it with `apt-get install -y mosquitto` (Debian/Ubuntu)"


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalBroker:
    """Mosquitto bound to 127.0.0.1; ``stop()`` and ``start()`` again keep the same port (restart tests)."""

    def __init__(self, port: int | None = None) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise InspectdError(f"mosquitto is not installed; {INSTALL_HINT}")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="inspectd-mosquitto-"))
        self._conf = self._dir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self._dir / 'mosquitto.log'}\nmax_queued_messages 100000\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> LocalBroker:
        """Start (or restart) the broker and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self._conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise InspectdError(f"mosquitto exited at start (port {self.port}): {err.strip()}")
            if broker_reachable(self.host, self.port, 0.2):
                return self
            time.sleep(0.05)
        raise InspectdError(f"mosquitto did not accept connections on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def close(self) -> None:
        """Stop and remove the temporary folder."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
