"""What every section shares: unknown keys refused, values checked on assignment, and the default folders
(systemd's StateDirectory and CacheDirectory, else the XDG ones)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

ENV_PREFIX = "INSPECTD_"
DEFAULT_CONFIG_PATH = Path("/etc/inspectd/inspectd.toml")


def camera_table(name: str, *sub: str) -> str:
    """The TOML table a camera's settings live in, as a user must write it: ``cameras.line1``, but
    ``cameras."line1.left"`` for a name that is not a bare key (a dot would open another table)."""
    key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
    return ".".join(("cameras", key, *sub))


def default_state_dir() -> Path:
    """Where models, spool and caches live: systemd's StateDirectory, else the user's XDG data dir."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "inspectd"


def default_cache_dir() -> Path:
    """Where recomputable caches (text embeddings) live: systemd's CacheDirectory, else XDG cache."""
    if os.environ.get("CACHE_DIRECTORY"):
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inspectd"


class Section(BaseModel):
    """Base of every settings section: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def private_file(key: str, path: Path | None, private: bool = True) -> None:
    """A configured file must exist; a secret one (``private``) must not be readable by every user."""
    if path is None:
        return
    if not path.is_file():
        raise ValueError(f"{key}: {path} does not exist or is not a file; fix the path or remove {key}")
    if private and path.stat().st_mode & 0o004:
        raise ValueError(
            f"{key}: {path} is readable by every user; it holds a secret: chmod 600 {path} (owner: the "
            "daemon's user, inspectd)"
        )
