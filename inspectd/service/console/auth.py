"""Who may change things from the console: HTTP Basic credentials checked against a password file, and
requests that a browser could not have been tricked into sending from another site.

The password file holds ``name:password`` lines (the name is what the change log records) or a single bare
password shared by every operator name; ``#`` starts a comment. It is read at start and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path

from inspectd.errors import ConfigError

CSRF_HEADER = "x-inspectd-console"
SHARED = ""


@dataclass(frozen=True)
class Operator:
    """The person behind a change, as the log records them."""

    name: str
    address: str


class PasswordBook:
    """Operator passwords from ``console.password_file``; empty means the console is read-only."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: Path | None) -> PasswordBook:
        """Read the file; a missing, unreadable or empty one is a ConfigError naming console.password_file."""
        if path is None:
            return cls({})
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"console.password_file {path}: {exc.strerror}; create it (name:password lines) or unset it"
            ) from exc
        entries: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, password = line.partition(":")
            if sep and name.strip():
                entries[name.strip()] = password
            else:
                entries[SHARED] = line
        if not entries or any(not p for p in entries.values()):
            raise ConfigError(f"console.password_file {path} holds no usable password (name:password lines)")
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def check(self, name: str, password: str) -> bool:
        """Whether ``name`` may log in with ``password`` (constant-time comparison)."""
        expected = self._entries.get(name, self._entries.get(SHARED))
        if expected is None or not name:
            hmac.compare_digest(password.encode(), b"\0")
            return False
        return hmac.compare_digest(password.encode(), expected.encode())


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(name, password)`` from an ``Authorization: Basic`` header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = raw.partition(":")
    return (name, password) if sep else None


def cross_site_reason(headers: dict[str, str], host: str | None) -> str | None:
    """Why a change request looks cross-site (None when it does not).

    A custom header cannot be set by a form or by another origin's script without a CORS preflight (which the
    console never grants); ``Origin`` and ``Sec-Fetch-Site``, when a browser sends them, must say same origin.
    """
    if headers.get(CSRF_HEADER) != "1":
        return f"missing the {CSRF_HEADER}: 1 header (send changes from the console page or a script)"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    if origin is not None and host is not None:
        bare = origin.split("://", 1)[-1]
        if bare != host:
            return f"Origin {origin!r} is not this console ({host})"
    return None
