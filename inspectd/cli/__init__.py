"""The `inspectd` command line: one module per command group, registered by :mod:`inspectd.cli.main`."""
