"""A throwaway Mosquitto broker on a free loopback port, for the demo, benchmarks and tests."""

from __future__ import annotations

import getpass
import random
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


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (Linux: ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, for a broker or camera socket bound a moment later.

    Chosen below the kernel's ephemeral range: a port from ``bind(0)`` is an ephemeral one, which any
    outgoing connection made before the bind (an MQTT client, say) can take as its local port. Never the same
    port twice in one process.
    """
    rng = random.SystemRandom()
    high = min(_ephemeral_low(), 65536)
    for _ in range(200):
        port = rng.randrange(10000, high) if high > 10000 else rng.randrange(1024, 65536)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise InspectdError("no free TCP port on 127.0.0.1 after 200 tries")


def broker_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class LocalBroker:
    """Mosquitto bound to 127.0.0.1; ``stop()`` and ``start()`` again keep the same port (restart tests).

    With ``persistence`` the broker saves sessions and queued messages on stop (SIGTERM) and restores them on
    start, as a production broker does.
    """

    def __init__(
        self, port: int | None = None, persistence: bool = False, workdir: Path | None = None
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise InspectdError(f"mosquitto is not installed; {INSTALL_HINT}")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._owns_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="inspectd-mosquitto-"))
        self.log_path = self.workdir / "mosquitto.log"
        self._conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # started as root, mosquitto drops to user 'mosquitto' and then cannot write our folder
            f"user {getpass.getuser()}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 100000",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        self._conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> LocalBroker:
        """Start (or restart) the broker and wait until it accepts connections."""
        if self.running:
            raise InspectdError(f"mosquitto on port {self.port} is already running")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self._conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_path.read_text(errors="replace").strip()
                raise InspectdError(
                    f"mosquitto exited with {self.proc.returncode} on port {self.port}: {text}"
                )
            if broker_reachable(self.host, self.port, 0.2):
                return self
            time.sleep(0.02)
        raise InspectdError(f"mosquitto did not accept connections on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it saves persistence and clients see their connection drop; then SIGKILL)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        """Stop, and remove the folder when this broker made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
