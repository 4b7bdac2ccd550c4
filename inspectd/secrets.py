"""Credentials are shown masked wherever a value may leave the process (logs, MQTT, errors, check-config).

A camera URI (``rtsp://user:password@host/...``) or a GStreamer pipeline (``user-pw=...``) keeps its shape
with the password replaced by ``***``; the user name and host stay, so an operator still sees which camera.
"""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@")
_ONLY_USER = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<token>[^:@/\s]+)@")
_KEYED = re.compile(
    r"(?P<key>\b(?:user-pw|password|passwd|pwd|pass|token|secret|api[-_]?key|auth)\s*=\s*)"
    r"(?P<q>['\"]?)(?P<value>[^\s&;'\"!]+)(?P=q)",
    re.IGNORECASE,
)


def mask_uri(text: str) -> str:
    """``text`` with every URI password, bare URI token and ``password=``-style value replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _ONLY_USER.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _KEYED.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", text)


def uri_secrets(text: str) -> list[str]:
    """The secret parts of a URI or pipeline (what :func:`mask_uri` hides), for redacting them anywhere."""
    found = [m["pw"] for m in _USERINFO.finditer(text) if m["pw"]]
    found += [m["token"] for m in _ONLY_USER.finditer(text)]
    found += [m["value"] for m in _KEYED.finditer(text)]
    return [s for s in found if len(s) >= 3]


_registered: set[str] = set()


def register(*values: str) -> None:
    """Remember secret values (passwords, URI credentials) so :func:`redact` removes them from any text."""
    _registered.update(v for v in values if v and len(v) >= 3)


def redact(text: str) -> str:
    """``text`` with URI credentials masked and every registered secret replaced by ``***``."""
    text = mask_uri(text)
    for value in _registered:
        if value in text:
            text = text.replace(value, MASK)
    return text
