"""The sd_notify protocol, checked against a real unix datagram socket."""

from __future__ import annotations

import os
import socket

from inspectd.service.systemd import Notifier


def test_notifier_sends_ready_status_and_watchdog(tmp_path):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_s == 4.0
    n.ready("2 cameras")
    assert server.recv(1024).decode().split("\n") == ["READY=1", "STATUS=2 cameras"]
    n.watchdog()
    assert server.recv(1024) == b"WATCHDOG=1"
    n.stopping()
    assert server.recv(1024).decode().startswith("STOPPING=1")
    n.close()
    server.close()


def test_notifier_is_silent_outside_systemd():
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    n.ready("x")  # no socket: nothing happens, nothing raises


def test_watchdog_for_another_pid_is_ignored():
    n = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_s is None
