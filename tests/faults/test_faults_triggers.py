"""Fault rows about triggers and identity, against the real daemon, Mosquitto and ZeroMQ (tiny models).

Each test prints a ``FAULT`` line with the figures docs/reliability.md reports.
"""

from __future__ import annotations

import time

import pytest
from structlog.testing import capture_logs

from inspectd.bench.broker import free_port
from inspectd.service.daemon import Daemon
from tests.faults.helpers import Plc, answered_once, fault_settings, running, zmq_camera
from tests.test_daemon import Pusher, png

pytestmark = pytest.mark.slow


def test_twenty_triggers_then_twenty_frames_every_part_answered_once_in_order(
    models_dir, store, mosquitto, tmp_path
):
    port = free_port()
    settings = fault_settings(models_dir, tmp_path, mosquitto, {"cam": zmq_camera(port)})
    plc = Plc(mosquitto, "cam")
    sent = [f"P-{i:02d}" for i in range(20)]
    with running(Daemon(settings, store=store)):
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        for part in sent:
            plc.trigger(part)
        time.sleep(0.5)
        body = png(1)
        for _ in sent:
            cam.send({"encoding": "png"}, body)
        got = plc.verdicts(20, timeout=240)
        cam.close()
    time.sleep(0.5)
    figures = answered_once(sent, plc.all_verdicts())
    print("FAULT triggers-burst", figures)
    assert figures == {"sent": 20, "answered": 20, "duplicated": 0, "missing": []}
    assert [v["part_id"] for v in got] == sent, "FIFO: the n-th trigger goes to the n-th frame"
    assert all(v["verdict"] in ("pass", "fail") for v in got)
    plc.close()


def test_trigger_without_a_frame_is_answered_no_frame(models_dir, store, mosquitto, tmp_path):
    port = free_port()
    cam_cfg = zmq_camera(port)
    cam_cfg["source"]["trigger_window_s"] = 1.0
    settings = fault_settings(models_dir, tmp_path, mosquitto, {"cam": cam_cfg})
    plc = Plc(mosquitto, "cam")
    with running(Daemon(settings, store=store)):
        plc.trigger("LONELY-1")
        (v,) = plc.verdicts(1, timeout=30)
    assert (v["part_id"], v["verdict"], v["reason"]) == ("LONELY-1", "error", "no_frame")
    assert "trigger_window_s" in v["detail"]
    plc.close()


def test_retained_trigger_is_ignored_at_every_start(models_dir, store, mosquitto, tmp_path):
    port = free_port()
    settings = fault_settings(models_dir, tmp_path, mosquitto, {"cam": zmq_camera(port)})
    plc = Plc(mosquitto, "cam")
    plc.trigger("STALE-1", retain=True)
    applied = 0
    for start in range(2):
        with capture_logs() as logs, running(Daemon(settings, store=store)):
            cam = Pusher(f"tcp://127.0.0.1:{port}")
            time.sleep(0.8)
            cam.send({"encoding": "png"}, png(2))
            v = plc.verdicts(start + 1, timeout=120)[start]
            cam.close()
        applied += v["part_id"] == "STALE-1"
        assert v["part_id"] is None, f"start {start + 1}: the retained part id was applied"
        ignored = [e for e in logs if e["event"] == "retained_trigger_ignored"]
        assert len(ignored) == 1, "logged once per start"
    print("FAULT retained-trigger", {"starts": 2, "stale_part_id_applied": applied})
    plc.close()


def test_trigger_sent_while_the_daemon_is_cut_off_is_still_answered(
    models_dir, store, mosquitto_factory, tmp_path
):
    broker = mosquitto_factory(persistence=True)
    port = free_port()
    settings = fault_settings(
        models_dir, tmp_path, broker, {"cam": zmq_camera(port)}, mqtt={"reconnect_max_s": 3.0}
    )
    with running(Daemon(settings, store=store)) as daemon:
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        broker.stop()
        deadline = time.monotonic() + 10
        while daemon.sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        # the sink's first reconnect comes 1 s after the drop and fails; the next one waits 2 s more, so the
        # trigger below is published while the daemon is still cut off
        time.sleep(1.5)
        broker.start()
        plc = Plc(broker, "cam")
        offline_at_publish = not daemon.sink.connected
        plc.trigger("OUTAGE-1")
        deadline = time.monotonic() + 30
        while not daemon.sink.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        cam.send({"encoding": "png"}, png(3))
        (v,) = plc.verdicts(1, timeout=120)
        cam.close()
    print("FAULT trigger-during-outage", {"daemon_offline_when_sent": offline_at_publish, "answered": 1})
    assert offline_at_publish, "the daemon had reconnected before the trigger was sent: not the case tested"
    assert v["part_id"] == "OUTAGE-1" and v["verdict"] in ("pass", "fail")
    plc.close()


def test_seq_keeps_increasing_across_restarts_and_every_verdict_has_its_own_id(
    models_dir, store, mosquitto, tmp_path
):
    port = free_port()
    settings = fault_settings(models_dir, tmp_path, mosquitto, {"cam": zmq_camera(port)})
    plc = Plc(mosquitto, "cam")
    for run in range(2):
        with running(Daemon(settings, store=store)):
            cam = Pusher(f"tcp://127.0.0.1:{port}")
            time.sleep(0.5)
            for i in range(2):
                cam.send({"part_id": f"R{run}-{i}", "encoding": "png"}, png(i))
            plc.verdicts(2 * (run + 1), timeout=120)
            cam.close()
    got = plc.all_verdicts()
    seqs = [v["seq"] for v in got]
    print("FAULT restart-seq", {"verdicts": len(got), "seqs": seqs})
    assert seqs == sorted(seqs) and len(set(seqs)) == 4, "(camera, seq) never repeats across a restart"
    assert len({v["verdict_id"] for v in got}) == 4
    plc.close()
