"""The `inspectd` command: the parser and the registry of command groups.

Every command module registers its parsers with light imports only; torch and the models are imported when a
command runs, so `inspectd --help`, `check-config` and `schema` start fast and work without a GPU stack.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from inspectd import __version__
from inspectd.cli.common import EX_CONFIG, EX_FAILURES, common_options
from inspectd.errors import ConfigError, InspectdError

DESCRIPTION = """\
inspectd finds defects on parts without training: IS-Net finds the part, SAM estimates how complex it is,
CLIPSeg and CLIP score tiles of it against generic defect descriptions, and each part gets a pass/fail
verdict and a heatmap (VAND 2023 zero-shot method). `inspectd run` is the line daemon (cameras in, MQTT out);
`inspectd inspect` checks image files; `inspectd models` installs the networks.

Configuration: one TOML file (--config; default /etc/inspectd/inspectd.toml for `run`), overridable by
INSPECTD_<SECTION>__<KEY> environment variables. `inspectd check-config FILE` shows the effective settings.
"""

# command modules, in the order their commands appear in --help; each has register(subparsers, common)
COMMAND_MODULES = (
    "inspectd.cli.inspect",
    "inspectd.cli.demo",
    "inspectd.cli.run",
    "inspectd.cli.serve",
    "inspectd.cli.config",
    "inspectd.cli.models",
    "inspectd.cli.evaluate",
    "inspectd.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree with its help texts."""
    parser = argparse.ArgumentParser(
        prog="inspectd", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"inspectd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_options()
    for name in COMMAND_MODULES:
        import_module(name).register(sub, common)
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
