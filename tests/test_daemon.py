"""The daemon with real parts: Mosquitto, ZeroMQ sockets, OpenCV video files, real IS-Net + tiny models.

What the PLC sees is checked with a real paho subscriber. In-process daemons share the session's model
store so the networks load once.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

from inspectd.bench.broker import free_port
from inspectd.bench.samples import make_part, write_clip
from inspectd.bench.subscriber import Subscriber
from inspectd.service.daemon import Daemon
from tests.plugins.daemon import running
from tests.plugins.parts import png
from tests.plugins.pipeline import tiny_settings

pytestmark = pytest.mark.slow

PREFIX = "t"


def daemon_settings(models_dir: Path, tmp_path: Path, broker, cameras: dict, **extra):
    return tiny_settings(
        models_dir,
        tmp_path / "cache",
        mqtt={
            "host": broker.host,
            "port": broker.port,
            "prefix": PREFIX,
            "spool_dir": str(tmp_path / "spool"),
            "reconnect_max_s": 1.0,
            "heatmap_format": "png",
        },
        cameras=cameras,
        **extra,
    )


def verdicts(sub: Subscriber, camera: str, n: int, timeout: float) -> list[dict]:
    return [json.loads(m.payload) for m in sub.wait_for(f"{PREFIX}/{camera}/verdict", n, timeout)]


class Pusher:
    """A camera process pushing frames to the daemon's bound PULL socket."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, header: dict, body: bytes) -> None:
        self.sock.send_multipart([json.dumps(header).encode(), body])

    def send_parts(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def zmq_camera(port: int, live: bool = True, **source) -> dict:
    return {
        "source": {
            "kind": "zmq",
            "uri": f"tcp://127.0.0.1:{port}",
            "zmq_socket": "pull",
            "zmq_bind": True,
            "live": live,
            **source,
        }
    }


def test_video_file_through_opencv_source_gives_every_verdict_in_order(
    models_dir, store, mosquitto, tmp_path
):
    clip = write_clip(tmp_path / "clip.avi", frames=4, width=256, height=192)
    settings = daemon_settings(
        models_dir,
        tmp_path,
        mosquitto,
        {"line": {"source": {"kind": "opencv", "uri": str(clip)}}},
        metrics={"enabled": True, "host": "127.0.0.1", "port": 0},
    )
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings, store=store)
    with running(daemon):
        got = verdicts(sub, "line", 4, timeout=180)
        heat = sub.wait_for(f"{PREFIX}/line/heatmap", 1, timeout=30)[0]
        time.sleep(0.5)  # one supervise tick refreshes the gauges
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
    inspected = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('inspectd_frames_inspected_total{camera="line"')
    )
    assert inspected == 4
    assert 'inspectd_frames_in_total{camera="line"} 4.0' in metrics
    assert "inspectd_mqtt_connected 1.0" in metrics
    assert 'inspectd_verdict_latency_seconds_count{camera="line"} 4.0' in metrics
    assert [v["seq"] for v in got] == [1, 2, 3, 4]
    assert all(v["verdict"] in ("pass", "fail") and v["camera"] == "line" for v in got)
    assert heat.payload.startswith(b"\x89PNG")
    status = sub.wait_for(f"{PREFIX}/status", 2, timeout=10)
    assert [m.payload for m in status] == [b"online", b"offline"]
    states = [json.loads(m.payload)["state"] for m in sub.messages[f"{PREFIX}/line/state"]]
    assert "connected" in states and states[-1] in ("ended", "stopped")
    sub.close()


def test_zmq_part_ids_malformed_messages_and_triggers(models_dir, store, mosquitto, tmp_path):
    port = free_port()
    settings = daemon_settings(models_dir, tmp_path, mosquitto, {"zcam": zmq_camera(port)})
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings, store=store)
    with running(daemon):
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        cam.send(
            {
                "part_id": "A-1",
                "trigger_id": "T-1",
                "encoding": "png",
                "timestamp": "2026-11-30T08:15:02.113Z",
            },
            png(1),
        )
        time.sleep(0.3)  # a live source skips queued anonymous messages; give each its turn
        cam.send_parts([b"only one part"])  # malformed: counted and dropped
        time.sleep(0.3)
        cam.send_parts([b"{not json", b"xx"])  # malformed: counted and dropped
        time.sleep(0.3)
        cam.send(
            {"part_id": "A-2", "encoding": "jpeg"}, b"definitely not a jpeg"
        )  # names a part: error verdict
        got = verdicts(sub, "zcam", 2, timeout=120)
        sub.client.publish(f"{PREFIX}/zcam/trigger", "A-3", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        cam.send({"encoding": "png"}, png(2))
        got = verdicts(sub, "zcam", 3, timeout=120)
        cam.close()
        malformed = daemon.sources["zcam"].stats["malformed"]
    first, second, third = got
    assert (first["part_id"], first["trigger_id"]) == ("A-1", "T-1")
    assert first["verdict"] in ("pass", "fail")
    assert first["captured_at"].startswith("2026-11-30T08:15:02.113")
    assert (second["part_id"], second["verdict"], second["reason"]) == ("A-2", "error", "decode_error")
    assert third["part_id"] == "A-3" and third["verdict"] in ("pass", "fail")
    assert malformed == 2
    sub.close()


def test_broker_restart_mid_stream_delivers_every_verdict_in_order(
    models_dir, store, mosquitto_factory, tmp_path
):
    broker = mosquitto_factory(persistence=True)
    clip = write_clip(tmp_path / "clip.avi", frames=5, width=256, height=192)
    settings = daemon_settings(
        models_dir, tmp_path, broker, {"line": {"source": {"kind": "opencv", "uri": str(clip)}}}
    )
    sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/line/verdict"], persistent=True)
    daemon = Daemon(settings, store=store)
    with running(daemon):
        verdicts(sub, "line", 2, timeout=120)
        # stop between publishes: a verdict the broker took but had not yet acked when it died is sent again
        # on reconnect (at-least-once, see README); this test is about verdicts made while it is away
        deadline = time.monotonic() + 10
        while daemon.sink.spool_depth and time.monotonic() < deadline:
            time.sleep(0.01)
        broker.stop()
        deadline = time.monotonic() + 120
        while daemon.verdicts < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert daemon.sink.spool_depth >= 1, "verdicts made while the broker is away wait in the spool"
        broker.start()
        got = verdicts(sub, "line", 5, timeout=180)
    seqs = [v["seq"] for v in got]
    assert seqs == [1, 2, 3, 4, 5], seqs
    time.sleep(0.5)
    assert len(sub.messages[f"{PREFIX}/line/verdict"]) == 5, "each part exactly once"
    sub.close()


def test_stalled_camera_reconnects_and_recovers(models_dir, store, mosquitto, tmp_path):
    port = free_port()
    cam_cfg = zmq_camera(port, stall_s=1.0, reconnect_max_s=0.5, read_timeout_s=0.5)
    settings = daemon_settings(models_dir, tmp_path, mosquitto, {"zcam": cam_cfg})
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/#"])
    daemon = Daemon(settings, store=store)
    with running(daemon):
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        cam.send({"part_id": "B-1", "encoding": "png"}, png(3))
        verdicts(sub, "zcam", 1, timeout=120)
        time.sleep(3.0)  # the camera goes quiet: stall watchdog fires
        states = [json.loads(m.payload)["state"] for m in sub.messages[f"{PREFIX}/zcam/state"]]
        assert "stalled" in states and "reconnecting" in states, states
        for _ in range(20):  # the camera comes back: PUSH reconnects to the re-bound socket
            cam.send({"part_id": "B-2", "encoding": "png"}, png(4))
            with contextlib.suppress(TimeoutError):
                got = verdicts(sub, "zcam", 2, timeout=3)
                break
        else:
            raise AssertionError("no verdict after the camera resumed")
        cam.close()
    assert got[1]["part_id"] == "B-2"
    last_states = [json.loads(m.payload)["state"] for m in sub.messages[f"{PREFIX}/zcam/state"]]
    assert "connected" in last_states[last_states.index("stalled") :]
    sub.close()


def test_overload_answers_every_part(models_dir, store, mosquitto, tmp_path):
    port = free_port()
    settings = daemon_settings(
        models_dir, tmp_path, mosquitto, {"zcam": zmq_camera(port)}, scheduler={"queue_frames": 1}
    )
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/zcam/verdict"])
    daemon = Daemon(settings, store=store)
    with running(daemon):
        cam = Pusher(f"tcp://127.0.0.1:{port}")
        time.sleep(0.5)
        body = png(5)
        for i in range(6):
            cam.send({"part_id": f"C-{i}", "encoding": "png"}, body)
        got = verdicts(sub, "zcam", 6, timeout=240)
        cam.close()
    assert sorted(v["part_id"] for v in got) == [f"C-{i}" for i in range(6)]
    reasons = [v["reason"] for v in got if v["verdict"] == "error"]
    assert reasons and set(reasons) == {"overloaded"}, got
    assert [v["seq"] for v in got] == sorted(v["seq"] for v in got), "per-camera order is kept"
    sub.close()


def test_reference_and_combined_cameras_through_the_daemon(models_dir, store, mosquitto, tmp_path):
    from inspectd.config import ReferenceConfig
    from inspectd.pipeline.reference import build_bank, part_regions

    goods = [make_part(256, 192, None, seed=20 + i).image for i in range(3)]
    regions = [part_regions(g.shape[:2], None, 0.0) for g in goods]
    bank = build_bank(store.backbone(), goods, regions, ReferenceConfig(), coreset=256)
    bank.save(tmp_path / "bank")
    port_r, port_c = free_port(), free_port()
    cameras = {
        "ref": {**zmq_camera(port_r), "mode": "reference", "reference_dir": str(tmp_path / "bank")},
        "both": {**zmq_camera(port_c), "mode": "combined", "reference_dir": str(tmp_path / "bank")},
    }
    settings = daemon_settings(models_dir, tmp_path, mosquitto, cameras)
    sub = Subscriber(mosquitto.host, mosquitto.port, [f"{PREFIX}/+/verdict"])
    daemon = Daemon(settings, store=store)
    with running(daemon):
        ref, both = Pusher(f"tcp://127.0.0.1:{port_r}"), Pusher(f"tcp://127.0.0.1:{port_c}")
        time.sleep(0.5)
        ref.send({"part_id": "R-1", "encoding": "png"}, png(21, "spot"))
        both.send({"part_id": "M-1", "encoding": "png"}, png(22, "scratch"))
        r = verdicts(sub, "ref", 1, timeout=120)[0]
        c = verdicts(sub, "both", 1, timeout=120)[0]
        ref.close()
        both.close()
    assert (r["part_id"], r["mode"], r["tiles"]) == ("R-1", "reference", 0)
    assert r["verdict"] in ("pass", "fail") and 0.0 <= r["score"] <= 1.0
    assert "reference" in r["stage_ms"] and "backbone" in r["models"]
    assert r["models"]["reference"] == c["models"]["reference"] == bank.model_id, "verdicts name their bank"
    assert (c["part_id"], c["mode"]) == ("M-1", "combined")
    assert c["tiles"] >= 1 and "reference" in c["stage_ms"] and "clipseg_winclip" in c["stage_ms"]
    sub.close()
