"""`inspectd check-config` and `inspectd schema`: what an operator checks before a restart."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from inspectd.cli.common import EX_OK, settings_from_args
from inspectd.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `check-config` and `schema` to the command tree."""
    p = sub.add_parser(
        "check-config",
        parents=[common],
        help="validate a config file, print effective settings",
        description="Validate FILE (an unknown key or bad value exits 78 naming it), print the effective settings "
        "with defaults and environment applied, and warn about reference banks that would not score "
        "(missing, or built with other settings than FILE's).",
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
    for problem in reference_problems(settings):
        print(f"warning: {problem}", file=sys.stderr)
    return EX_OK


def reference_problems(settings: Settings) -> list[str]:
    """What keeps a reference or combined camera's bank from scoring its frames (the daemon would answer its
    parts ``error``): warnings, since a bank is rebuilt after the config that outdates it is in place."""
    names = [n for n, c in settings.cameras.items() if c.mode != "zero-shot"]
    if not names:
        return []
    from inspectd.pipeline.reference import bank_misfits  # imports torch: only when a camera needs a bank

    return [p for n in names for p in bank_misfits(n, settings)]


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
