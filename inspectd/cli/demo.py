"""`inspectd demo`: the main job on embedded defaults, from generated parts, with no camera and no config.

1. writes sample parts and a short clip; 2. inspects the parts (as `inspectd inspect` does);
3. runs the daemon on the clip through the OpenCV file source, publishing to MQTT (a local Mosquitto is
started when none answers on localhost:1883), and prints the verdicts as the PLC receives them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectd.cli.common import EX_OK, configure_logging, settings_from_args

if TYPE_CHECKING:
    from inspectd.bench.subscriber import Received
    from inspectd.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `demo` and `samples` to the command tree."""
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="the main job on embedded defaults (no camera, no config)",
        description="Write generated sample parts and a clip, inspect the parts, then run the "
        "daemon on the clip publishing verdicts to MQTT (starts a local mosquitto if none answers "
        "on localhost:1883) and print them as the PLC sees them.",
    )
    p.add_argument("--out", default="demo-out", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument(
        "--frames", type=int, default=8, help="generated parts / clip frames (default: %(default)s)"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("samples", help="write generated sample parts (and a short clip) for a demo")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--clip", action="store_true", help="also write clip.avi (MJPG) for the video source")
    p.set_defaults(func=cmd_samples)


def cmd_demo(args: argparse.Namespace) -> int:
    """Inspect generated parts, then run the daemon on a generated clip publishing to MQTT."""
    settings = settings_from_args(args)
    configure_logging(settings, args.verbose)
    return run_demo(settings, Path(args.out), args.frames)


def cmd_samples(args: argparse.Namespace) -> int:
    """Write generated sample parts (good and defective) for a first run or a demo."""
    from inspectd.bench.samples import write_clip, write_samples

    paths = write_samples(Path(args.folder), args.count)
    if args.clip:
        paths.append(write_clip(Path(args.folder) / "clip.avi", frames=args.count))
    for p in paths:
        print(p)
    return EX_OK


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
    import torch

    from inspectd.config import load_settings

    if base.models.device != "cuda" and not torch.cuda.is_available():
        # SAM's automatic masks at the GPU default grid take minutes per part on a CPU; a coarser grid is
        # enough for the complexity figure of the demo's simple parts
        data["models"]["sam_points_per_side"] = min(base.models.sam_points_per_side, 8)
    return load_settings(None, **data)


def _print_verdict(msg: Received) -> None:
    """What a PLC sees, one line per message."""
    if msg.topic.endswith("/status"):
        print(f"  [mqtt] {msg.topic} = {msg.payload.decode()}")
        return
    v = json.loads(msg.payload)
    score = f"{v['score']:.3f}" if v.get("score") is not None else "-"
    print(
        f"  [mqtt] {msg.topic}: seq={v['seq']} verdict={v['verdict']} score={score} "
        f"latency={v['latency_ms']:.0f} ms{' reason=' + v['reason'] if v.get('reason') else ''}"
    )


def run_demo(base: Settings, out: Path, frames: int = 8) -> int:
    """Run the whole demo; returns the exit status."""
    from inspectd.bench.broker import INSTALL_HINT, LocalBroker, broker_reachable, find_mosquitto
    from inspectd.bench.samples import write_clip, write_samples
    from inspectd.bench.subscriber import Subscriber
    from inspectd.cli.inspect import inspect_files
    from inspectd.models.store import ModelStore
    from inspectd.service.daemon import Daemon, run_daemon

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
            prefix = settings.mqtt.prefix
            watcher = Subscriber(
                host, port, [f"{prefix}/+/verdict", f"{prefix}/status"], on_message=_print_verdict
            )
        daemon_status = run_daemon(settings, until_sources_end=True, daemon=Daemon(settings, store=store))
    finally:
        if watcher is not None:
            watcher.close()
        if broker is not None:
            broker.close()
    print(f"demo done: results in {out}")
    return status or daemon_status
