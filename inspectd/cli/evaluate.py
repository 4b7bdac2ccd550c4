"""`inspectd eval`, `inspectd reference` and `inspectd calibrate`: quality on a data set, banks, thresholds."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from inspectd.cli.common import EX_FAILURES, EX_OK, EX_USAGE, configure_logging, settings_from_args
from inspectd.config import CameraConfig, camera_table
from inspectd.errors import ConfigError, ImageError, InspectdError


def register(subparsers: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add the eval, reference and calibrate commands to the main parser's subparsers."""
    parents = [common] if common is not None else []

    p = subparsers.add_parser(
        "eval",
        parents=parents,
        help="measure detection quality on a benchmark folder (MVTec or VisA layout)",
        description="Score every test image of each class and report image AUROC/AP/F1-max and pixel "
        "AUROC/AP/F1-max/AUPRO@0.3 per class and their mean, and the share of good parts passed and defective "
        "parts failed at the camera's thresholds (metrics.md, .json, .csv, images.csv with each verdict, "
        "figures/).",
    )
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--layout", choices=["mvtec", "visa"], default="mvtec")
    p.add_argument("--classes", nargs="*", help="class folders (default: all under ROOT)")
    p.add_argument(
        "--mode",
        choices=["reference", "zero-shot", "combined"],
        default="reference",
        help="the camera mode every class is inspected with (each class is a fresh camera)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument(
        "--resolution",
        type=int,
        default=256,
        help="pixel metrics are computed with each image's shorter side at this many pixels, aspect kept",
    )
    p.add_argument("--bins", type=int, default=4096, help="score histogram bins for pixel metrics")
    p.add_argument("--max-references", type=int, default=16, help="good images per class for reference mode")
    p.add_argument(
        "--camera",
        default="eval",
        help="inspect as this configured camera (foreground, roi, prompts, object, thresholds); "
        "a name not in the config gets the defaults every new camera gets",
    )
    p.add_argument("--figures", type=int, default=2, help="figures per kind (best/worst) per class")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)

    ref = subparsers.add_parser("reference", help="manage a camera's good-part memory bank (reference mode)")
    rsub = ref.add_subparsers(dest="reference_command", metavar="ACTION", required=True)
    p = rsub.add_parser(
        "add",
        parents=parents,
        help="build CAMERA's memory bank from good-part images",
        description="Build the camera's memory bank from these good parts and store it in its "
        "reference_dir (set in the config when it was empty). The bank and the copy of its images kept in "
        "REFERENCE_DIR/images are replaced; good parts added later from the console join that copy. Give at "
        "least 8 frames of good parts as the camera delivers them (`inspectd reference grab`), then set the "
        "thresholds with `inspectd calibrate` on other good parts.",
    )
    p.add_argument("camera", metavar="CAMERA")
    p.add_argument("images", nargs="+", metavar="IMAGE|DIR")
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="where to store the bank (default: cameras.CAMERA.reference_dir "
        "or <state dir>/reference/CAMERA)",
    )
    p.set_defaults(func=cmd_reference_add)
    p = rsub.add_parser(
        "grab",
        parents=parents,
        help="save frames of good parts from CAMERA's own source, for `reference add`",
        description="Open CAMERA's configured source (as the daemon does: same decoding, resolution and "
        "compression) and save COUNT frames as lossless PNG files in DIR. Put good parts in front of the "
        "camera while it runs, look through the files, delete any showing a defect, then run "
        "`inspectd reference add CAMERA DIR`. A bank built from the camera's own frames learns its artefacts "
        "(compression, noise) as normal; images taken another way score good parts higher. Stop the daemon "
        "first if the camera allows one reader only (USB, a ZeroMQ bind).",
    )
    p.add_argument("camera", metavar="CAMERA")
    p.add_argument("out", metavar="DIR", help="folder for the frames (created if missing)")
    p.add_argument("--count", type=int, default=16, help="frames to save (default: %(default)s)")
    p.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="at least this long between saved frames, so each shows another part "
        "(default: 1 for a live camera, 0 for a video file or folder)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up when no frame comes for this long (default: %(default)s)",
    )
    p.set_defaults(func=cmd_reference_grab)
    p = rsub.add_parser("show", parents=parents, help="describe CAMERA's memory bank")
    p.add_argument("camera", metavar="CAMERA")
    p.set_defaults(func=cmd_reference_show)

    p = subparsers.add_parser(
        "calibrate",
        parents=parents,
        help="set CAMERA's thresholds from good parts for a target false reject rate",
        description="Inspect good parts with the camera's configured mode, choose the image and pixel thresholds "
        "that reject at most --target-frr of them, show before/after and write them into the config. For a "
        "reference or combined camera give good parts other than those its bank was built from: the bank's own "
        "images score near 0 and are left out.",
    )
    p.add_argument("camera", metavar="CAMERA")
    p.add_argument("images", nargs="+", metavar="IMAGE|DIR")
    p.add_argument("--target-frr", type=float, default=0.01, help="share of good parts allowed to fail")
    p.add_argument("--dry-run", action="store_true", help="show the thresholds, leave the config as it is")
    p.set_defaults(func=cmd_calibrate)


def _read_images(settings, files: list[Path]) -> list:
    """Good-part images read exactly as `inspectd inspect` reads frames (same conversions and size limit)."""
    from inspectd.imaging.codec import read_image

    return [read_image(f, settings.pipeline.max_image_pixels) for f in files]


def _eval_settings(settings, camera: str, mode: str):
    """The settings with ``camera`` in ``mode`` (its configured values kept, its stored bank not used)."""
    from inspectd.config import CameraConfig

    cam = (settings.cameras.get(camera) or CameraConfig()).model_copy(
        update={"mode": mode, "reference_dir": None}
    )
    return settings.model_copy(update={"cameras": {**settings.cameras, camera: cam}})


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation and write the reports."""
    from inspectd.evaluate.datasets import load_dataset
    from inspectd.evaluate.report import markdown_table, write_reports
    from inspectd.evaluate.runner import inspector_factory, run_eval
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.inspector import Inspector

    settings = _eval_settings(settings_from_args(args), args.camera, args.mode)
    store = ModelStore(settings.models, settings.pipeline)
    classes = load_dataset(Path(args.root), args.layout, args.classes)
    cam = settings.cameras[args.camera]
    factory = inspector_factory(
        lambda: Inspector(settings, store), args.camera, args.mode, args.max_references
    )
    info: dict[str, Any] = {
        "mode": args.mode,
        "root": str(args.root),
        "layout": args.layout,
        "camera": args.camera,
        "foreground": cam.foreground,
        "roi": cam.roi,
        "max_references": args.max_references,
    }
    if args.mode != "zero-shot":
        info.update(
            backbone=settings.models.reference_backbone,
            stages=list(settings.models.reference_stages),
            coreset=settings.pipeline.reference_coreset,
            reference=settings.pipeline.reference.model_dump(),
        )
    result = run_eval(
        classes,
        factory,
        args.resolution,
        args.bins,
        args.figures,
        progress=not args.no_progress,
        settings=info,
    )
    paths = write_reports(result, Path(args.out))
    print(markdown_table(result))
    print(f"reports in {args.out}: " + ", ".join(p.name for p in paths.values()) + ", figures/")
    return 0


def _bank_dir(settings, camera: str, explicit: str | None) -> Path:
    from inspectd.config import default_state_dir

    if explicit:
        return Path(explicit)
    cam = settings.cameras.get(camera)
    if cam is not None and cam.reference_dir:
        return Path(cam.reference_dir)
    return default_state_dir() / "reference" / camera


def cmd_reference_add(args: argparse.Namespace) -> int:
    """Build and store a camera's memory bank; record its folder in the config when none was set."""
    from inspectd.imaging.codec import collect_images
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.calibrate import write_camera_values
    from inspectd.pipeline.inspector import Inspector
    from inspectd.pipeline.reference import bank_notes
    from inspectd.pipeline.reference_images import store_images

    settings = settings_from_args(args)
    folder = _bank_dir(settings, args.camera, args.dir)
    files = collect_images(args.images)
    images = _read_images(settings, files)
    inspector = Inspector(settings, ModelStore(settings.models, settings.pipeline))
    bank = inspector.build_reference(args.camera, images, [str(f) for f in files])
    bank.meta["sources"] = [str(f) for f in files]
    bank.save(folder)
    named = [(f"{i:03d}-{f.stem}", image) for i, (f, image) in enumerate(zip(files, images, strict=True))]
    store_images(folder, named, replace=True)
    used = bank.meta["images"]
    print(
        f"camera {args.camera}: memory bank of {bank.meta['coreset']} patches from "
        f"{used if used == len(files) else f'{used} of {len(files)}'} images "
        f"({bank.meta['patches']} patches of its parts) written to {folder}; the images are kept in "
        f"{folder / 'images'}, which good parts added from the console join"
    )
    cam = inspector.camera_config(args.camera)  # a camera not in the config yet gets the defaults
    for line in bank_notes(args.camera, cam, bank.meta):
        print(line)
    if args.config and settings.camera(args.camera).reference_dir != folder:
        before = write_camera_values(Path(args.config), args.camera, {"reference_dir": str(folder)})
        print(f"{args.config}: cameras.{args.camera}.reference_dir {before['reference_dir']} -> {folder}")
    elif not args.config:
        print(f'set cameras.{args.camera}.reference_dir = "{folder}" and mode = "reference" in the config')
    if args.config and settings.camera(args.camera).mode == "zero-shot":
        print(
            f'cameras.{args.camera}.mode is "zero-shot", which does not use the bank: set it to "reference" or '
            f'"combined" in {args.config}, then reload the daemon (systemctl reload inspectd)'
        )
    elif args.config:
        print("a running daemon takes the new bank on reload (systemctl reload inspectd)")
    return 0


def cmd_reference_grab(args: argparse.Namespace) -> int:
    """Save frames from a camera's own source as PNG files, for a bank that knows the camera's artefacts."""
    import shlex
    import time

    import cv2

    from inspectd.errors import SourceError
    from inspectd.sources.grab import grab_frames
    from inspectd.sources.runner import make_source

    checks = [
        (args.count < 1, "--count must be at least 1"),
        (args.timeout <= 0, "--timeout must be above 0"),
        (args.every is not None and args.every < 0, "--every must be 0 or more"),
    ]
    problems = [message for bad, message in checks if bad]
    if problems:
        print(f"inspectd reference grab: {'; '.join(problems)}", file=sys.stderr)
        return EX_USAGE
    settings = settings_from_args(args)
    configure_logging(settings, args.verbose)
    cam = settings.camera(args.camera)
    out = Path(args.out)
    if cam.source.kind == "folder" and out.resolve() == Path(cam.source.uri).resolve():
        print(
            f"inspectd reference grab: {out} is camera {args.camera}'s own folder (cameras.{args.camera}.source"
            ".uri), so the saved frames would come back as new frames; grab into another folder",
            file=sys.stderr,
        )
        return EX_USAGE
    source = make_source(args.camera, cam, settings.pipeline.max_image_pixels)
    source.open()
    saved: list[Path] = []
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InspectdError(
                f"cannot create {out}: {exc.strerror or exc}; choose a folder you can write"
            ) from exc
        every = args.every if args.every is not None else (1.0 if source.live else 0.0)
        stamp = time.strftime("%Y%m%d-%H%M%S")  # seq restarts at 1 per grab: a second grab must not overwrite
        print(f"camera {args.camera}: taking {args.count} frames from {source.describe()}, {every:g} s apart")
        for frame in grab_frames(source, args.count, every, args.timeout):
            path = out / f"{args.camera}-{stamp}-{len(saved) + 1:03d}.png"
            if path.exists() or not cv2.imwrite(str(path), frame.image[..., ::-1]):
                raise InspectdError(f"cannot write {path}: it exists, or the folder is not writable or full")
            saved.append(path)
            print(f"  {len(saved)}/{args.count} {path}", flush=True)
    except SourceError as exc:
        print(f"inspectd: {exc}", file=sys.stderr)
        print(f"saved {len(saved)} of {args.count} frames in {out} before that", file=sys.stderr)
        return EX_FAILURES
    finally:
        source.close()
    if not saved:
        print(f"inspectd: camera {args.camera}: the source ended before any frame came", file=sys.stderr)
        return EX_FAILURES
    if len(saved) < args.count:
        print(f"the source ended after {len(saved)} of {args.count} frames")
    config = f" --config {shlex.quote(args.config)}" if args.config else ""
    print(
        f"saved {len(saved)} frames in {out}; delete any that shows a defect, then: "
        f"inspectd reference add {shlex.quote(args.camera)} {shlex.quote(str(out))}{config}"
    )
    return EX_OK


def cmd_reference_show(args: argparse.Namespace) -> int:
    """Print a camera's bank metadata."""
    from inspectd.pipeline.reference import NORMALISER_FROM, MemoryBank
    from inspectd.pipeline.reference_images import IMAGES, references_outside, stored_images

    settings = settings_from_args(args)
    folder = _bank_dir(settings, args.camera, None)
    bank = MemoryBank.load(folder)
    print(f"{folder}: {bank.features.shape[0]} x {bank.features.shape[1]} features")
    for k, v in sorted(bank.meta.items()):
        if k not in ("sources", "image_digests"):
            print(f"  {k}: {v}")
    if bank.meta.get("normaliser_from") != NORMALISER_FROM:
        print(
            "  this bank's score scale comes from an older release (raw patch distances): its scores run low and "
            f"the default thresholds pass many defective parts; rebuild it with `inspectd reference add "
            f"{args.camera} GOOD_IMAGES...` (thresholds already calibrated on it stay valid until then)"
        )
    images, _ = stored_images(folder, settings.pipeline.max_image_pixels)
    outside = references_outside(folder, images)
    print(
        f"  {len(images)} good images kept in {folder / IMAGES}"
        + (
            f"; {outside} of the bank's parts are not among them, so the console cannot add to this bank until "
            f"it is rebuilt with `inspectd reference add {args.camera} GOOD_IMAGES...`"
            if outside
            else "; parts added from the console join them"
        )
    )
    return 0


def _bank_digests(cam: CameraConfig) -> set[str]:
    """Pixel digests of the good images that built a reference/combined camera's bank (empty for zero-shot, no
    bank yet, or a bank from before digests were kept)."""
    from inspectd.pipeline.reference import BANK_FILE, MemoryBank

    if (
        cam.mode == "zero-shot"
        or cam.reference_dir is None
        or not (Path(cam.reference_dir) / BANK_FILE).is_file()
    ):
        return set()
    return set(MemoryBank.read_meta(Path(cam.reference_dir)).get("image_digests", []))


def _ceil6(v: float) -> float:
    """Round up to 6 decimals so the written threshold never fails more parts than computed."""
    return min(1.0, math.ceil(v * 1e6) / 1e6)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Inspect good parts through the configured mode; choose and write the thresholds."""
    import numpy as np

    from inspectd.frame import Frame
    from inspectd.imaging.codec import collect_images, read_image
    from inspectd.models.store import ModelStore
    from inspectd.pipeline.calibrate import calibrate, false_rejects, region_level, write_camera_values
    from inspectd.pipeline.inspector import Inspector
    from inspectd.pipeline.reference import image_digest

    settings = settings_from_args(args)
    cam = settings.camera(args.camera)
    files = collect_images(args.images)
    if not files:
        raise ImageError(
            f"no good-part images found in {' '.join(args.images)}; name image files or folders holding them"
        )
    in_bank = _bank_digests(cam)
    inspector = Inspector(settings, ModelStore(settings.models, settings.pipeline))
    scores, maps, own = [], [], []
    for seq, f in enumerate(files):
        image = read_image(f, settings.pipeline.max_image_pixels)
        if image_digest(image) in in_bank:
            own.append(f)
            continue
        result = inspector.inspect(Frame(camera=args.camera, seq=seq, image=image))
        v = result.verdict
        if v.verdict == "error" or result.anomaly_map is None:
            print(f"{f}: error ({v.reason}: {v.detail}); left out of calibration", file=sys.stderr)
            continue
        scores.append(float(v.score or 0.0))
        maps.append(np.asarray(result.anomaly_map))
    if own:
        print(
            f"{len(own)} of the {len(files)} images built camera {args.camera}'s reference bank (e.g. {own[0]}) and "
            "are left out: a part scores near 0 against its own patches, so thresholds set on it would fail every "
            "other good part",
            file=sys.stderr,
        )
    if len(own) == len(files):
        raise ConfigError(
            f"every image given to calibrate built camera {args.camera}'s reference bank; calibrate with other "
            f"good parts (e.g. `inspectd reference grab {args.camera} DIR` again, then calibrate on DIR)"
        )
    if not scores:
        raise ConfigError(f"none of the {len(files)} images could be inspected with camera {args.camera!r}")
    t = calibrate(scores, maps, args.target_frr, cam.min_defect_area)
    levels = np.array([region_level(m, cam.min_defect_area) for m in maps])
    old_fail = float(
        np.mean(false_rejects(np.asarray(scores), levels, cam.image_threshold, cam.pixel_threshold))
    )
    print(
        f"camera {args.camera} ({cam.mode}), {t.n_images} good parts, target false reject rate {t.target_frr:.3f}"
    )
    print(f"  image_threshold: {cam.image_threshold:.4f} -> {t.image:.4f}")
    print(f"  pixel_threshold: {cam.pixel_threshold:.4f} -> {t.pixel:.4f}")
    print(
        f"  good parts failing (image score or a defect region of >= {cam.min_defect_area} px): "
        f"{old_fail:.3f} -> {t.expected_frr:.3f}"
    )
    if args.dry_run:
        print("dry run: config not changed")
    elif not args.config:
        raise ConfigError(
            "calibrate writes the thresholds into the config: pass --config FILE (or --dry-run)"
        )
    else:
        write_camera_values(
            Path(args.config),
            args.camera,
            {"image_threshold": _ceil6(t.image), "pixel_threshold": _ceil6(t.pixel)},
        )
        print(f"written to {args.config} [{camera_table(args.camera)}]")
    return 0
