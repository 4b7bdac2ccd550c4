"""The console's own error: a change refused, with the HTTP status the page is answered with."""

from __future__ import annotations

from inspectd.errors import InspectdError


class ChangeRefused(InspectdError):
    """A console change that cannot be made as asked; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status
