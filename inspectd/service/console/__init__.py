"""The operator's web console served by the daemon (docs/console.md).

``Console`` holds the state and threads; ``create_app`` builds its HTTP app. The daemon hands the one to the other,
so the app may know the console's type while the console never imports the app.
"""

from inspectd.service.console.app import create_app
from inspectd.service.console.console import Console, ConsoleLink

__all__ = ["Console", "ConsoleLink", "create_app"]
