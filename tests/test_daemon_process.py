"""`inspectd run` as systemd runs it: a subprocess with a config file, signals and the notify socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inspectd.bench.broker import free_port
from inspectd.bench.samples import write_clip
from inspectd.bench.subscriber import Subscriber
from tests.test_daemon import PREFIX, Pusher, png

pytestmark = pytest.mark.slow


def config_text(
    models_dir: Path, tmp_path: Path, broker, camera: str, threshold: float = 0.5, prefix: str = PREFIX
) -> str:
    return f"""
[models]
dir = "{models_dir}"
cache_dir = "{tmp_path / "cache"}"
device = "cpu"
warmup = false
sam_points_per_side = 4

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "{prefix}"
spool_dir = "{tmp_path / "spool"}"

[metrics]
enabled = false

[cameras.cam]
image_threshold = {threshold}
pixel_threshold = 1.0

{camera}
"""


class Daemon:
    """`python -m inspectd.cli.main run` with its notify socket and stderr collected."""

    def __init__(self, config: Path, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.notify_path = str(tmp_path / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.notes: list[str] = []
        env = {**(env or os.environ), "NOTIFY_SOCKET": self.notify_path, "WATCHDOG_USEC": "30000000"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "inspectd.cli.main", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._listen, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def _listen(self) -> None:
        while True:
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.notes.extend(data.decode().split("\n"))

    def wait_note(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [n for n in self.notes if n.startswith(prefix)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no {prefix!r} notification; got {self.notes}; log:\n{''.join(self.log[-30:])}")

    def events(self, name: str) -> list[dict]:
        out = []
        for line in list(self.log):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == name:
                out.append(rec)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()


def test_sigterm_drains_in_flight_frames_publishes_offline_and_exits_0(models_dir, mosquitto, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=4, width=256, height=192)
    camera = f'[cameras.cam.source]\nkind = "opencv"\nuri = "{clip}"\n'
    config = tmp_path / "inspectd.toml"
    config.write_text(config_text(models_dir, tmp_path, mosquitto, camera))
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(config, tmp_path)
    try:
        daemon.wait_note("READY=1", timeout=120)
        sub.wait_for(f"{PREFIX}/cam/verdict", 1, timeout=120)
        assert any(n == "WATCHDOG=1" for n in daemon.notes) or daemon.wait_note("WATCHDOG=1", 10)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(120) == 0
        got = [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/cam/verdict", 4, timeout=10)]
        assert [v["seq"] for v in got] == [1, 2, 3, 4]
        assert all(v["verdict"] in ("pass", "fail") for v in got), "in-flight frames were inspected, not cut"
        status = sub.wait_for(f"{PREFIX}/status", 2, timeout=10)
        assert status[-1].payload == b"offline"
        daemon.wait_note("STOPPING=1", 5)
        assert daemon.events("stopped")[0]["drained"] is True
    finally:
        daemon.close()
        sub.close()


def test_sighup_applies_thresholds_and_names_what_needs_a_restart(models_dir, mosquitto, tmp_path):
    port = free_port()
    camera = (
        f'[cameras.cam.source]\nkind = "zmq"\nuri = "tcp://127.0.0.1:{port}"\nzmq_socket = "pull"\n'
        "zmq_bind = true\n"
    )
    config = tmp_path / "inspectd.toml"
    config.write_text(config_text(models_dir, tmp_path, mosquitto, camera, threshold=1.0))
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    daemon = Daemon(config, tmp_path)
    cam = None
    try:
        daemon.wait_note("READY=1", timeout=120)
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        cam.send({"part_id": "H-1", "encoding": "png"}, png(7))
        first = json.loads(sub.wait_for(f"{PREFIX}/cam/verdict", 1, timeout=120)[0].payload)
        assert (first["threshold"], first["verdict"]) == (1.0, "pass")

        config.write_text(config_text(models_dir, tmp_path, mosquitto, camera, threshold=0.0, prefix="other"))
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not daemon.events("reloaded") and time.monotonic() < deadline:
            time.sleep(0.1)
        partial = daemon.events("reload_partial")
        assert partial and "mqtt" in partial[0]["restart_required"], daemon.log[-10:]

        cam.send({"part_id": "H-2", "encoding": "png"}, png(7))
        second = json.loads(sub.wait_for(f"{PREFIX}/cam/verdict", 2, timeout=120)[1].payload)
        assert (second["part_id"], second["threshold"], second["verdict"]) == ("H-2", 0.0, "fail")
        # the prefix change needs a restart: verdicts still arrive on the old topics (nothing half-applied)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(60) == 0
    finally:
        if cam is not None:
            cam.close()
        daemon.close()
        sub.close()


def test_invalid_config_exits_78_naming_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[cameras.cam]\nimage_threshold = 0.5\nobjekt = 'screw'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    assert "cameras.cam.objekt" in proc.stderr and str(config) in proc.stderr


def test_missing_config_file_exits_78(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "inspectd.cli.main", "run", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    assert "does not exist" in proc.stderr
