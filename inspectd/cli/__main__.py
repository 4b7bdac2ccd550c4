"""`python -m inspectd.cli`: the same as the `inspectd` command."""

import sys

from inspectd.cli.main import main

sys.exit(main())
