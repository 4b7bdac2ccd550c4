"""`inspectd run`: the line daemon, until SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inspectd.cli.common import configure_logging, settings_from_args


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `run` to the command tree."""
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run the line daemon until SIGTERM."""
    from inspectd.config import DEFAULT_CONFIG_PATH
    from inspectd.service.daemon import run_daemon

    if not args.config:
        args.config = str(DEFAULT_CONFIG_PATH)
    settings = settings_from_args(args)
    settings.check_runnable()
    configure_logging(settings, args.verbose)
    return run_daemon(settings, config_path=Path(args.config), until_sources_end=args.until_end)
