"""What every camera source is: open, read a Frame (or nothing yet), close."""

from __future__ import annotations

import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from inspectd.config import SourceConfig
from inspectd.frame import Frame
from inspectd.secrets import mask_uri


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
        self._sequence: Callable[[], int] | None = None

    def use_sequence(self, sequence: Callable[[], int]) -> None:
        """Take sequence numbers from ``sequence`` (a SequenceFile: increasing across restarts)."""
        self._sequence = sequence

    def next_seq(self) -> int:
        """The next sequence number of this camera (kept across reconnects, and restarts with a SequenceFile)."""
        if self._sequence is not None:
            return self._sequence()
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

    def drain(self, until: float) -> Iterator[Frame]:
        """At shutdown: the frames this source already received and not yet read (until monotonic ``until``).

        Sources that receive over a network (ZeroMQ) override this; a camera or file has nothing waiting.
        """
        return iter(())

    @property
    def shown_uri(self) -> str:
        """The source's URI with any credentials masked: the only form that goes into logs, errors and MQTT."""
        return mask_uri(self.cfg.uri)

    def describe(self) -> str:
        """A short text naming the source for logs and state messages (credentials masked)."""
        return f"{self.cfg.kind}:{self.shown_uri}"
