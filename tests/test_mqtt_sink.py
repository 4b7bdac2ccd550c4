"""MqttSink against a real mosquitto: status/will, verdict JSON, triggers, outages, spool restarts, spool full."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from inspectd.bench.subscriber import Subscriber
from inspectd.config import MqttConfig
from inspectd.errors import ConfigError
from inspectd.frame import Defect, Verdict
from inspectd.sinks.mqtt import WINDOW, MqttSink
from tests.plugins.broker import Broker


def _cfg(broker: Broker, tmp_path, **kw) -> MqttConfig:
    base = dict(
        host=broker.host, port=broker.port, prefix="plant", client_id="inspectd-test", keepalive=5,
        spool_dir=tmp_path / "spool", reconnect_max_s=0.5,
    )  # fmt: skip
    base.update(kw)
    return MqttConfig(**base)


def _verdict(seq: int, camera: str = "cam1") -> Verdict:
    return Verdict(
        camera=camera, part_id=f"P-{seq}", seq=seq, captured_at=datetime(2026, 11, 30, 8, 15, 2, tzinfo=UTC),
        verdict="fail", score=0.83, threshold=0.6,
        defects=[Defect(bbox=(412, 220, 38, 21), area_px=512, score=0.91)],
    )  # fmt: skip


def _wait(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _plc(broker: Broker, client_id: str, probed: threading.Event, topic: str) -> mqtt.Client:
    """A PLC-side publisher, returned once the sink demonstrably receives on ``topic`` (probe payloads)."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    deadline = time.monotonic() + 5
    while not probed.is_set():
        assert time.monotonic() < deadline, "sink never subscribed to the trigger topic"
        pub.publish(topic, "probe", qos=1).wait_for_publish(2)
        probed.wait(0.05)
    return pub


def _seqs(sub: Subscriber, topic: str) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in sub.messages[topic]]


def test_status_online_retained_and_offline_on_stop(mosquitto: Broker, tmp_path) -> None:
    sink = MqttSink(_cfg(mosquitto, tmp_path), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    late = Subscriber(mosquitto.host, mosquitto.port, ["plant/status"])
    msg = late.wait_for("plant/status", 1)[0]
    assert (msg.payload, msg.retain) == (b"online", True)
    sink.stop(2.0)
    assert late.wait_for("plant/status", 2)[1].payload == b"offline"
    late.close()
    after = Subscriber(mosquitto.host, mosquitto.port, ["plant/status"])
    msg = after.wait_for("plant/status", 1)[0]
    assert (msg.payload, msg.retain) == (b"offline", True)
    after.close()


def test_last_will_is_offline_when_connection_dies(mosquitto: Broker, tmp_path) -> None:
    sink = MqttSink(_cfg(mosquitto, tmp_path, keepalive=5), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/status"])
    assert sub.wait_for("plant/status", 1)[0].payload == b"online"
    sink.client.loop_stop()
    sock = sink.client.socket()
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    msgs = sub.wait_for("plant/status", 2, timeout=5)
    assert msgs[1].payload == b"offline"
    sub.close()


def test_verdict_json_round_trip_and_state_retained(mosquitto: Broker, tmp_path) -> None:
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/+/verdict", "plant/+/heatmap", "plant/+/state"])
    sink = MqttSink(_cfg(mosquitto, tmp_path), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    v = _verdict(1042)
    sink.publish_verdict(v)
    sink.publish_heatmap("cam1", b"\xff\xd8jpegbytes")
    sink.publish_state("cam1", {"state": "connected", "fps": 12.5})
    msg = sub.wait_for("plant/cam1/verdict", 1)[0]
    body = json.loads(msg.payload)
    assert body["camera"] == "cam1" and body["part_id"] == "P-1042" and body["seq"] == 1042
    assert body["verdict"] == "fail" and body["score"] == 0.83 and body["threshold"] == 0.6
    assert body["defects"] == [{"bbox": [412, 220, 38, 21], "area_px": 512, "score": 0.91}]
    assert Verdict.model_validate_json(msg.payload) == v
    assert msg.qos == 1 and not msg.retain
    assert sub.wait_for("plant/cam1/heatmap", 1)[0].payload == b"\xff\xd8jpegbytes"
    _wait(lambda: sink.spool_depth == 0)
    assert not sub.wait_for("plant/cam1/state", 1)[0].retain  # live delivery; the broker now holds it
    state_sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/cam1/state"])
    st = state_sub.wait_for("plant/cam1/state", 1)[0]
    assert st.retain and json.loads(st.payload) == {"state": "connected", "fps": 12.5}
    assert sink.stats["published"] == 1 and sink.stats["spooled"] == 1
    sink.stop(2.0)
    sub.close()
    state_sub.close()


def test_trigger_topic_calls_on_trigger(mosquitto: Broker, tmp_path) -> None:
    got: list[tuple[str, str]] = []
    done = threading.Event()

    probed = threading.Event()

    def on_trigger(camera: str, payload: str) -> None:
        if payload == "probe":
            probed.set()
            return
        got.append((camera, payload))
        if len(got) == 2:
            done.set()

    sink = MqttSink(_cfg(mosquitto, tmp_path), ["cam1", "cam2"], on_trigger)
    sink.start()
    pub = _plc(mosquitto, "plc", probed, "plant/cam2/trigger")
    pub.publish("plant/cam2/trigger", "A-1042", qos=1).wait_for_publish(2)
    pub.publish(
        "plant/cam1/trigger", json.dumps({"part_id": "B-7", "trigger_id": "t9"}), qos=1
    ).wait_for_publish(2)
    pub.publish("plant/cam3/trigger", "ignored", qos=1).wait_for_publish(2)
    assert done.wait(3)
    assert got == [("cam2", "A-1042"), ("cam1", '{"part_id": "B-7", "trigger_id": "t9"}')]
    pub.loop_stop()
    pub.disconnect()
    sink.stop(1.0)


@pytest.mark.parametrize("idle_at_stop", [True, False], ids=["idle", "mid-stream"])
def test_broker_restart_delivers_everything_in_order(mosquitto_factory, tmp_path, idle_at_stop: bool) -> None:
    """Idle at the outage: exactly once. Mid-stream: nothing lost, first deliveries in order, and a repeat
    only for a verdict that was in flight (sent, PUBACK not yet back) when the broker died (see sinks/mqtt.py)."""
    broker = mosquitto_factory(persistence=True)
    sub = Subscriber(broker.host, broker.port, ["plant/cam1/verdict"], persistent=True)
    sink = MqttSink(_cfg(broker, tmp_path), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    total = 300
    for seq in range(1, 101):
        sink.publish_verdict(_verdict(seq))
    if idle_at_stop:
        _wait(lambda: sink.spool_depth == 0)
    broker.stop()
    for seq in range(101, 201):
        sink.publish_verdict(_verdict(seq))
        time.sleep(0.002)
    _wait(lambda: not sink.connected)
    assert sink.spool_depth >= 100
    broker.start()
    for seq in range(201, total + 1):
        sink.publish_verdict(_verdict(seq))
    sub.wait_for("plant/cam1/verdict", total, timeout=15)
    _wait(lambda: sink.spool_depth == 0)
    time.sleep(0.3)
    seqs = _seqs(sub, "plant/cam1/verdict")
    first = list(dict.fromkeys(seqs))
    assert first == list(range(1, total + 1))
    repeated = [s for s, n in Counter(seqs).items() if n > 1]
    if idle_at_stop:
        assert repeated == []
    else:
        assert len(repeated) <= WINDOW and all(s <= 100 for s in repeated), repeated
    assert sink.stats["reconnects"] >= 1 and sink.stats["published"] == total
    sink.stop(2.0)
    sub.close()


def test_spool_persists_across_sink_restart(mosquitto: Broker, tmp_path) -> None:
    dead = _cfg(mosquitto, tmp_path, port=1)  # nothing listens there: every verdict stays in the spool
    first = MqttSink(dead, ["cam1"], lambda c, p: None)
    first.start()
    for seq in range(1, 6):
        first.publish_verdict(_verdict(seq))
    assert first.spool_depth == 5 and not first.connected
    first.stop(0.2)
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/cam1/verdict"])
    second = MqttSink(_cfg(mosquitto, tmp_path), ["cam1"], lambda c, p: None)
    assert second.spool_depth == 5
    second.start()
    sub.wait_for("plant/cam1/verdict", 5)
    _wait(lambda: second.spool_depth == 0)
    second.publish_verdict(_verdict(6))
    sub.wait_for("plant/cam1/verdict", 6)
    assert _seqs(sub, "plant/cam1/verdict") == [1, 2, 3, 4, 5, 6]
    second.stop(1.0)
    sub.close()


def test_full_spool_drops_oldest_and_counts(mosquitto: Broker, tmp_path) -> None:
    sink = MqttSink(_cfg(mosquitto, tmp_path, port=1, spool_max_messages=3), ["cam1"], lambda c, p: None)
    sink.start()
    for seq in range(1, 6):
        sink.publish_verdict(_verdict(seq))
    assert sink.stats["spool_full_dropped"] == 2 and sink.spool_depth == 3
    sink.stop(0.2)
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/cam1/verdict"])
    again = MqttSink(_cfg(mosquitto, tmp_path, spool_max_messages=3), ["cam1"], lambda c, p: None)
    again.start()
    sub.wait_for("plant/cam1/verdict", 3)
    time.sleep(0.2)
    assert _seqs(sub, "plant/cam1/verdict") == [3, 4, 5]
    again.stop(1.0)
    sub.close()


def test_heatmap_dropped_and_verdicts_spooled_while_broker_down(mosquitto: Broker, tmp_path) -> None:
    sink = MqttSink(_cfg(mosquitto, tmp_path, port=1), ["cam1"], lambda c, p: None)
    sink.start()
    sink.publish_heatmap("cam1", b"x")
    for seq in range(1, 21):
        sink.publish_verdict(_verdict(seq))
    assert sink.stats["heatmaps_dropped"] == 1 and sink.spool_depth == 20
    sink.stop(0.2)


def test_publishing_never_waits_for_a_broker_that_stopped_answering(mosquitto: Broker, tmp_path) -> None:
    """A frozen broker keeps the TCP connection open and acks nothing: the inspection threads must not wait."""
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/cam1/verdict"])
    sink = MqttSink(_cfg(mosquitto, tmp_path, keepalive=30), ["cam1"], lambda c, p: None)
    sink.start()
    deadline = time.monotonic() + 10
    while not sink.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sink.connected
    published = threading.Event()

    def publish() -> None:
        sink.publish_heatmap("cam1", b"x")
        for seq in range(1, 21):
            sink.publish_verdict(_verdict(seq))
        published.set()

    mosquitto.proc.send_signal(signal.SIGSTOP)
    try:
        threading.Thread(target=publish, daemon=True).start()
        assert published.wait(30), "publish_verdict waited for a broker that does not answer"
        assert sink.spool_depth == 20  # on disk until the broker acknowledges them
        _wait(lambda: sink._inflight)  # handed over, never acknowledged
        assert sink.delivering(time.monotonic() + 1000, 60), "a frozen broker is not our fault to restart for"
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)
    sub.wait_for("plant/cam1/verdict", 20, timeout=15)
    assert sorted(_seqs(sub, "plant/cam1/verdict")) == list(range(1, 21))
    sink.stop(1.0)
    sub.close()


def test_a_sender_that_stops_handing_verdicts_over_is_reported_for_the_watchdog(
    mosquitto: Broker, tmp_path, logs
) -> None:
    """Connected, nothing in flight, verdicts waiting and none handed over for the stall time: the daemon's
    watchdog must stop being fed (a restart resends the spool)."""
    sink = MqttSink(_cfg(mosquitto, tmp_path), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    sink.publish_verdict(_verdict(1))
    _wait(lambda: sink.spool_depth == 0)
    assert sink.delivering(time.monotonic() + 1000, 60), "nothing waits"
    sink._stop.set()  # the sender ends while the broker stays connected: what a stuck sender looks like
    sink._sender.join(5)
    sink.publish_verdict(_verdict(2))
    assert sink.delivering(time.monotonic(), 60), "just spooled: not a stall yet"
    assert not sink.delivering(time.monotonic() + 61, 60)
    (stalled,) = logs.events("mqtt_sender_stalled")
    assert stalled["spooled"] == 1 and stalled["level"] == "error"
    assert not sink.delivering(time.monotonic() + 62, 60) and len(logs.events("mqtt_sender_stalled")) == 1
    sink.stop(0.5)


def test_verdicts_the_spool_cannot_take_wait_in_memory_for_the_broker(mosquitto_factory, tmp_path) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = Subscriber(broker.host, broker.port, ["plant/cam1/verdict"], persistent=True)
    broker.stop()
    sink = MqttSink(_cfg(broker, tmp_path), ["cam1"], lambda c, p: None)
    sink.start()
    spool_dir = tmp_path / "spool"
    shutil.rmtree(spool_dir)
    spool_dir.write_text("a file where the spool folder was")  # every spool write now fails
    for seq in range(1, 4):
        sink.publish_verdict(_verdict(seq))
    assert sink.stats["spool_errors"] == 3 and not sink.connected
    broker.start()
    sub.wait_for("plant/cam1/verdict", 3, timeout=30)
    assert sorted(_seqs(sub, "plant/cam1/verdict")) == [1, 2, 3]
    sink.stop(1.0)
    sub.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_a_burst_of_verdicts_arrives_complete_and_in_order(mosquitto: Broker, tmp_path, qos: int) -> None:
    """400 verdicts published back to back all arrive, in order (their rate is the benchmark's business)."""
    sub = Subscriber(mosquitto.host, mosquitto.port, ["plant/cam1/verdict"])
    sink = MqttSink(_cfg(mosquitto, tmp_path, verdict_qos=qos), ["cam1"], lambda c, p: None)
    sink.start()
    _wait(lambda: sink.connected)
    n = 400
    for seq in range(1, n + 1):
        sink.publish_verdict(_verdict(seq))
    sub.wait_for("plant/cam1/verdict", n, timeout=120)
    assert _seqs(sub, "plant/cam1/verdict") == list(range(1, n + 1))
    sink.stop(1.0)
    sub.close()


def test_tls_file_removed_after_the_config_was_read_is_a_config_error_naming_the_key(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    cfg = MqttConfig(spool_dir=tmp_path / "spool", tls={"enabled": True, "ca_file": ca})
    ca.unlink()
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file"):
        MqttSink(cfg, ["cam1"], lambda c, p: None)


def test_failing_on_trigger_does_not_stop_later_triggers(mosquitto: Broker, tmp_path) -> None:
    got: list[str] = []

    probed = threading.Event()

    def on_trigger(camera: str, payload: str) -> None:
        if payload == "probe":
            probed.set()
            return
        got.append(payload)
        if payload == "boom":
            raise RuntimeError("daemon bug")

    sink = MqttSink(_cfg(mosquitto, tmp_path), ["cam1"], on_trigger)
    sink.start()
    pub = _plc(mosquitto, "plc2", probed, "plant/cam1/trigger")
    for text in ("boom", "A-2"):
        pub.publish("plant/cam1/trigger", text, qos=1).wait_for_publish(2)
    _wait(lambda: got == ["boom", "A-2"])
    assert sink.connected
    pub.loop_stop()
    pub.disconnect()
    sink.stop(1.0)
