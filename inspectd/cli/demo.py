"""`inspectd demo`: the main job on embedded defaults, from generated parts, with no camera and no config.

1. writes sample parts and a short clip; 2. inspects the parts zero-shot (as `inspectd inspect` does);
3. builds a reference bank from other generated good parts and inspects the same samples in reference mode,
prints a summary line per mode and writes both heatmaps side by side per sample; 4. runs the daemon on the
clip through the OpenCV file source, publishing to MQTT (a local Mosquitto is started when none answers on
localhost:1883), and prints the verdicts as the PLC receives them, each beside the part that clip frame shows.
Where CLIPSeg/SAM are random-weight stand-ins (offline), the daemon's camera runs in reference mode, with a bank
of other good parts decoded from an MJPG clip as the camera decodes its frames, so the path to the PLC shows a
detector that detects.
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
        description="Write generated sample parts and a clip; inspect the parts zero-shot and in reference "
        "mode (a bank from other generated good parts) and print how many defects each caught; then run the "
        "daemon on the clip publishing verdicts to MQTT (starts a local mosquitto if none answers on "
        "localhost:1883) and print them as the PLC sees them, beside what each frame shows. Offline (random "
        "CLIPSeg/SAM) the daemon's camera runs in reference mode, so its verdicts mean something.",
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


def demo_settings(
    base: Settings,
    clip: Path,
    host: str,
    port: int,
    mqtt: bool,
    spool: Path,
    reference_dir: Path | None = None,
) -> Settings:
    """The embedded defaults: one camera reading the clip (zero-shot, or reference mode against
    ``reference_dir`` when given), MQTT on the given broker, metrics off."""
    data = base.model_dump(mode="json", exclude_none=True)
    camera: dict[str, Any] = {
        "source": {"kind": "opencv", "uri": str(clip), "live": False},
        "object": "metal washer",
    }
    if reference_dir is not None:
        camera.update({"mode": "reference", "reference_dir": str(reference_dir)})
    data["cameras"] = {"demo": camera}
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


REFERENCE_CAMERA = "demo-reference"
REFERENCE_PARTS = 4


def mode_summary(mode: str, records: dict[str, dict]) -> str:
    """One line per mode: defective samples caught (fail) and good ones passed, from the sample names
    (``part_NNN_good``, ``part_NNN_scratch``...) and their verdict records."""
    good = [r for name, r in records.items() if name.endswith("_good")]
    bad = [r for name, r in records.items() if not name.endswith("_good")]
    caught = sum(r["verdict"] == "fail" for r in bad)
    passed = sum(r["verdict"] == "pass" for r in good)
    errors = sum(r["verdict"] == "error" for r in records.values())
    line = f"{mode:>10}: caught {caught} of {len(bad)} defective, passed {passed} of {len(good)} good"
    return line + (f", {errors} error" if errors else "")


def side_by_side(names: list[str], folders: dict[str, Path], out: Path) -> list[Path]:
    """One PNG per sample: each mode's heatmap next to the other, titled with the mode and its verdict."""
    import cv2
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        panels = []
        for mode, folder in folders.items():
            record = json.loads((folder / f"{name}.json").read_text())
            heat = cv2.imread(record.get("files", {}).get("heatmap", ""))
            if heat is None:
                continue
            label = f"{mode}: {record['verdict']}" + (
                f" {record['score']:.2f}" if record.get("score") is not None else ""
            )
            bar = np.full((28, heat.shape[1], 3), 255, np.uint8)
            cv2.putText(bar, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
            panels.append(np.concatenate([bar, heat]))
        if not panels:
            continue
        height = max(p.shape[0] for p in panels)
        panels = [np.pad(p, ((0, height - p.shape[0]), (0, 8), (0, 0)), constant_values=255) for p in panels]
        path = out / f"{name}.png"
        cv2.imwrite(str(path), np.concatenate(panels, axis=1))
        written.append(path)
    return written


def _records(folder: Path, names: list[str]) -> dict[str, dict]:
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in names}


def demo_reference(settings: Settings, store: Any, out: Path) -> Settings:
    """Build a bank for the reference camera from freshly generated good parts (not the samples, so no sample
    is scored against itself) and return settings with that camera pointing at it."""
    from inspectd.bench.samples import make_part
    from inspectd.config import load_settings
    from inspectd.pipeline.inspector import Inspector

    sample = settings.cameras["demo"]
    data = settings.model_dump(mode="json", exclude_none=True)
    data["cameras"][REFERENCE_CAMERA] = {"mode": "reference", "object": sample.object}
    settings = load_settings(None, **data)
    goods = [make_part(640, 480, None, seed=100 + i).image for i in range(REFERENCE_PARTS)]
    bank = Inspector(settings, store).build_reference(REFERENCE_CAMERA, goods)
    bank.meta["sources"] = [f"generated good part, seed {100 + i}" for i in range(REFERENCE_PARTS)]
    bank.save(out / "reference-bank")
    data["cameras"][REFERENCE_CAMERA]["reference_dir"] = str(out / "reference-bank")
    return load_settings(None, **data)


def camera_bank(settings: Settings, store: Any, out: Path) -> Path:
    """A bank for the daemon's camera from good parts as that camera sees them: frames of a clip written and
    decoded like the demo clip, so the bank knows the codec's artefacts (a bank of clean PNGs fails MJPG
    frames of good parts). Returns the bank's folder."""
    from inspectd.bench.samples import read_clip, write_clip
    from inspectd.pipeline.inspector import Inspector
    from inspectd.pipeline.reference_images import store_images

    clip = write_clip(out / "reference-clip.avi", frames=REFERENCE_PARTS, first_seed=100, good_only=True)
    frames = read_clip(clip)
    bank = Inspector(settings, store).build_reference("demo", frames)
    bank.meta["sources"] = [
        f"{clip.name} frame {i} (generated good part, seed {100 + i})" for i in range(REFERENCE_PARTS)
    ]
    folder = out / "reference-bank-clip"
    bank.save(folder)
    # kept with the bank, so parts added from the console extend it
    store_images(folder, [(f"clip-{i:03d}", f) for i, f in enumerate(frames)], replace=True)
    return folder


def random_models(store: Any) -> list[str]:
    """The loaded models in ``store`` that are random-weight stand-ins (written offline), by name."""
    return [name for name, v in store.describe().items() if v.endswith("+random")]


def compare_modes(settings: Settings, store: Any, out: Path, samples: list[Path]) -> int:
    """Inspect the samples in zero-shot and reference mode; a summary line per mode, heatmaps side by side."""
    from inspectd.cli.inspect import inspect_files

    print(f"== 1/3 zero-shot: {len(samples)} generated parts -> {out / 'inspect'}")
    status = inspect_files(settings, [str(p) for p in samples], out / "inspect", camera="demo", store=store)
    print(
        f"== 2/3 reference: a bank from {REFERENCE_PARTS} other generated good parts, the same "
        f"{len(samples)} parts -> {out / 'inspect-reference'}"
    )
    settings = demo_reference(settings, store, out)
    status = (
        inspect_files(
            settings,
            [str(p) for p in samples],
            out / "inspect-reference",
            camera=REFERENCE_CAMERA,
            store=store,
        )
        or status
    )
    names = [p.stem for p in samples]
    folders = {"zero-shot": out / "inspect", "reference": out / "inspect-reference"}
    print("summary:")
    for mode, folder in folders.items():
        print("  " + mode_summary(mode, _records(folder, names)))
    if random_models(store):
        print(
            "  (zero-shot ran on random-weight models: its verdicts mean nothing until `inspectd models pull`)"
        )
    written = side_by_side(names, folders, out / "compare")
    print(f"  heatmaps side by side (zero-shot | reference): {out / 'compare'} ({len(written)} images)")
    return status


class VerdictPrinter:
    """What a PLC sees, one line per message, with the part the clip frame shows beside each verdict.

    Clip frame ``i`` gets seq ``first_seq + i`` (seq continues across runs, so a second demo does not start at
    1); verdicts below ``first_seq`` are an earlier run's, delivered now from the spool.
    """

    def __init__(self, first_seq: int, frames: int) -> None:
        self.first_seq = first_seq
        self.frames = frames

    def shows(self, seq: int) -> str:
        """What the clip frame with this seq shows, as a note for the line."""
        from inspectd.bench.samples import part_kind

        if seq < self.first_seq:
            return "  (an earlier run's, from the spool)"
        if seq - self.first_seq >= self.frames:
            return ""
        return f"  (clip shows: {part_kind(seq - self.first_seq)})"

    def __call__(self, msg: Received) -> None:
        if msg.topic.endswith("/status"):
            print(f"  [mqtt] {msg.topic} = {msg.payload.decode()}")
            return
        v = json.loads(msg.payload)
        score = f"{v['score']:.3f}" if v.get("score") is not None else "-"
        print(
            f"  [mqtt] {msg.topic}: seq={v['seq']} verdict={v['verdict']} score={score} "
            f"latency={v['latency_ms']:.0f} ms{' reason=' + v['reason'] if v.get('reason') else ''}"
            + self.shows(int(v["seq"]))
        )


def run_demo(base: Settings, out: Path, frames: int = 8) -> int:
    """Run the whole demo; returns the exit status."""
    from inspectd.bench.broker import INSTALL_HINT, LocalBroker, broker_reachable, find_mosquitto
    from inspectd.bench.samples import write_clip, write_samples
    from inspectd.bench.subscriber import Subscriber
    from inspectd.models.store import ModelStore
    from inspectd.service.daemon import Daemon, run_daemon
    from inspectd.sources.sequence import SequenceFile, camera_sequence_path

    out.mkdir(parents=True, exist_ok=True)
    samples = write_samples(out / "samples", count=frames)
    clip = write_clip(out / "clip.avi", frames=frames)

    settings = demo_settings(base, clip, base.mqtt.host, base.mqtt.port, True, out / "spool")
    store = ModelStore(settings.models, settings.pipeline)
    status = compare_modes(settings, store, out, samples)

    print("== 3/3 daemon: the clip through the OpenCV file source -> MQTT")
    bank = None
    stand_ins = random_models(store)
    if stand_ins:
        bank = camera_bank(settings, store, out)
        print(
            f"   {', '.join(stand_ins)}: random-weight stand-ins here, so the daemon's camera runs in"
            " reference mode,"
            f" with a bank of {REFERENCE_PARTS} good parts as this camera sees them (MJPG frames, {bank});"
            " with real weights it runs zero-shot"
        )
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
    settings = demo_settings(base, clip, host, port, use_mqtt, out / "spool", reference_dir=bank)
    watcher = None
    try:
        if use_mqtt:
            prefix = settings.mqtt.prefix
            watcher = Subscriber(
                host,
                port,
                [f"{prefix}/+/verdict", f"{prefix}/status"],
                on_message=VerdictPrinter(SequenceFile(camera_sequence_path("demo")).upcoming, frames),
            )
        daemon_status = run_daemon(settings, until_sources_end=True, daemon=Daemon(settings, store=store))
    finally:
        if watcher is not None:
            watcher.close()
        if broker is not None:
            broker.close()
    print(f"demo done: results in {out}")
    return status or daemon_status
