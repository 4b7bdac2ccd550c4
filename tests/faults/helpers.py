"""What the fault suite shares: a daemon on tiny models with ``foreground = "full"``, a PLC, a camera process."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from inspectd.bench.subscriber import Subscriber
from inspectd.service.daemon import Daemon
from tests.plugins.daemon import running as run_daemon
from tests.plugins.pipeline import tiny_settings

PREFIX = "f"


def zmq_camera(port: int, **extra) -> dict:
    """A camera fed by a ZeroMQ PUSH process into the daemon's bound PULL socket; every message is a part."""
    return {
        "foreground": "full",
        "heatmap": False,
        "source": {
            "kind": "zmq",
            "uri": f"tcp://127.0.0.1:{port}",
            "zmq_socket": "pull",
            "zmq_bind": True,
            "live": False,
        },
        **extra,
    }


def fault_settings(models_dir: Path, tmp_path: Path, broker, cameras: dict, **extra):
    """Settings for an in-process daemon on the tiny models against ``broker``."""
    mqtt_cfg = {
        "host": broker.host,
        "port": broker.port,
        "prefix": PREFIX,
        "spool_dir": str(tmp_path / "spool"),
        "reconnect_max_s": 1.0,
        "client_id": f"inspectd-{tmp_path.name}",
        **extra.pop("mqtt", {}),
    }
    return tiny_settings(models_dir, tmp_path / "cache", mqtt=mqtt_cfg, cameras=cameras, **extra)


@contextlib.contextmanager
def running(daemon: Daemon, tick: float = 0.2):
    """The daemon running (tests.plugins.daemon), once its MQTT sink is connected, so triggers reach it."""
    with run_daemon(daemon, tick):
        deadline = time.monotonic() + 10
        while daemon.sink is not None and not daemon.sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the trigger subscription is made right after the connection
        yield daemon


class Plc:
    """The PLC side: publishes triggers (QoS 1) and collects verdicts."""

    def __init__(self, broker, camera: str) -> None:
        self.camera = camera
        self.sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/{camera}/verdict"])
        self.pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"plc-{camera}-{time.monotonic_ns()}")
        self.pub.connect(broker.host, broker.port)
        self.pub.loop_start()

    def trigger(self, part_id: str, retain: bool = False) -> None:
        self.pub.publish(f"{PREFIX}/{self.camera}/trigger", part_id, qos=1, retain=retain).wait_for_publish(5)

    def verdicts(self, n: int, timeout: float) -> list[dict]:
        return [
            json.loads(m.payload) for m in self.sub.wait_for(f"{PREFIX}/{self.camera}/verdict", n, timeout)
        ]

    def all_verdicts(self) -> list[dict]:
        return [json.loads(m.payload) for m in self.sub.messages[f"{PREFIX}/{self.camera}/verdict"]]

    def close(self) -> None:
        self.sub.close()
        self.pub.loop_stop()
        self.pub.disconnect()


def answered_once(sent: list[str], verdicts: list[dict]) -> dict:
    """Parts sent / answered / duplicated / missing, the figures docs/reliability.md reports."""
    counts = Counter(v["part_id"] for v in verdicts if v.get("part_id") is not None)
    return {
        "sent": len(sent),
        "answered": sum(1 for p in sent if counts[p] >= 1),
        "duplicated": sum(1 for p in sent if counts[p] > 1),
        "missing": [p for p in sent if counts[p] == 0],
    }
