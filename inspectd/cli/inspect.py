"""`inspectd inspect`: image files in, one record, raw map and heatmap per image out."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from inspectd.cli.common import EX_FAILURES, EX_OK, EX_USAGE, configure_logging, settings_from_args


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `inspect` to the command tree."""
    p = sub.add_parser(
        "inspect",
        parents=[common],
        help="inspect image files or folders",
        description="Inspect images: per image a JSON record (score, verdict, components, tiles, "
        "defects, per-stage ms), the raw anomaly map (16-bit PNG) and a heatmap overlay. "
        "Exit status 1 when any image could not be inspected.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE|DIR")
    p.add_argument("--camera", help="use this camera's thresholds, object noun and prompts from the config")
    p.add_argument(
        "--out", default="inspectd-out", metavar="DIR", help="output folder (default: %(default)s)"
    )
    p.set_defaults(func=cmd_inspect)


def inspect_files(settings, inputs: list[str], out: Path, camera: str | None, store=None) -> int:
    """Inspect image files; one record, raw map and heatmap per image, a summary line at the end."""
    from tqdm import tqdm

    from inspectd.errors import ImageError
    from inspectd.frame import Frame
    from inspectd.imaging.codec import collect_images, read_image
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.inspector import Inspector
    from inspectd.sinks.files import FileSink

    if camera:
        settings.camera(camera)
    files = collect_images(inputs)
    if not files:
        print("inspectd inspect: no image files found in " + " ".join(inputs), file=sys.stderr)
        return EX_USAGE
    store = store or ModelStore(settings.models, settings.pipeline)
    inspector = Inspector(settings, store)
    sink = FileSink(out, settings.mqtt.heatmap_max_side)
    counts: Counter[str] = Counter()
    bar = tqdm(
        files, desc="inspecting", unit="img", disable=None if len(files) > 1 else True, file=sys.stderr
    )
    for seq, path in enumerate(bar):
        frame = Frame(camera=camera or "cli", seq=seq, image=None, part_id=path.stem)
        try:
            frame.image = read_image(path, settings.pipeline.max_image_pixels)
        except ImageError as exc:
            frame.error = str(exc)
            frame.error_reason = exc.reason
        result = inspector.inspect(frame)
        sink.write(path.stem, result, {"file": str(path)})
        v = result.verdict
        counts[v.verdict] += 1
        line = f"{path}: {v.verdict}"
        line += f" score={v.score:.3f}" if v.score is not None else f" ({v.reason}: {v.detail})"
        tqdm.write(line, file=sys.stdout)
    print(
        f"inspected {len(files)} images: {counts['pass']} pass, {counts['fail']} fail, "
        f"{counts['error']} error; results in {out}"
    )
    return EX_FAILURES if counts["error"] else EX_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    """Inspect image files or folders."""
    settings = settings_from_args(args)
    configure_logging(settings, args.verbose)
    return inspect_files(settings, args.images, Path(args.out), args.camera)
