"""What camera-side tests share: a generated part as PNG bytes, and waiting for a condition with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2

from inspectd.bench.samples import make_part


def png(seed: int, defect: str | None = None, width: int = 256, height: int = 192) -> bytes:
    """A generated part (``defect``: None, "scratch", "spot", ...) encoded as a camera would send it."""
    ok, buf = cv2.imencode(".png", make_part(width, height, defect, seed=seed).image[..., ::-1])
    assert ok
    return buf.tobytes()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
