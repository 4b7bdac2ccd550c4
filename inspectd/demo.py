"""`inspectd demo`: the main job on embedded defaults, from generated parts, with no camera and no config.

1. writes sample parts and a short clip; 2. inspects the parts (as `inspectd inspect` does);
3. runs the daemon on the clip through the OpenCV file source, publishing to MQTT (a local Mosquitto is
started when none answers on localhost:1883), and prints the verdicts as the PLC receives them.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import torch

from inspectd.config import Settings, load_settings
from inspectd.localbroker import INSTALL_HINT, LocalBroker, broker_reachable, find_mosquitto
from inspectd.logs import get_logger
from inspectd.samples import write_clip, write_samples

log = get_logger("demo")


def demo_settings(base: Settings, clip: Path, host: str, port: int, mqtt: bool, spool: Path) -> Settings:
    """The embedded defaults: one camera reading the clip, MQTT on the given broker, metrics off."""
    data = base.model_dump(mode="json", exclude_none=True)
    data["cameras"] = {
        "demo": {"source": {"kind": "opencv", "uri": str(clip), "live": False}, "object": "metal washer"}
    }
    data["mqtt"].update(
        {"enabled": mqtt, "host": host, "port": port, "prefix": "inspectd-demo", "spool_dir": str(spool)}
    )
    data["metrics"]["enabled"] = False
    if base.models.device != "cuda" and not torch.cuda.is_available():
        # SAM's automatic masks at the GPU default grid take minutes per part on a CPU; a coarser grid is
        # enough for the complexity figure of the demo's simple parts
        data["models"]["sam_points_per_side"] = min(base.models.sam_points_per_side, 8)
    return load_settings(None, **data)


def _watch_verdicts(host: str, port: int, prefix: str, ready: threading.Event):
    """A PLC-like subscriber printing each verdict it receives."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="inspectd-demo-plc")

    def on_connect(c, userdata, flags, reason_code, properties):
        c.subscribe(f"{prefix}/+/verdict", qos=1)
        c.subscribe(f"{prefix}/status", qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        ready.set()

    def on_message(c, userdata, msg):
        if msg.topic.endswith("/status"):
            print(f"  [mqtt] {msg.topic} = {msg.payload.decode()}")
            return
        v = json.loads(msg.payload)
        score = f"{v['score']:.3f}" if v.get("score") is not None else "-"
        print(
            f"  [mqtt] {msg.topic}: seq={v['seq']} verdict={v['verdict']} score={score} "
            f"latency={v['latency_ms']:.0f} ms{' reason=' + v['reason'] if v.get('reason') else ''}"
        )

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(host, port)
    client.loop_start()
    return client


def run_demo(base: Settings, out: Path, frames: int = 8) -> int:
    """Run the whole demo; returns the exit status."""
    from inspectd.cli import inspect_files
    from inspectd.daemon import Daemon, run_daemon
    from inspectd.models.store import ModelStore

    out.mkdir(parents=True, exist_ok=True)
    samples = write_samples(out / "samples", count=frames)
    clip = write_clip(out / "clip.avi", frames=frames)

    settings = demo_settings(base, clip, base.mqtt.host, base.mqtt.port, True, out / "spool")
    print(f"== 1/2 inspect: {len(samples)} generated parts -> {out / 'inspect'}")
    store = ModelStore(settings.models, settings.pipeline)
    status = inspect_files(settings, [str(out / "samples")], out / "inspect", camera=None, store=store)

    print("== 2/2 daemon: the clip through the OpenCV file source -> MQTT")
    broker = None
    host, port, use_mqtt = base.mqtt.host, base.mqtt.port, True
    if not broker_reachable(host, port):
        if find_mosquitto():
            broker = LocalBroker().start()
            host, port = broker.host, broker.port
            print(
                f"   no broker on {base.mqtt.host}:{base.mqtt.port}; started a local mosquitto on port {port}"
            )
        else:
            use_mqtt = False
            print(
                f"   no MQTT broker on {host}:{port} and mosquitto is not installed ({INSTALL_HINT});"
                " verdicts go to the log only",
                file=sys.stderr,
            )
    settings = demo_settings(base, clip, host, port, use_mqtt, out / "spool")
    watcher = None
    try:
        if use_mqtt:
            ready = threading.Event()
            watcher = _watch_verdicts(host, port, settings.mqtt.prefix, ready)
            ready.wait(5.0)
        daemon_status = run_daemon(settings, until_sources_end=True, daemon=Daemon(settings, store=store))
    finally:
        if watcher is not None:
            watcher.loop_stop()
            watcher.disconnect()
        if broker is not None:
            broker.close()
    print(f"demo done: results in {out}")
    return status or daemon_status
