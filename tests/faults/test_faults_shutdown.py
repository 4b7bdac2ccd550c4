"""SIGTERM with a backlog: every part the daemon took in is answered exactly once, and `drained` tells the truth.

`inspectd run` as systemd runs it (a subprocess, the notify socket), a real Mosquitto and a ZeroMQ camera
process that pushed 100 parts before the signal.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from inspectd.bench.broker import free_port
from inspectd.bench.subscriber import Subscriber
from tests.faults.helpers import answered_once
from tests.test_daemon import Pusher, png
from tests.test_daemon_process import PREFIX, Daemon, config_text

pytestmark = pytest.mark.slow


def test_sigterm_with_100_parts_queued_answers_every_part_taken_in(models_dir, mosquitto, tmp_path):
    port = free_port()
    camera = (
        'foreground = "full"\nheatmap = false\n'
        f'[cameras.cam.source]\nkind = "zmq"\nuri = "tcp://127.0.0.1:{port}"\nzmq_socket = "pull"\n'
        "zmq_bind = true\nlive = false\n\n[scheduler]\ndrain_timeout_s = 6\n"
    )
    config = tmp_path / "inspectd.toml"
    config.write_text(config_text(models_dir, tmp_path, mosquitto, camera))
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/cam/verdict"])
    daemon = Daemon(config, tmp_path)
    cam = None
    sent = [f"Q-{i:03d}" for i in range(100)]
    try:
        daemon.wait_note("READY=1", timeout=120)
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        body = png(4)
        for part in sent:
            cam.send({"part_id": part, "encoding": "png"}, body)
        sub.wait_for(f"{PREFIX}/cam/verdict", 1, timeout=120)
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(120) == 0
        stopped = daemon.events("stopped")[0]
        taken = stopped["frames_taken"]
        deadline = time.monotonic() + 20
        while len(sub.messages[f"{PREFIX}/cam/verdict"]) < taken and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        got = [json.loads(m.payload) for m in sub.messages[f"{PREFIX}/cam/verdict"]]
    finally:
        if cam is not None:
            cam.close()
        daemon.close()
        sub.close()
    figures = answered_once(sent, got)
    cut = [v for v in got if v["reason"] == "shutdown"]
    print(
        "FAULT sigterm-backlog",
        {**{k: v for k, v in figures.items() if k != "missing"}, "taken_in": taken, "answered_shutdown": len(cut),
         "drained": stopped["drained"]},
    )  # fmt: skip
    assert figures["duplicated"] == 0
    assert [v["part_id"] for v in got] == sent[:taken], "every part taken in answered once, in order"
    assert all(v["verdict"] in ("pass", "fail") or v["reason"] == "shutdown" for v in got)
    assert stopped["drained"] is (not cut), "drained is true only when no part had to be cut short"
    assert taken == len(sent), "the backlog the camera process had sent was read before the socket closed"
