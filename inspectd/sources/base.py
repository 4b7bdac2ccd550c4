"""What every camera source is: open, read a Frame (or nothing yet), close; plus the trigger part-id latch."""

from __future__ import annotations

import itertools
import json
import threading
from abc import ABC, abstractmethod

from inspectd.config import SourceConfig
from inspectd.frame import Frame


class EndOfStream(Exception):
    """A finite source (video file, non-looping) has delivered its last frame."""


class FrameSource(ABC):
    """One camera's frames. ``read`` returns RGB uint8 Frames with a per-camera increasing ``seq``.

    ``live`` sources keep only the newest frame (latency never grows); others deliver every frame in order.
    """

    camera: str
    live: bool
    cfg: SourceConfig

    def __init__(self, camera: str, cfg: SourceConfig, max_pixels: int) -> None:
        self.camera = camera
        self.cfg = cfg
        self.max_pixels = max_pixels
        self.stats: dict[str, int] = {"frames": 0, "malformed": 0, "dropped": 0, "errors": 0}
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()

    def next_seq(self) -> int:
        """The next sequence number of this camera (kept across reconnects)."""
        with self._seq_lock:
            return next(self._seq)

    @abstractmethod
    def open(self) -> None:
        """Connect to the camera within ``cfg.open_timeout_s``; raises SourceError saying what to check."""

    @abstractmethod
    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when nothing new came within ``timeout`` seconds.

        Raises SourceError on a read fault and EndOfStream when a finite source is done.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the camera; safe to call twice and after a failed open."""

    def describe(self) -> str:
        """A short text naming the source for logs and state messages."""
        return f"{self.cfg.kind}:{self.cfg.uri}"


def parse_trigger(payload: str) -> tuple[str | None, str | None]:
    """(part_id, trigger_id) from a trigger payload: plain text part id or JSON ``{"part_id", "trigger_id"}``."""
    text = payload.strip()
    if not text:
        return None, None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text, None
        if isinstance(data, dict):
            part, trig = data.get("part_id"), data.get("trigger_id")
            return (None if part is None else str(part)), (None if trig is None else str(trig))
    return text, None


class PartIdLatch:
    """The part id announced on a camera's trigger topic, applied to that camera's next frame (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[str | None, str | None] = (None, None)

    def set(self, part_id: str | None, trigger_id: str | None = None) -> None:
        """Remember the part id for the next frame; a newer trigger replaces an unused older one."""
        with self._lock:
            self._value = (part_id, trigger_id)

    def take(self) -> tuple[str | None, str | None]:
        """The pending (part_id, trigger_id), cleared so it applies to one frame only; (None, None) if none."""
        with self._lock:
            value, self._value = self._value, (None, None)
            return value

    def apply(self, frame: Frame) -> Frame:
        """Give ``frame`` the pending part id unless its source already named one."""
        if frame.part_id is None:
            part_id, trigger_id = self.take()
            if part_id is not None:
                frame.part_id, frame.trigger_id = part_id, trigger_id
        return frame
