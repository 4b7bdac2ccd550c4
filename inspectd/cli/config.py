"""`inspectd check-config` and `inspectd schema`: what an operator checks before a restart."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inspectd.cli.common import EX_OK, settings_from_args


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `check-config` and `schema` to the command tree."""
    p = sub.add_parser(
        "check-config", parents=[common], help="validate a config file, print effective settings"
    )
    p.add_argument("config", metavar="FILE")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "schema",
        help="print a JSON Schema: the MQTT verdict payload (default) or the config file",
        description="verdict: the JSON Schema of the payload on <prefix>/<camera>/verdict. config: the JSON "
        "Schema of inspectd.toml with every key described, for editors that validate TOML (Taplo / Even "
        "Better TOML): see README, Configuration.",
    )
    p.add_argument("which", nargs="?", choices=["verdict", "config"], default="verdict")
    p.set_defaults(func=cmd_schema)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file and print the effective settings (defaults and environment applied)."""
    from inspectd.config import settings_to_toml

    settings = settings_from_args(args)
    if settings.cameras:  # a config for offline commands may have none; one the daemon runs must have sources
        settings.check_runnable()
    print(f"# {args.config}: valid ({len(settings.cameras)} camera(s))")
    print(settings_to_toml(settings), end="")
    return EX_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the verdict payload or of the config file."""
    if args.which == "config":
        from inspectd.config import config_json_schema

        schema = config_json_schema()
    else:
        from inspectd.frame import verdict_json_schema

        schema = verdict_json_schema()
    print(json.dumps(schema, indent=2))
    return EX_OK
