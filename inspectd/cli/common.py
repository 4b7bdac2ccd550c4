"""What every command shares: exit codes, the common options, settings from arguments, logging set-up."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspectd.config import Settings

EX_OK = 0
EX_FAILURES = 1
EX_USAGE = 2
EX_CONFIG = 78  # sysexits EX_CONFIG; systemd's RestartPreventExitStatus=78 stops restart loops on bad config


def common_options() -> argparse.ArgumentParser:
    """The --config / --models-dir / --verbose options most commands take (an argparse parent)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", help="TOML configuration file")
    common.add_argument("--models-dir", metavar="DIR", help="override models.dir")
    common.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return common


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The validated settings from --config (optional), the environment and --models-dir."""
    from inspectd.config import load_settings

    overrides = {}
    if getattr(args, "models_dir", None):
        overrides["models"] = {"dir": str(args.models_dir)}
    path = Path(args.config) if getattr(args, "config", None) else None
    settings = load_settings(path, **overrides)
    from inspectd.secrets import register

    register(*settings.secret_values())  # from here on, no log line or message carries them
    return settings


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    """Structured logging at the configured level (debug with --verbose)."""
    from inspectd.logs import configure_logging as configure

    configure("debug" if verbose else settings.logging.level, settings.logging.format)
