"""Take a few frames from a camera exactly as the daemon would receive them (for a reference bank)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from inspectd.errors import SourceError
from inspectd.frame import Frame
from inspectd.logs import get_logger
from inspectd.sources.base import EndOfStream, FrameSource

log = get_logger("source.grab")


def grab_frames(
    source: FrameSource,
    count: int,
    every_s: float,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Frame]:
    """Up to ``count`` frames from an opened ``source``, each at least ``every_s`` after the previous one kept
    (a live camera shows one part for many frames), ending early when a finite source ends. A frame the source
    could not decode is logged and not counted.

    Raises SourceError when no frame comes for ``timeout_s`` seconds, naming the camera.
    """
    if count < 1 or timeout_s <= 0 or every_s < 0:
        raise ValueError(f"need count >= 1, timeout_s > 0, every_s >= 0; got {count}, {timeout_s}, {every_s}")
    kept, last_kept, waited_since = 0, None, clock()
    while kept < count:
        try:
            frame = source.read(timeout=min(1.0, timeout_s))
        except EndOfStream:
            return
        now = clock()
        if frame is None:
            if now - waited_since > timeout_s:
                raise SourceError(
                    f"camera {source.camera}: no frame from {source.describe()} for {timeout_s:g} s "
                    f"({kept} of {count} taken); check the camera delivers frames (is a trigger expected?)"
                )
            continue
        waited_since = now
        if frame.image is None:
            log.warning("grab_frame_unusable", camera=source.camera, seq=frame.seq, error=frame.error)
            continue
        if last_kept is not None and now - last_kept < every_s:
            continue
        last_kept = now
        kept += 1
        yield frame
