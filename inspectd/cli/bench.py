"""`inspectd bench`: the command line of the benchmark driver, which (with torch) is imported only when it runs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from inspectd.bench.variants import VARIANTS


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x960") from exc
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"--size {text!r}: both sides must be at least 32 pixels")
    return w, h


def _only(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--only: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}"
        )
    return names


def default_bench_dir() -> Path:
    """Where bench models are cached between runs."""
    from inspectd.config import default_cache_dir

    return default_cache_dir() / "bench"


def cmd_bench(args: argparse.Namespace) -> int:
    """The `inspectd bench` command."""
    from inspectd.atomicfile import write_atomic
    from inspectd.bench.driver import BenchOptions, prepare_models, run_bench
    from inspectd.bench.report import format_report
    from inspectd.config import load_settings
    from inspectd.errors import ConfigError
    from inspectd.logs import configure_logging

    path = Path(args.config) if args.config else None
    base = load_settings(path)
    configure_logging("debug" if args.verbose else "warning", base.logging.format)
    source_dir = Path(args.models_dir) if args.models_dir else base.models.dir

    def say(line: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    if args.daemons and args.foreground != "isnet":
        raise ConfigError("--foreground applies to the one-daemon bench; leave it out with --daemons")
    say(f"phase models: preparing {args.models} models under {args.bench_dir}")
    models_dir, origin = prepare_models(
        args.models, source_dir, Path(args.bench_dir), isnet=args.foreground == "isnet"
    )
    for kind, where in sorted(origin.items()):
        say(f"  {kind}: {where}")
    width, height = args.size
    opts = BenchOptions(
        cameras=args.cameras,
        frames=args.frames,
        width=width,
        height=height,
        encoding=args.encoding,
        rate=args.rate,
        only=args.only,
        duration=args.duration,
        timeout_s=args.timeout,
        models=args.models,
        foreground=args.foreground,
        models_origin=origin,
    )

    def write(report: dict, partial: bool = False) -> None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, json.dumps({**report, "partial": partial}, indent=2) + "\n")
        say(f"wrote {out}" + (" (so far)" if partial else ""))

    if args.daemons:
        from inspectd.bench.scaleout import format_scaleout, run_scaleout

        report = run_scaleout(base, models_dir, opts, args.daemons, args.device, say)
        text = format_scaleout(report)
    else:
        so_far = (lambda r: write(r, partial=True)) if args.out else None
        report = run_bench(base, models_dir, opts, args.device, say, checkpoint=so_far)
        text = format_report(report)
    if args.out:
        write(report)
    print(text)
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `bench` command to the inspectd CLI."""
    p = subparsers.add_parser(
        "bench",
        parents=[common],
        help="measure frames/s, time to verdict and memory of the daemon, and what batching/caching buy",
        description="Drive the real daemon (ZeroMQ cameras -> scheduler -> pipeline -> MQTT) with generated "
        "frames, and the bare pipeline on the same frames; print a table and write JSON.",
    )
    p.add_argument("--cameras", type=int, default=4, help="simulated cameras (default 4)")
    p.add_argument("--frames", type=int, default=2, help="frames per camera and variant (default 2)")
    p.add_argument(
        "--size", type=_size, default=(1280, 960), metavar="WxH", help="frame size (default 1280x960)"
    )
    p.add_argument(
        "--models",
        choices=["tiny", "full"],
        default="tiny",
        help="tiny random models, or the released architectures (real weights if installed)",
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda", "auto"], default=None, help="models.device (default: config)"
    )
    p.add_argument(
        "--foreground",
        choices=["isnet", "full"],
        default="isnet",
        help="how the simulated cameras find the part: isnet (default, as a camera gets), or full (the whole "
        "frame is the part, as for a fixtured part or a surface; no IS-Net pass, so the figures show the tile "
        "networks alone)",
    )
    p.add_argument("--encoding", choices=["raw", "png"], default="raw", help="how cameras send frames")
    p.add_argument("--rate", type=float, default=0.0, help="frames/s per camera; 0: as fast as accepted")
    p.add_argument(
        "--only",
        type=_only,
        default=VARIANTS,
        metavar="LIST",
        help=f"comma-separated variants to run (default all: {','.join(VARIANTS)})",
    )
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="also soak the daemon for S seconds"
    )
    p.add_argument("--timeout", type=float, default=0.0, help="seconds to wait for a variant's verdicts")
    p.add_argument(
        "--daemons",
        type=int,
        default=0,
        metavar="N",
        help="scale-out mode: N daemon processes with --cameras cameras each, all-local networks vs one "
        "`inspectd serve` (Triton), in one run; reports frames/s, time to verdict and Triton's batch sizes",
    )
    p.add_argument("--bench-dir", default=str(default_bench_dir()), help="cache of bench models")
    p.add_argument("--out", metavar="FILE", help="write the JSON report here")
    p.set_defaults(func=cmd_bench)
