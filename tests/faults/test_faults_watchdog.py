"""The systemd watchdog stays fed while a slow but healthy device step runs, and not past scheduler.max_step_s."""

from __future__ import annotations

import time

import pytest

from inspectd.bench.broker import free_port
from inspectd.service.daemon import Daemon
from inspectd.service.systemd import Notifier
from tests.faults.helpers import PREFIX, Plc, fault_settings, running, zmq_camera
from tests.test_daemon import Pusher, png

pytestmark = pytest.mark.slow


def health_while_one_frame_runs(models_dir, store, mosquitto, tmp_path, max_step_s: float) -> list[bool]:
    port = free_port()
    cam_cfg = zmq_camera(port)
    cam_cfg["foreground"] = "isnet"  # the real IS-Net: a device step of a second or more on a CPU
    settings = fault_settings(
        models_dir, tmp_path, mosquitto, {"cam": cam_cfg}, scheduler={"max_step_s": max_step_s}
    )
    notifier = Notifier({"WATCHDOG_USEC": "400000"})  # stall after 0.2 s without a finished step
    plc = Plc(mosquitto, "cam")
    samples: list[bool] = []
    with running(Daemon(settings, store=store, notifier=notifier)) as daemon:
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        cam.send({"part_id": "W-1", "encoding": "png"}, png(6))
        deadline = time.monotonic() + 120
        while not plc.sub.messages[f"{PREFIX}/cam/verdict"] and time.monotonic() < deadline:
            if daemon.scheduler.pending():
                samples.append(daemon.healthy(time.monotonic()))
            time.sleep(0.05)
        cam.close()
    plc.close()
    return samples


def test_slow_step_keeps_the_watchdog_fed(models_dir, store, mosquitto, tmp_path):
    samples = health_while_one_frame_runs(models_dir, store, mosquitto, tmp_path, max_step_s=300)
    print("FAULT slow-step", {"samples": len(samples), "unhealthy": samples.count(False)})
    assert len(samples) >= 5 and all(samples)


def test_step_past_its_limit_starves_the_watchdog(models_dir, store, mosquitto, tmp_path):
    samples = health_while_one_frame_runs(models_dir, store, mosquitto, tmp_path / "b", max_step_s=0.1)
    assert samples.count(False) >= 1, "a step running past scheduler.max_step_s counts as hung"


def test_a_sender_that_hands_no_verdict_to_the_broker_starves_the_watchdog(
    models_dir, store, mosquitto, tmp_path, logs
):
    port = free_port()
    settings = fault_settings(models_dir, tmp_path, mosquitto, {"cam": zmq_camera(port)})
    notifier = Notifier({"WATCHDOG_USEC": "400000"})  # stall after 0.2 s
    plc = Plc(mosquitto, "cam")
    with running(Daemon(settings, store=store, notifier=notifier)) as daemon:
        deadline = time.monotonic() + 20
        while not daemon.sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.sink._stop.set()  # the sender ends, the broker stays connected
        daemon.sink._sender.join(5)
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        cam.send({"part_id": "S-1", "encoding": "png"}, png(6))
        deadline = time.monotonic() + 120
        while not logs.events("no_progress") and time.monotonic() < deadline:
            time.sleep(0.1)
        cam.close()
    plc.close()
    (event,) = logs.events("no_progress")
    assert "verdicts wait in the spool but none is handed to the connected broker" in event["detail"]
    assert logs.events("mqtt_sender_stalled") and not plc.sub.messages[f"{PREFIX}/cam/verdict"]
    assert logs.events("mqtt_stopped")[0]["spool_left"] == 1, "the spool keeps the verdict for the restart"
