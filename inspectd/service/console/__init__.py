"""The operator's web console served by the daemon (docs/console.md)."""

from inspectd.service.console.console import Console, ConsoleLink

__all__ = ["Console", "ConsoleLink"]
